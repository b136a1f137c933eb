"""Distill: the method, alpha, T and the student; train it beside its plain twin; one user's soft labels at T."""
from dataclasses import replace

import streamlit as st

from distill_core import ConfigError, DistillConfig, ModelSpec, RecDistillError, TrainConfig, sizing, views
from distill_core import catalogue
from distill_core.catalogue import FULL_MAX_ITEMS
from distill_core.config import LOSSES, METHODS, SOFT_LABEL_MODES, STUDENT_FAMILIES
from distill_core.distillers import TERM_NAMES
from distill_core.workflows import distill_job
from distill_core.runs import distill_text, distillations, run_label
from ui import charts, jobs, live, methods, registry, session, widgets

SEQUENCE_TEACHERS = ("sasrec", "text")  # teachers whose output depends on the order of a user's items

ds = session.active_dataset()

st.title("Distill")
st.caption("The student learns from the hard labels (weight alpha) and from the teacher by the chosen method "
           "(weight 1 − alpha): alpha = 1 is plain training, alpha = 0 learns only from the teacher. The same "
           "student is also trained without the teacher (the plain student), so every result has its baseline.")

teachers = widgets.require_teacher(
    ds, f"Distillation needs a trained teacher on **{ds.name}**, and there is none yet. Train one on the Teacher page "
        f"(an mf teacher trains fastest, a sasrec teacher is usually the stronger one) or run the demo on the "
        f"Overview page, then come back: the teacher will be listed here.",
    [("app_pages/teacher.py", "Train a teacher"), ("app_pages/overview.py", "Run the demo")])

session.follow_selected_student("distill_teacher", [t.id for t in teachers], teacher=True)  # e.g. a sweep cell
teacher = widgets.run_picker("Teacher", teachers, "distill_teacher",
                             help="The trained teacher whose soft labels the student learns from (newest first).")
job = jobs.current_job("distill", ds)
snap = jobs.snapshot(job)
running = snap is not None and snap.active

c = st.columns([1, 3])
method = c[0].selectbox("Method", METHODS, key="distill_method", persist_state="session", help=methods.METHOD_HELP)
formula = c[1].empty()  # filled once T² is read below
knob_values = methods.knob_inputs(method, "distill")
c = st.columns(4)
alpha = c[0].slider("alpha (weight of the hard-label CE)", 0.0, 1.0, DistillConfig().alpha, 0.05, key="distill_alpha",
                    persist_state="session", help="1: no distillation (CE only). 0: only the teacher's term (the KL, "
                                                  "or the chosen method's). The teacher's term gets 1 − alpha.")
temperature = c[1].slider("Temperature T", 0.5, 20.0, DistillConfig().temperature, 0.5, key="distill_T", persist_state="session",
                          help="Both models' logits are divided by T before the softmax of the KL term (Hinton KD "
                               "only). A higher T spreads the teacher's probability over more items; the soft "
                               "labels below are redrawn at once when you move it.")
t_squared = c[2].toggle("Multiply KL by T²", True, key="distill_t2", persist_state="session",
                        disabled=not methods.uses_temperature(method),
                        help="Keeps the soft term's gradient size independent of T (Hinton et al., 2015). "
                             "Switch off only to see why it is there. Hinton KD's KL only.")
soft_mode = c[3].selectbox("Soft labels", SOFT_LABEL_MODES, key="distill_soft_mode", persist_state="session",
                           help="For a sequential teacher: 'current' gives each user one soft label, the teacher's "
                                "next-item distribution after their whole training sequence; 'per-step' gives each "
                                "training example the teacher's output at its own position. 'auto': per-step when "
                                "teacher and student are of one family, current otherwise (an mf student cannot "
                                "read sequences, so it learns each user's *current* state).")
formula.caption(methods.formula(method, t_squared))
if note := methods.temperature_note(method):
    st.caption(note)
c = st.columns(5)
family = c[0].selectbox("Student family", STUDENT_FAMILIES, key="distill_family", persist_state="session",
                        help="mf: matrix factorisation (the fastest to serve). two_tower and sasrec also read the "
                             "user's recent items.")
t_spec = ModelSpec(**teacher.config["model"])
budget = c[1].toggle("Size budget", False, key="distill_budget", persist_state="session",
                     help="Choose the student's size as a share of this teacher's parameters: the largest dim "
                          "within it on this dataset. The same dim is a different share on another catalogue, since "
                          "embedding tables grow with users and items.")
if budget:
    ratio = c[1].number_input("Share of the teacher's parameters", 0.001, 1.0, 0.1, step=0.01, format="%.3f",
                              key="distill_ratio", persist_state="session",
                              help="At most this share of the teacher's parameters (0.1: a tenth); the student "
                                   "gets the largest dim within it.")
    try:
        dim = sizing.student_for_ratio(ModelSpec(family, 6), sizing.n_params(t_spec, ds.n_users, ds.n_items), ratio,
                                       ds.n_users, ds.n_items, "size budget").dim
    except ConfigError as e:
        st.error(f"{e}. Nothing was started.")
        st.stop()
else:
    dim = c[1].number_input("Student dim", 1, 1024, 6, key="distill_dim", persist_state="session",
                            help="The student's embedding width (its share of the teacher's parameters is shown "
                                 "below; or switch on Size budget to choose by share).")
epochs = c[2].number_input("Epochs (max)", 1, 500, TrainConfig().epochs, key="distill_epochs", persist_state="session",
                           help="Upper bound per student; early stopping on validation NDCG@10 (see Patience).")
patience = c[3].number_input("Patience", 0, 500, TrainConfig().patience, key="distill_patience",
                             persist_state="session", help="Each student stops after this many epochs without a "
                                                           "better validation NDCG@10 (0: never stops early).")
lr = widgets.student_lr_input(c[4], ds, "distill_lr", "Adam's step size (both students).")
advanced = st.expander("Advanced: large catalogues", expanded=False)
with advanced:
    c = st.columns(4)
    loss = c[0].selectbox("Loss", LOSSES, key="distill_loss", persist_state="session",
                          help=f"full: softmax over all {ds.n_items:,} items for every training position. sampled: "
                               f"sampled softmax over negatives shared by each batch, logQ-corrected. auto: full "
                               f"up to {FULL_MAX_ITEMS:,} items, sampled above.")
    negatives = c[1].number_input("Negatives per batch", 1, 1_000_000, TrainConfig().negatives, key="distill_negatives",
                                  persist_state="session", help="Sampled loss: items drawn per batch, shared by its rows.")
    beta = c[2].number_input("Proposal beta", 0.0, 2.0, TrainConfig().negative_beta, 0.25, key="distill_beta",
                             persist_state="session", help="Negatives are drawn ∝ (count + 1)^beta: 0 uniform, 1 by "
                                                           "popularity. The logQ correction removes the proposal's bias.")
    top_k = c[3].number_input("Soft labels: top-K (0 = auto)", 0, ds.n_items, 0, key="distill_top_k",
                              persist_state="session", help="Keep the teacher's top-K items per user plus the mass of "
                                                            "the rest (memory users × K). 0: the whole distribution "
                                                            "where it fits, else a top-128.")
scale_train = TrainConfig(loss=loss, negatives=int(negatives), negative_beta=float(beta))
try:  # the method's knobs against each other, the catalogue, the teacher's top-K lists and the teacher itself
    scale_distill = DistillConfig(alpha, temperature, t_squared, soft_mode, soft_top_k=int(top_k),
                                  **methods.fields(method, knob_values))
    path = catalogue.resolve(scale_train, scale_distill, ds.n_users, ds.n_items)
    methods.check(scale_distill, lambda: registry.model(teacher.id, ds), ds.n_items, path)
except RecDistillError as e:
    st.error(f"{e}. Nothing will be started until it is changed.")
    scale_train = None
else:
    advanced.caption(f"This student will train by: {path.describe()}.")
st.caption(f"Student size: {sizing.size_line(ModelSpec(family, int(dim), max_len=t_spec.max_len), t_spec, ds.n_users, ds.n_items)}"
           + (f", the largest {family} student within {ratio:g} of the teacher" if budget else "") + ".")
if teacher.config["model"]["family"] in SEQUENCE_TEACHERS and family == "mf":
    st.caption("A sequential teacher and an mf student (cross-family, `current` soft labels): the best alpha "
               "and T depend on the data (BENCHMARKS.md, `bench/fair.py`), so choose them by validation NDCG@10 on "
               "the Sweep page, which tunes the plain student with the same budget. Selection is honest: validation "
               "is scored on soft labels that did not forecast the validation item, then the student is trained "
               "again on the full soft labels for the chosen epochs. It stays one interaction behind the teacher until it is refreshed with recomputed soft labels "
               "(README, \"Refreshing a student\").")

c = st.columns([1, 1, 6])
if c[0].button("Train", type="primary", key="distill_train",
               disabled=jobs.own_job_running("distill", ds) or scale_train is None,
               help="Distil the student from the teacher, then train the plain student (reused when an identical "
                    "one is stored). Runs in the background.") and scale_train is not None:
    jobs.start_job("distill", ds, lambda: distill_job(ds, teacher.id, ModelSpec(family, int(dim), max_len=t_spec.max_len),
                                                     replace(scale_train, epochs=int(epochs), lr=float(lr),
                                                             patience=int(patience)),
                                                     scale_distill, registry.store()),
                   f"Student {family} dim {dim} ({distill_text(scale_distill.to_dict())}) on {ds.name}",
                   teacher=teacher.id)
if c[1].button("Stop", key="distill_stop", disabled=not running,
               help="Stop at the next mini-batch; a student that finished is kept."):
    jobs.cancel(job)

live.show(job, live.distill_body(jobs.job_teacher(job), TERM_NAMES[method]))

results = jobs.job_runs(snap, teacher=jobs.job_info(job).teacher) if snap is not None and not snap.active else {}
if len(results) == 3:
    table = views.runs_table(results)
    st.subheader("What the students reached (test split)")
    st.dataframe(table, hide_index=True, key="distill_results")
    st.plotly_chart(charts.compare(table), key="distill_compare")

st.subheader("Soft labels")
st.caption("One user's distribution over the next item at the T chosen above, for the teacher and the students "
           "distilled from it (the run selected on the Sweep page, else the newest), over the items each ranks "
           "highest. Soft labels are what the student learns from; move T to see how it flattens or sharpens them "
           "(nothing is retrained).")
pairs = distillations(registry.store(), ds.fingerprint, teacher.id)
split = registry.split(ds, teacher.config["split"])
c = st.columns([3, 2])
with c[0]:
    user = widgets.user_picker(ds, split, "distill_user")
top_n = c[1].slider("Items per model", 3, 20, 8, key="distill_top_n", persist_state="session",
                    help="Each model's top items at this T; the bars show the union.")
if user is None:
    st.stop()
if not pairs:
    st.caption("No student has been distilled from this teacher yet: only the teacher is shown.")
pair = next((p for p in pairs if p.student_kd.id == session.selected_student()), pairs[0] if pairs else None)
if pair is not None:
    st.caption(f"Distilled student shown: {run_label(pair.student_kd)}")
trained_k = ((pair.student_kd.info or {}).get("path") or {}).get("top_k") if pair is not None else None
view = views.soft_label_view(registry.models_of(ds, teacher, pair), ds, split, user,
                             temperature, top_n, top_k=trained_k or None)
st.plotly_chart(charts.soft_labels(view), key="distill_soft")
widgets.entropy_metrics(view)

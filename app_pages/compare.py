"""Compare: every stored model of the active dataset by size, speed and quality; train a size ladder."""
import streamlit as st

from distill_core import DistillConfig, RecDistillError, RunConfig, TrainConfig, catalogue, compare
from distill_core.config import METHODS, STUDENT_FAMILIES
from distill_core.runs import method_of
from distill_core.workflows import ladder_job
from ui import charts, jobs, live, methods, registry, session, widgets

ds = session.active_dataset()
D = RunConfig()

st.title("Compare model sizes")
st.caption("Every finished model on this dataset: the teacher, the distilled students and the same students "
           "trained plain. Quality is on the test split; latency is the time to score 1,000 users against the whole "
           "catalogue on this machine. Points on the dotted line are on the Pareto frontier: no other model is both "
           "smaller and better.")

teachers = widgets.require_teacher(ds, f"There is no model on **{ds.name}** yet. Run the demo on the Overview page, "
                                        "or train a teacher, then come back to distil a ladder of student sizes here.",
                                   [("app_pages/overview.py", "Run the demo"), ("app_pages/teacher.py", "Train a teacher")])

teacher = widgets.run_picker("Reference teacher", teachers, "compare_teacher",
                             help="Retention is each model's test metric as a % of this teacher's; the size ladder "
                                  "distils from it.")
c = st.columns([2, 3, 2])
metric = c[0].selectbox("Quality metric", list(compare.METRICS), key="compare_metric",
                        help="The test-split metric on the y axis and in the retention column.")
roles = c[1].multiselect("Show", list(compare.ROLES.values()), list(compare.ROLES.values()), key="compare_roles",
                         help="Which kinds of model to show.")
if c[2].button("Re-measure latency", key="compare_latency",
               help="Score 1,000 users against every item with each shown model, 7 times, and keep the median "
                    "(the figure stored at training time was measured while other jobs may have been running)."):
    with st.spinner("Measuring…"):
        registry.remeasure_latency(ds, list(compare.models_frame(registry.store(), ds.fingerprint)["run"]))

job = jobs.current_job("ladder", ds)
snap = jobs.snapshot(job)
running = snap is not None and snap.active


def body(_snap=None) -> None:  # redrawn while the ladder trains, so the chart fills in as each student finishes
    if _snap is not None:
        live.progress(_snap)
    frame = compare.models_frame(registry.store(), ds.fingerprint, reference=teacher)
    frame = frame[frame["role"].isin(roles)].reset_index(drop=True)
    method = frame["run"].map({r.id: method_of(r) for r in registry.store().runs(dataset=ds.fingerprint)})
    reads_t = method.map(lambda m: isinstance(m, str) and methods.uses_temperature(m))
    frame = frame.assign(method=method, T=frame["T"].where(reads_t.astype(bool)))  # T only where the loss reads it
    if frame.empty:
        st.info("No model of the chosen kinds yet.")
        return
    front = compare.pareto_mask(frame["params"], frame[metric])
    left, right = st.columns([3, 2])
    left.plotly_chart(charts.size_quality(frame, metric, front), key="compare_chart")
    shown = frame.assign(pareto=front)[["role", "model", "params", "bytes", "ms_per_1k_users", metric,
                                        f"retention {metric} %" if metric != "Recall@20" else "retention NDCG@10 %",
                                        "method", "alpha", "T", "pareto", "run"]]
    right.dataframe(shown, hide_index=True, key="compare_table",
                    column_config={"bytes": st.column_config.NumberColumn("size on disk (bytes)", format="%d"),
                                   "ms_per_1k_users": st.column_config.NumberColumn("ms / 1k users", format="%.1f"),
                                   "params": st.column_config.NumberColumn("params", format="%d")})
    right.download_button("Download CSV", frame.to_csv(index=False), f"compare-{ds.name}.csv", "text/csv",
                          key="compare_csv", help="Every column of every shown model, including run ids and config.")


if job is not None:  # a statement, not `a if c else b`: Streamlit's magic would print that expression's None
    live.show(job, body)
else:
    body()

st.subheader("Train a size ladder")
st.caption("One click distils a student of each size from the reference teacher, each beside its plain twin, one "
           "after another in the background; the chart above fills in as each finishes.")
c = st.columns([1, 3])
method = c[0].selectbox("Method", METHODS, key="ladder_method", help=methods.METHOD_HELP)
c[1].caption(methods.formula(method, D.distill.t_squared))
knob_values = methods.knob_inputs(method, "ladder")
reads_t = methods.uses_temperature(method)
c = st.columns(5)
family = c[0].selectbox("Student family", STUDENT_FAMILIES, key="ladder_family",
                        help="mf serves with one dot product per item: the fastest to score.")
dims = c[1].multiselect("Dims", [2, 4, 6, 8, 16, 32, 64, 128], list(compare.LADDER_DIMS), key="ladder_dims",
                        help="Embedding widths of the students, trained smallest first.")
epochs = c[2].number_input("Epochs (max)", 1, 500, D.student_train.epochs, key="ladder_epochs",
                           help="Upper bound per student; early stopping on validation NDCG@10.")
alpha = c[3].slider("alpha", 0.0, 1.0, D.distill.alpha, 0.05, key="ladder_alpha",
                    help="Weight of the hard-label CE; the distillation term gets 1 − alpha.")
temperature = c[4].slider("T", 0.5, 20.0, D.distill.temperature, 0.5, key="ladder_T", disabled=not reads_t,
                          help="Temperature of the soft labels (Hinton KD's KL only"
                               + ("" if reads_t else f"; {method} does not read it") + ").")
train = TrainConfig(epochs=int(epochs), lr=catalogue.student_lr("auto", ds.n_items))  # the Distill page's default
try:  # the method's knobs against each other, the catalogue, the teacher's top-K lists and the teacher (as Distill)
    distill = DistillConfig(alpha, temperature, **methods.fields(method, knob_values))
    methods.check(distill, lambda: registry.model(teacher.id, ds), ds.n_items,
                  catalogue.resolve(train, distill, ds.n_users, ds.n_items))
except RecDistillError as e:
    st.error(f"{e}. Nothing will be started until it is changed.")
    distill = None
c = st.columns([1, 1, 6])
if c[0].button("Train ladder", type="primary", key="ladder_train", disabled=running or distill is None,
               help="Runs in the background; you can leave the page.") and distill is not None:
    jobs.start_job("ladder", ds, lambda: ladder_job(ds, teacher.id, family, tuple(int(d) for d in dims), train,
                                                    distill, registry.store()),
                   f"Size ladder {family} dims {', '.join(map(str, sorted(dims)))}"
                   + (f" ({method})" if method != "logits" else ""), teacher=teacher.id)
if c[1].button("Stop", key="ladder_stop", disabled=not running, help="Stop at the next mini-batch; finished "
               "students are kept."):
    jobs.cancel(job)

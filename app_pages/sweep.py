"""Sweep: one distilled student per (alpha, T) cell, trained in the background, resumable; a live heatmap."""
import streamlit as st

from distill_core import ConfigError, ModelSpec, TrainConfig, catalogue, sizing, sweep, sweep_results
from distill_core.config import STUDENT_FAMILIES
from ui import jobs, live, registry, session, sweep_view, widgets

ds = session.active_dataset()

st.title("Alpha × temperature sweep")
st.caption("Distils the same student once per cell of an alpha × T grid and, for a fair baseline, trains the plain "
           "student over as many cells of learning rate × weight decay (around the learning rate below), "
           "alternately, in the background; each side's best cell is chosen on validation NDCG@10. Cells already "
           "stored with identical settings (by an earlier sweep, or on the Distill page) are reused, never trained "
           "again: stop a sweep and start it again to resume, or grow the grid to train only the new cells.")

teachers = widgets.require_teacher(
    ds, f"A sweep distils students from a trained teacher on **{ds.name}**, and there is none yet. Train one on the "
        f"Teacher page (an mf teacher trains fastest) or run the demo on the Overview page, "
        f"then come back: the teacher will be listed here.")

teacher = widgets.run_picker("Teacher", teachers, "sweep_teacher",
                             help="The trained teacher whose soft labels every cell's student learns from.")
c = st.columns(2)
alpha_text = c[0].text_input("alpha grid", "0, 0.25, 0.5, 0.75, 1", key="sweep_alphas", persist_state="session",
                             help="Values of alpha (weight of the hard-label CE, each in [0, 1]), separated by "
                                  "commas. alpha = 1 is plain training: T has no effect in that row.")
temp_text = c[1].text_input("Temperature grid", "1, 2, 4, 8", key="sweep_temperatures", persist_state="session",
                            help="Values of T (each > 0), separated by commas; the KL term is multiplied by T².")
c = st.columns(5)
family = c[0].selectbox("Student family", STUDENT_FAMILIES, key="sweep_family", persist_state="session",
                        help="The student of every cell. mf is the fastest to train and to serve.")
dim = c[1].number_input("Student dim", 1, 1024, 6, key="sweep_dim", persist_state="session",
                        help="The student's embedding width; its share of the teacher's parameters on this "
                             "dataset is shown below.")
epochs = c[2].number_input("Epochs per cell (max)", 1, 500, TrainConfig().epochs, key="sweep_epochs", persist_state="session",
                           help="Upper bound per cell, with early stopping on validation NDCG@10 (see Patience). "
                                f"The Distill page's defaults ({TrainConfig().epochs} epochs, patience {TrainConfig().patience}, "
                                f"lr {catalogue.student_lr('auto', ds.n_items):g}), so its students count as cells.")
patience = c[3].number_input("Patience", 0, 500, TrainConfig().patience, key="sweep_patience",
                             persist_state="session", help="A cell stops after this many epochs without a better "
                                                           "validation NDCG@10 (0: never stops early).")
lr = widgets.student_lr_input(c[4], ds, "sweep_lr", "Adam's step size of every distilled cell; the plain cells try it and a ladder around it "
                                   "(lr/2 to 4 lr for 16 cells).")
try:
    spec = sweep.SweepSpec(sweep.parse_grid(alpha_text, "alpha"), sweep.parse_grid(temp_text, "temperature"),
                           ModelSpec(family, int(dim)), TrainConfig(epochs=int(epochs), lr=float(lr), patience=int(patience)))
except ConfigError as e:
    st.error(f"{e}. Nothing was started; stored runs are unchanged.")
    st.stop()

t_spec = ModelSpec(**teacher.config["model"])
st.caption(f"Student size: {sizing.size_line(spec.student, t_spec, ds.n_users, ds.n_items)}. "
           f"Tuning budget: {spec.budget()}.")

job = jobs.current_job("sweep", ds)
snap = jobs.snapshot(job)
running = snap is not None and snap.active
grid = sweep_results.grid_frame(registry.store(), ds, teacher.id, spec)
plain = sweep_results.plain_frame(registry.store(), ds, teacher.id, spec)
todo = sweep_results.to_train(grid, plain)

address = session.ray_address()
can_start = sweep_view.backend(address)
c = st.columns([1, 1, 5])
if c[0].button("Start sweep", type="primary", key="sweep_start", disabled=running or todo == 0 or not can_start,
               help="Train every cell, distilled and plain, not yet stored with these settings, in the background: "
                    "one after another here, or side by side on Ray when the sidebar's settings give an address."):
    jobs.start_job("sweep", ds, sweep_view.job(ds, teacher.id, spec, registry.store(), address),
                   f"Sweep {len(spec.alphas)}×{len(spec.temperatures)} of {family} dim {dim} on {ds.name}"
                   + (f" on Ray ({address})" if address else ""), teacher=teacher.id)
if c[1].button("Stop", key="sweep_stop", disabled=not running,
               help="Stop at the next mini-batch. Finished cells are kept; the next start resumes the rest."):
    jobs.cancel(job)
c[2].caption(f"{len(grid) + len(plain) - todo} of {len(grid) + len(plain)} cells (distilled and plain) are stored for "
             f"these settings; starting trains the other {todo}." if todo else
             f"All {len(grid) + len(plain)} cells (distilled and plain) are stored for these settings.")

metric = st.radio("Colour the cells by", list(sweep_view.SHORT), format_func=sweep_view.SHORT.get, horizontal=True,
                  key="sweep_metric", persist_state="session",
                  help="Validation NDCG@10 of the epoch kept (early stopping), test NDCG@10 and HR@10 of that model, "
                       "or the training KL (before T²) of the last epoch. The star marks the best cell by "
                       "validation NDCG@10 whatever is shown.")
draw = sweep_view.body(ds, teacher.id, spec, metric)
if job is not None:
    live.show(job, draw)
else:
    draw(None)

st.subheader("Open a cell")
if sweep_view.cell_picker(sweep_results.grid_frame(registry.store(), ds, teacher.id, spec)) is not None:
    st.caption("The Distill page (soft labels) and the Recommendations page now show this student.")

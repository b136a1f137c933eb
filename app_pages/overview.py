"""Overview: what RecDistill does, the one-click demo with live progress, and the way to the other pages."""
import streamlit as st

from distill_core import sizing, views
from distill_core.config import DEMO
from distill_core.workflows import demo_job
from ui import charts, jobs, live, registry, session, widgets

ds = session.active_dataset()
job = jobs.current_job("demo", ds)
snap = jobs.snapshot(job)
running = snap is not None and snap.active

_t, _s = DEMO.teacher, DEMO.student
share = sizing.param_ratio(_s, _t, ds.n_users, ds.n_items)  # on this dataset: the same dims differ elsewhere
st.title("RecDistill")
st.markdown(
    "Knowledge distillation for recommender systems. A large **teacher** learns which item each user "
    "picks next; a small **student** then learns from the teacher's *soft labels* (its probability for "
    "every item, softened by a temperature T) as well as from the items users really picked. "
    "The same student is also trained **without** the teacher, so you see what distillation adds.")
st.markdown(
    f"**Run the demo** trains the default teacher ({_t.family}, dim {_t.dim}, {_t.layers} layers: it reads each "
    f"user's recent items), then distils a {_s.family} student of dim {_s.dim} ({share:.2f} of the teacher's "
    f"parameters on this dataset) and trains its plain twin, on the active dataset **{ds.name}**. The loss "
    f"curves grow as it trains, and the progress bar estimates the time left.")

c = st.columns([2, 1, 5])
if c[0].button("Run the demo", icon=":material/play_arrow:", type="primary", key="demo_run", disabled=running,
               help=f"Teacher ({_t.family}, dim {_t.dim}, ≤{DEMO.teacher_train.epochs} epochs), distilled "
                    f"student and plain student ({_s.family}, dim {_s.dim}, ≤{DEMO.student_train.epochs} epochs "
                    f"each), alpha {DEMO.distill.alpha:g}, T {DEMO.distill.temperature:g}. Runs in the "
                    "background: you can switch pages meanwhile."):
    jobs.start_job("demo", ds, lambda: demo_job(ds, registry.store(), DEMO), f"Demo on {ds.name}")
if c[1].button("Stop", key="demo_stop", disabled=not running,
               help="Stop the demo at the next mini-batch; models that finished are kept."):
    jobs.cancel(job)

live.show(job, live.demo_progress)

results = jobs.job_runs(snap) if snap is not None and not snap.active else {}
if len(results) == 3:
    table = views.runs_table(results)
    st.subheader("What the demo reached (test split)")
    st.dataframe(table, hide_index=True, key="demo_results")
    st.plotly_chart(charts.compare(table), key="demo_compare")
    st.caption(f"The distilled student has {share:.2f} of the teacher's parameters; compare it with the plain "
               "student of the same size to see what the teacher's soft labels add.")
elif snap is None:
    st.info("Click **Run the demo** to watch a teacher train and a student being distilled from it.")

st.subheader("Explore")
c = st.columns(4)
widgets.page_link("app_pages/data.py", "Data: load your own dataset", c[0])
widgets.page_link("app_pages/teacher.py", "Teacher: train a teacher", c[1])
widgets.page_link("app_pages/distill.py", "Distill: alpha, T and soft labels", c[2])
widgets.page_link("app_pages/recommendations.py", "Recommendations side by side", c[3])

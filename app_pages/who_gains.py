"""Who gains: teacher, distilled and plain student by user activity and by item popularity, the gain of
distillation per bucket with a bootstrap interval, and what the three models' lists look like."""
import streamlit as st

from distill_core import RecDistillError, gains
from distill_core.runs import ROLE_LABELS, distillations, run_label
from ui import registry, session, who_gains, widgets

ds = session.active_dataset()

st.title("Who gains from distillation")
st.caption("A mean NDCG hides whom a model serves. Here the test users are cut by how active they were in "
           "training, and the test cases by how popular their held-out item is; in each bucket the teacher, the "
           "distilled student and the same student trained plainly stand side by side, with the gain of distillation "
           "and its bootstrap interval. Below, what the lists look like: coverage, concentration, tail, novelty, "
           "diversity.")

pairs = distillations(registry.store(), ds.fingerprint)
if not pairs:
    st.info(f"There is no distilled student on **{ds.name}** yet. Run the demo on the Overview page, or train a "
            "teacher and then distil a student on the Distill page; its segments appear here afterwards.")
    widgets.page_link("app_pages/overview.py", "Run the demo")
    widgets.page_link("app_pages/distill.py", "Distil a student")
    st.stop()

session.follow_selected_student("gains_student", [p.student_kd.id for p in pairs])
pair = widgets.distillation_picker(pairs, "gains_student",
                                  help="A distilled student (newest first) of any teacher, method and size; its "
                                       "teacher and its plain twin come with it.")
st.caption(f"Teacher: {run_label(pair.teacher)}  \nPlain student: {run_label(pair.student_plain)}")
c = st.columns([2, 1, 1])
metric = c[0].radio("Metric", list(who_gains.METRICS), format_func=who_gains.METRICS.get, horizontal=True,
                    key="gains_metric", help="The test metric of the bars and of the gain (K = 10).")
seed = c[1].number_input("Bootstrap seed", 0, 1_000_000, 0, key="gains_seed",
                         help="The same seed gives the same intervals on every run.")
n_boot = c[2].number_input("Bootstrap draws", 200, 20_000, 1000, 100, key="gains_draws",
                           help="How many times each bucket's users are drawn with replacement.")

try:
    seg = who_gains.pair_segments(pair, ds)
except RecDistillError as e:  # e.g. a model whose scores are NaN: say so, keep the page
    st.error(f"The segments of these runs cannot be computed: {e}")
    st.stop()
if seg.computed_now:
    st.info("Stored before segments existed: " + ", ".join(ROLE_LABELS[r] for r in seg.computed_now)
            + ". Their segments were computed now from the stored weights and kept with the runs.")
frames = who_gains.gain_frames(pair, seg, seed, n_boot)

for by, what in gains.SECTIONS.items():
    st.subheader(f"By {what}")
    st.caption(who_gains.describe(seg.summaries["teacher"], by))
    left, right = st.columns(2)
    left.plotly_chart(who_gains.bars(seg.summaries, by, metric), key=f"gains_bars_{by}")
    right.plotly_chart(who_gains.gain_chart(frames[by], metric), key=f"gains_chart_{by}")
    st.dataframe(frames[by][frames[by]["metric"] == metric].drop(columns=["section", "metric"]), hide_index=True,
                 key=f"gains_table_{by}")

st.subheader("The lists (top 10 of every test user)")
lists = gains.lists_frame(seg.summaries)
st.dataframe(lists, hide_index=True, key="gains_lists")
st.caption("coverage: share of the catalogue in anyone's list; gini: 0 when every item is recommended equally "
           "often, near 1 when a few items fill every list; head / tail share: of each list, in the head / tail "
           "bucket above; novelty: mean −log2 of the share of users who had the item in training; diversity: "
           f"{seg.summaries['teacher']['lists']['diversity_note']}.")

c = st.columns([1, 1, 4])
c[0].download_button("Download CSV", gains.export_frame(list(frames.values()), lists).to_csv(index=False),
                     f"who-gains-{ds.name}-{pair.student_kd.id}.csv", "text/csv", key="gains_csv",
                     help="Every bucket (both metrics, the three models, the gain and its interval) and the list "
                          "figures.")
c[1].download_button("Download PNG", who_gains.png(pair, seg, frames, metric, seed, n_boot),
                     f"who-gains-{ds.name}-{pair.student_kd.id}.png", "image/png", key="gains_png",
                     help="The four charts above in one image.")

"""Recommendations: one user's history and the teacher's, distilled and plain students' top-K side by side."""
import streamlit as st

from distill_core import views
from distill_core.runs import distillations, run_label
from ui import registry, session, widgets

ds = session.active_dataset()

st.title("Recommendations")
st.caption("What each model would recommend to one user next, from the items the user has not seen (the "
           "held-out test item included), as in the evaluation.")

pairs = distillations(registry.store(), ds.fingerprint)
if not pairs:
    st.info(f"There is no distilled student on **{ds.name}** yet. Run the demo on the Overview page, or train a "
            f"teacher and then distil a student on the Distill page; the three lists appear here afterwards.")
    widgets.page_link("app_pages/overview.py", "Run the demo")
    widgets.page_link("app_pages/distill.py", "Distil a student")
    st.stop()

session.follow_selected_student("rec_student", [p.student_kd.id for p in pairs])  # e.g. a sweep cell
pair = widgets.distillation_picker(pairs, "rec_student",
                                  help="A distilled student (newest first); its teacher and its plain twin come "
                                       "with it.")
st.caption(f"Teacher: {run_label(pair.teacher)}  \nPlain student: {run_label(pair.student_plain)}")
split = registry.split(ds, pair.teacher.config["split"])

c = st.columns([3, 2])
with c[0]:
    user = widgets.user_picker(ds, split, "rec_user")
max_k = min(50, split.n_items)  # a catalogue smaller than 50 items caps K at its size
if st.session_state.get("rec_k", 0) > max_k:  # K kept from a larger dataset
    st.session_state["rec_k"] = max_k
k = c[1].slider("K (list length)", 1, max_k, min(10, max_k), key="rec_k", persist_state="session",
                help=f"How many items each model recommends (at most {max_k}: the catalogue has {split.n_items} "
                     "items); overlap@K uses the same K.")
if user is None:
    st.stop()

models = registry.models_of(ds, pair.teacher, pair)
st.subheader(f"History of user {ds.user_ids[user]}, newest first")
st.dataframe(views.user_history(ds, split, user, newest_first=True), hide_index=True, key="rec_history",
             height=240)

st.subheader(f"Top {k}")
widgets.ranked_lists(views.top_k_lists(models, ds, split, user, k))

st.subheader("How alike are the rankings?")
kd_user = views.user_agreement(models["Teacher"], models["Distilled student"], split, user, k)
plain_user = views.user_agreement(models["Teacher"], models["Plain student"], split, user, k)
kd_all = registry.mean_agreement(pair.teacher.id, pair.student_kd.id, ds, split, k)
plain_all = registry.mean_agreement(pair.teacher.id, pair.student_plain.id, ds, split, k)
c = st.columns(4)
c[0].metric(f"overlap@{k}: teacher vs distilled", f"{kd_user[f'overlap@{k}']:.0%}",
            delta=f"{kd_all[f'overlap@{k}']:.0%} over {kd_all['users']:.0f} users", delta_color="off",
            help="Share of the teacher's top-K that the distilled student also recommends, for this user (the "
                 "small line: averaged over test users).")
c[1].metric(f"overlap@{k}: teacher vs plain", f"{plain_user[f'overlap@{k}']:.0%}",
            delta=f"{plain_all[f'overlap@{k}']:.0%} over {plain_all['users']:.0f} users", delta_color="off",
            help="The same for the student trained without the teacher.")
c[2].metric("Spearman: teacher vs distilled", f"{kd_user['spearman']:.3f}",
            delta=f"{kd_all['spearman']:.3f} on average", delta_color="off",
            help="Rank correlation of the two models' scores over all the user's unseen items (−1 to 1).")
c[3].metric("Spearman: teacher vs plain", f"{plain_user['spearman']:.3f}",
            delta=f"{plain_all['spearman']:.3f} on average", delta_color="off",
            help="The same for the plain student.")

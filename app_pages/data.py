"""Data: the bundled sample by default; upload a file or load a folder; counts, charts, split, preview."""
import streamlit as st

from distill_core import estimate, sizing, views
from distill_core.catalogue import FULL_MAX_ITEMS
from ui import charts, registry, session

ORDER_NOTES = {"timestamps": "by timestamp (ties keep file order)", "file order": "by file order (no timestamps)"}

st.title("Data")
st.caption("Interactions (user, item, optional rating and time) with optional item titles and genres. "
           "Every interaction counts as a positive; each user's last item is the test item, the one before "
           "it the validation item.")

st.subheader("Load a dataset")
c = st.columns(3)
c[0].button("Use the bundled sample", key="data_sample", on_click=session.use_sample,
            help="1,000 users, 1,800 items, about 100,000 interactions with a long tail (see sample_data/README.md).")
c[1].file_uploader("Upload a file", type=session.UPLOAD_TYPES, key="data_upload", on_change=session.on_upload,
                   args=("data_upload",),
                   help="CSV, TSV or Parquet with user and item columns (user_id/userId, item_id/movieId, ...), "
                        "optional rating and timestamp. The delimiter is detected.")
c[2].text_input("Folder path", key="data_folder", placeholder="/data/ml-1m",
                help="A MovieLens folder (ml-100k, ml-1m, ml-latest), a RecBole atomic-file folder, or a "
                     "folder with one CSV/Parquet table, on the machine running the dashboard.")
c[2].selectbox("Format", session.FOLDER_FORMATS, key="data_format",
               help="auto recognises every supported layout; choose one to insist on it.")
c[2].button("Load folder", key="data_load", on_click=session.on_load_folder, args=("data_folder", "data_format"),
            help="Load the folder above; on failure the current dataset stays active.")


ds = session.active_dataset()
error = session.take_data_error()
if error:
    st.error(f"{error}\n\nThe dataset '{ds.name}' stays active.")

stats = views.dataset_stats(ds)
st.subheader(f"Active dataset: {ds.name}")
st.caption(f"Format detected: **{ds.format}** · source: {ds.source} · fingerprint {ds.fingerprint}")
st.caption(f"Order within each user: {ORDER_NOTES[ds.order_source]}")
c = st.columns(4)
c[0].metric("Users", f"{ds.n_users:,}", help="Distinct users after removing duplicates.")
c[1].metric("Items", f"{ds.n_items:,}", help="Distinct items with at least one interaction.")
c[2].metric("Interactions", f"{ds.n_interactions:,}", help="Distinct (user, item) pairs.")
c[3].metric("Density", f"{ds.density:.2%}", help="Interactions / (users × items).")
st.caption(f"The most popular {views.HEAD_SHARE:.0%} of items hold {stats['head_share']:.0%} of all interactions; "
           f"users have {stats['min_user_interactions']}-{stats['max_user_interactions']} interactions "
           f"(median {stats['median_user_interactions']:.0f}).")

c = st.columns(2)
c[0].plotly_chart(charts.long_tail(views.item_popularity(ds)), key="data_long_tail")
c[1].plotly_chart(charts.user_activity(views.user_activity(ds)), key="data_activity")

st.subheader("Split")
st.dataframe(views.split_sizes(registry.split(ds)), hide_index=True, key="data_split")
st.caption("Temporal leave-one-out per user; users with fewer than 3 interactions stay in training only.")

st.subheader("How it will train")
st.caption(f"With the default models. Up to {FULL_MAX_ITEMS:,} items every model trains on the full softmax and the "
           f"student on the teacher's whole distribution; above, on a sampled softmax (logQ-corrected) and the "
           f"teacher's top-K soft labels, so the cost per example stops growing with the catalogue. Sequence models "
           f"read the last {sizing.auto_max_len(ds)} items. Memory is estimated before any job starts; a job that "
           f"would not fit is refused with the estimate.")
timing = st.session_state.get("data_timing", {}).get(ds.fingerprint)
st.dataframe(estimate.frame(timing or estimate.plan(ds)), hide_index=True, key="data_plan")
if st.button("Time a few training steps", key="data_time",
             help="Trains each default model for a few steps and ranks a slice of the validation users, then "
                  "estimates an epoch (seconds; more with other jobs running)."):
    with st.spinner("Timing a few steps of each model…"):
        st.session_state.setdefault("data_timing", {})[ds.fingerprint] = estimate.timed(ds)
    st.rerun()

st.subheader("Preview")
st.dataframe(views.preview(ds, 50), hide_index=True, key="data_preview")

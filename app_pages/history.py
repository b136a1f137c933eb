"""Run history: every stored run, filterable; curves of several runs overlaid; one run's downloads,
deletion and export for deployment."""
import streamlit as st

from distill_core import history
from distill_core.runs import ROLE_LABELS, run_label
from ui import registry, run_history, session, widgets

ds = session.active_dataset()
store = registry.store()

st.title("Run history")
st.caption("Every run in the run store, on every dataset: teachers, distilled students and plain students, "
           "finished or not. Filter the table, overlay the curves of several runs, and download, delete or "
           "export one run.")
run_history.flash()

runs = store.runs()
if not runs:
    st.info("The run store is empty. Train a teacher on the Teacher page, or run the demo on the Overview page: "
            "every run is listed here as soon as it starts.")
    widgets.page_link("app_pages/teacher.py", "Train a teacher")
    widgets.page_link("app_pages/overview.py", "Run the demo")
    st.stop()

datasets = history.dataset_options(runs)
c = st.columns([2, 2, 2, 3])
f_ds = c[0].multiselect("Dataset", list(datasets), format_func=datasets.get, key="history_f_dataset",
                        placeholder="all", help="Datasets the runs were trained on (name and fingerprint). "
                                                "Empty: all.")
f_kind = c[1].multiselect("Kind", history.KINDS, format_func=ROLE_LABELS.get, key="history_f_kind",
                          placeholder="all", help="Teacher, distilled student or plain student. Empty: all.")
f_status = c[2].multiselect("Status", history.STATUSES, key="history_f_status", placeholder="all",
                            help="done, running, failed, cancelled (stopped), interrupted (the app ended during "
                                 "training). Empty: all.")
f_text = c[3].text_input("Search", key="history_f_text", placeholder="e.g. sasrec alpha 0.5",
                         help="Words that must all appear in the run's id, dataset, model, settings, status or "
                              "error (any case).")
shown = history.filter_runs(runs, datasets=f_ds, kinds=f_kind, statuses=f_status, text=f_text)
st.caption(f"{len(shown)} of {len(runs)} runs, newest first. Metrics are on the test split.")
st.dataframe(run_history.runs_frame(shown, known={r.id for r in runs}), hide_index=True, key="history_table",
             column_config={"NDCG@10": st.column_config.NumberColumn(format="%.4f"),
                            "HR@10": st.column_config.NumberColumn(format="%.4f"),
                            "Recall@20": st.column_config.NumberColumn(format="%.4f"),
                            "started": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm"),
                            "duration s": st.column_config.NumberColumn(format="%.1f")})

st.subheader("Curves")
by_id = {r.id: r for r in runs}
picked = [rid for rid in st.session_state.get("history_overlay", []) if rid in by_id]
st.session_state["history_overlay"] = picked  # a deleted run leaves the selection
options = list(dict.fromkeys([r.id for r in shown if r.history] + picked))
c = st.columns([4, 1])
chosen = c[0].multiselect("Runs to overlay", options, format_func=lambda i: history.short_label(by_id[i]),
                          key="history_overlay", help="Runs with at least one finished epoch (those the filters "
                                                      "show, plus any chosen before). Each becomes one line.")
term = c[1].selectbox("Loss term", ["total", "ce", "kl"], format_func=run_history.SERIES.get,
                      key="history_loss_term", help="The training loss per epoch (mean over the epoch's "
                                                    "examples): the total, its CE, or its KD term: the KL for "
                                                    "Hinton KD, the method's term (RD, RRD, DE) for another "
                                                    "method (the table's method column).")
if chosen:
    curves = history.curves_frame([by_id[i] for i in chosen])
    c = st.columns(2)
    c[0].plotly_chart(run_history.overlay(curves, term, "Training loss per epoch"), key="history_loss")
    c[1].plotly_chart(run_history.overlay(curves, "val_ndcg@10", "Validation NDCG@10 per epoch"),
                      key="history_val")
else:
    st.caption("Choose runs above to overlay their training loss and validation NDCG@10.")

st.subheader("One run")
if not shown:
    st.caption("No run matches the filters.")
    st.stop()
if st.session_state.get("history_run") not in {r.id for r in shown}:
    st.session_state.pop("history_run", None)  # filtered out or deleted: fall back to the newest shown
rid = st.selectbox("Run", [r.id for r in shown], format_func=lambda i: run_label(by_id[i]),
                   key="history_run", help="The run to download, delete or export (the filtered runs).")
rec = by_id[rid]
teacher = f", distilled from {rec.parent}" + ("" if rec.parent in by_id else " (deleted)") if rec.parent else ""
st.caption(f"{ROLE_LABELS.get(rec.kind, rec.kind)} on {history.dataset_label(rec)}{teacher}; "
           f"status {rec.status}." + (f" Error: {rec.error}" if rec.error else ""))
with st.expander("Stored config, metrics and info"):
    st.json(history.run_bundle(rec) | {"history": f"{len(rec.history)} epochs (in the JSON download)"})
run_history.downloads(rec)
run_history.delete_panel(rec)

st.subheader("Export for deployment")
run_history.export_panel(rec, ds)

"""The Run history page's composite parts: the curve overlay, delete with confirmation, the downloads
of one run, and the export for deployment with its ranking check."""
from __future__ import annotations

from collections.abc import Collection, Sequence

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from distill_core import Dataset, RecDistillError, export, history, views
from distill_core.runs import method_of, run_label
from distill_core.store import RunRecord
from distill_core.workflows import same_dataset

from ui import registry

PENDING_KEY = "history_pending_delete"  # the run whose deletion waits for confirmation
FLASH_KEY = "history_flash"  # (kind, message) shown once after a delete
EXPORT_KEY = "history_export_result"  # (run id, Exported) of the last export
# "kl" holds a distilled run's KD term whatever its method: the KL for Hinton KD, else RD's, RRD's or DE's term
SERIES = {"total": "total loss (nats)", "ce": "CE, hard labels (nats)", "kl": "KD term (KL, or the method's)",
          "val_ndcg@10": "NDCG@10 on the validation split (0-1)", "val_hr@10": "HR@10 on the validation split (0-1)"}


def runs_frame(runs: Sequence[RunRecord], known: Collection[str] | None = None) -> pd.DataFrame:
    """``history.runs_frame`` with the distillation method beside the model (``runs.method_of``: "logits" for a
    distilled run stored before the methods, None for teachers and plain students)."""
    frame = history.runs_frame(runs, known)
    frame.insert(frame.columns.get_loc("model") + 1, "method", [method_of(r) for r in runs])
    return frame


def overlay(curves: pd.DataFrame, series: str, title: str) -> go.Figure:
    """One line per run of ``series`` against the epoch."""
    df = curves[curves["series"] == series]
    fig = px.line(df, x="epoch", y="value", color="label", markers=True, hover_data=["run"])
    if len(df) and df["epoch"].max() <= 20:
        fig.update_xaxes(dtick=1)  # whole epochs only
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title=SERIES[series], height=360, uirevision="keep",
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend_title_text="",
                      legend={"orientation": "h", "y": -0.25})
    return fig


def flash() -> None:
    """The result of the last delete, shown once."""
    if msg := st.session_state.pop(FLASH_KEY, None):
        (st.success if msg[0] == "success" else st.error)(msg[1])


def _ask(rid: str) -> None:
    st.session_state[PENDING_KEY] = rid


def _cancel() -> None:
    st.session_state.pop(PENDING_KEY, None)


def _confirm(rid: str, students_key: str) -> None:
    with_students = bool(st.session_state.get(students_key, False))
    st.session_state.pop(PENDING_KEY, None)
    try:
        gone = history.delete_run(registry.store(), rid, with_students=with_students)
    except RecDistillError as e:  # a run still training, or one deleted meanwhile: nothing is lost
        st.session_state[FLASH_KEY] = ("error", f"Not deleted: {e}")
        return
    st.session_state[FLASH_KEY] = ("success", f"Deleted {len(gone)} run(s) and their weight files: {', '.join(gone)}.")


def delete_panel(rec: RunRecord) -> None:
    """A delete button that first asks for confirmation (and says what else the deletion touches)."""
    if st.session_state.get(PENDING_KEY) != rec.id:
        st.button("🗑 Delete this run…", key="history_delete", on_click=_ask, args=(rec.id,),
                  disabled=rec.status == "running",
                  help="Removes the run from the store and its weight file from disk, after you confirm. "
                       "A run still training cannot be deleted.")
        return
    students = history.students_of(registry.store(), rec.id)
    size = f" and its weight file ({rec.weights})" if rec.weights else ""
    st.warning(f"Delete **{run_label(rec)}**{size}? This cannot be undone.")
    students_key = "history_delete_students"
    if students:
        st.caption(f"{len(students)} student(s) were distilled from this teacher. Kept, they stay in this list and "
                   "can still be exported, but the Distill and Recommendations pages no longer show them "
                   "(they compare a student with its teacher).")
        st.checkbox(f"Also delete the {len(students)} student(s) distilled from it", key=students_key,
                    help="Delete the distilled students whose teacher this is, with their weight files. Plain "
                         "students have no teacher and are kept.")
    c = st.columns([1, 1, 6])
    c[0].button("Yes, delete", type="primary", key="history_delete_confirm", on_click=_confirm,
                args=(rec.id, students_key), help="Delete now.")
    c[1].button("Cancel", key="history_delete_cancel", on_click=_cancel, help="Keep the run.")


def downloads(rec: RunRecord) -> None:
    """The run's JSON bundle and, when it has them, its weights."""
    c = st.columns([3, 2, 2])
    c[0].download_button("Config, history and metrics (JSON)", history.bundle_json(rec), f"{rec.id}.json",
                         "application/json", key="history_download_json", icon=":material/download:",
                         on_click="ignore",
                         help="The run's stored config, per-epoch history (loss terms, validation NDCG@10 and "
                              "HR@10), test metrics and info (size, timings) in one JSON file.")
    if rec.weights:
        c[1].download_button("Weights (.pt state dict)", history.weights_bytes(registry.store(), rec.id),
                             f"{rec.id}.pt", "application/octet-stream", key="history_download_weights",
                             icon=":material/download:", on_click="ignore",
                             help="The PyTorch state dict; load it with torch.load(path, weights_only=True) into "
                                  "the model built from the config in the JSON file.")
    else:
        c[1].caption(f"No weights: the run is {rec.status}.")


def _export(rec: RunRecord, ds: Dataset) -> None:
    # read the inputs here, not as bound arguments: a value changed in the same interaction as the click
    # reaches the session state before callbacks run, but not arguments bound in the previous run
    fmt, n_users = st.session_state["history_export_format"], int(st.session_state["history_export_users"])
    model = registry.model(rec.id, ds)
    split = registry.split(ds, rec.config["split"])
    meta = export.serving_meta(model, ds, rec)
    fn = export.export_onnx if fmt == "ONNX" else export.export_torchscript
    try:
        st.session_state[EXPORT_KEY] = (rec.id, fn(model, split, meta, n_check=n_users))
    except RecDistillError as e:
        st.session_state[EXPORT_KEY] = (rec.id, str(e))


def export_panel(rec: RunRecord, ds: Dataset) -> None:
    """Export to TorchScript (ONNX too when onnx and onnxscript are installed), then show the ranking check and
    the file."""
    if rec.status != "done" or not rec.weights:
        st.caption(f"Only a finished run with weights can be exported (this one is {rec.status}).")
        return
    if not same_dataset(rec, ds):
        st.info(f"This run was trained on **{rec.dataset_name}**, not on the active dataset **{ds.name}**. Load "
                f"that dataset on the Data page to export it: the ranking check scores its users.")
        return
    formats = ["TorchScript"] + (["ONNX"] if export.onnx_available() else [])
    c = st.columns([2, 2, 1], vertical_alignment="bottom")
    c[0].selectbox("Format", formats, key="history_export_format",
                         help="TorchScript runs in any PyTorch (C++ or Python) without this code. ONNX is offered "
                              "only when the onnx and onnxscript packages are installed (onnxruntime too for "
                              "its ranking check).")
    c[1].number_input("Users in the ranking check", 10, 5000, 200, 10, key="history_export_users",
                                help="Test users sampled (seed 0) whose top-10 lists and scores of the exported "
                                     "file are compared with the original model's.")
    c[2].button("Export", type="primary", key="history_export", on_click=_export, args=(rec, ds),
                help="Trace the model, save it, load the saved bytes back and compare its rankings with the "
                     "original's.")
    if not export.onnx_available():
        st.caption("ONNX is not offered: its export needs both `onnx` and `onnxscript`, and at least one is not "
                   "installed here (`onnxruntime` as well runs its ranking check).")
    done = st.session_state.get(EXPORT_KEY)
    if done is None or done[0] != rec.id:
        return
    result = done[1]
    if isinstance(result, str):
        st.error(f"Export failed: {result}")
        return
    chk = result.check
    if chk is None:
        st.warning(f"{result.format} file written but not checked: onnxruntime is not installed here.")
    elif chk.ok:
        st.success(f"Ranking check passed: the exported file gives the same top-{chk.k} lists as the original for "
                   f"all {chk.users} sampled test users ({chk.identical_top_k} identical in order), largest score "
                   f"difference {chk.max_abs_diff:.2e}.")
    else:
        st.error(f"Ranking check FAILED: same top-{chk.k} for {chk.tie_equivalent_top_k} of {chk.users} users, "
                 f"largest score difference {chk.max_abs_diff:.2e} (allowed: rtol {chk.rtol:g}, atol {chk.atol:g}). "
                 "Do not deploy this file.")
    st.download_button(f"{result.file_name} ({views.human_bytes(len(result.data))})", result.data,
                       result.file_name, "application/octet-stream", key="history_download_export",
                       icon=":material/download:", on_click="ignore",
                       help="The exported model. Inputs: users (batch,) and seq (batch, max_len) of item indices, "
                            "newest last, left-padded with n_items; output: (batch, n_items) scores. The "
                            "TorchScript file carries recdistill.json (sizes, original user and item ids).")

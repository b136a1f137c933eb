"""Recording runs in the run store: a training run's row, curve, weights and outcome, the config it is
stored with, the lookup of a stored plain student, and a stored model read back for a dataset.

A run's stored config (``run_config``) is what tells runs apart: a job reuses a stored run, and a sweep a stored
cell, only when the configs are equal. A stored run is used only on the dataset it was trained on
(``check_same_dataset``, the one check of it).
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from distill_core.config import DistillConfig, ModelSpec, SplitOptions, TrainConfig
from distill_core.data.dataset import Dataset, Split, split_dataset
from distill_core.distill import TrainedModel, train_model
from distill_core.errors import ConfigError, RecDistillError, StoreError
from distill_core.models import Recommender, build_model
from distill_core.runner import JobContext
from distill_core.segments import model_segments
from distill_core.store import RunRecord, RunStore

log = logging.getLogger(__name__)


class _StoreHistory:
    """Trainer callback that writes each epoch's row into the run store."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store, self.run_id, self.rows = store, run_id, []

    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "epoch_end":
            self.rows.append(payload["metrics"])
            self.store.update_history(self.run_id, self.rows)


def train_and_record(ctx: JobContext, store: RunStore, ds: Dataset, split: Split, role: str, spec: ModelSpec,
                     train: TrainConfig, config: dict[str, Any], *, teacher: Recommender | None = None,
                     distill: DistillConfig | None = None, parent: str | None = None) -> str:
    """Train one model in a job and record it in the store as run ``role`` with ``config``; its run id.

    The run ends "done" (with metrics, info and weights), "cancelled" when the trainer stopped short, or
    "failed" when training or recording it raised (the error is raised again)."""
    rid = store.create_run(role, ds.fingerprint, ds.name, config, parent=parent)
    ctx.add_run(role, rid)
    hist = _StoreHistory(store, rid)
    try:
        tm = train_model(split, spec, train, role=role, teacher=teacher, distill=distill,
                         callbacks=[ctx.callback, hist], control=ctx.control)
        # the trainer's answer, not the stop flag now: a Stop after the last batch is too late (see runner)
        if tm.fit.cancelled:
            store.finish_run(rid, "cancelled", history=tm.fit.history)
        else:
            store.finish_run(rid, "done", history=tm.fit.history, metrics=tm.test,
                             info=run_info(tm) | segment_info(tm.model, split), state_dict=tm.model.state_dict())
    except Exception as e:  # training or recording it (e.g. a full disk): the run ends failed, as the job does
        _record_failure(store, rid, f"{type(e).__name__}: {e}")
        raise
    return rid


def _record_failure(store: RunStore, rid: str, error: str) -> None:
    try:
        store.finish_run(rid, "failed", error=error)
    except StoreError:  # the store cannot be written either: the job's own error is the one to raise
        log.exception("run %s failed (%s) and could not be marked failed", rid, error)


def run_info(tm: TrainedModel) -> dict[str, Any]:
    """The ``info`` a finished run is stored with: size, times, family, device, soft-label mode."""
    s = tm.summary()
    return {"params": s["params"], "bytes": s["bytes"], "train_seconds": s["train_seconds"],
            "best_epoch": s["best_epoch"], "score_ms_per_1k_users": s["score_ms_per_1k_users"],
            "family": tm.spec.family, "dim": tm.spec.dim, "device": str(next(tm.model.parameters()).device),
            "soft_labels": s["soft_labels"], "selection": s["selection"],
            "epochs_run": s["epochs_run"], "stopped": s["stopped"], "path": s["path"], "path_text": s["path_text"]}


def segment_info(model: Recommender, split: Split) -> dict[str, Any]:
    """``{"segments": ...}`` of a finished model (``segments.model_segments``), or nothing when they cannot be
    computed: the run is kept either way, and the Who gains page computes them from its weights later."""
    try:
        return {"segments": model_segments(model, split).summary}
    except (RecDistillError, ValueError, RuntimeError):
        log.exception("segments of a finished %s model could not be computed", model.family)
        return {}


def run_config(split: SplitOptions, spec: ModelSpec, train: TrainConfig, distill: DistillConfig | None) -> dict[str, Any]:
    """The config a run is stored with (a distilled student's also names its teacher: ``| {"teacher": id}``)."""
    return {"split": asdict(split), "model": asdict(spec), "train": asdict(train),
            "distill": distill.to_dict() if distill is not None else None}


def plain_run(store: RunStore, ds: Dataset, config: dict[str, Any]) -> str | None:
    """The newest finished plain student of ``ds`` stored with exactly ``config`` and with weights, else None."""
    for rec in store.runs(dataset=ds.fingerprint, kind="student_plain", status="done"):
        if rec.config == config and rec.weights:
            return rec.id
    return None


def same_dataset(rec: RunRecord, ds: Dataset) -> bool:
    """Whether the stored run was trained on ``ds`` (the same fingerprint: interactions and data options)."""
    return rec.dataset == ds.fingerprint


def check_same_dataset(rec: RunRecord, ds: Dataset, what: str = "run") -> None:
    """Refuse a stored run trained on another dataset than ``ds``; ``what`` names it in the message."""
    if not same_dataset(rec, ds):
        raise ConfigError(f"{what} {rec.id} was trained on dataset '{rec.dataset_name}', not on the active "
                          f"dataset '{ds.name}'; train a teacher on this dataset first")


def load_model(store: RunStore, run_id: str, ds: Dataset) -> Recommender:
    """Rebuild a stored model for ``ds`` (refused when the run was trained on another dataset)."""
    rec = store.get(run_id)
    check_same_dataset(rec, ds)
    split = split_dataset(ds, SplitOptions(**rec.config["split"]))
    model = build_model(ModelSpec(**rec.config["model"]), split)
    model.load_state_dict(store.load_weights(run_id))
    return model.eval()

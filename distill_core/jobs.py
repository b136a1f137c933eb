"""Workflows that the dashboard and the CLI start as background jobs, recorded in the run store.

* ``teacher_job``: train a teacher.
* ``distill_job``: distil a student from a stored teacher, and train the same student without
  distillation (reused from the store when an identical plain run exists), so every view can
  show both.
* ``demo_job``: both of the above with the defaults.
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from distill_core.config import DistillConfig, ModelSpec, RunConfig, SplitOptions, TrainConfig
from distill_core.data.dataset import Dataset, Split, split_dataset
from distill_core.distill import TrainedModel, resolve_device, train_model
from distill_core.errors import ConfigError, StoreError
from distill_core.models import Recommender, build_model
from distill_core.runner import JobContext
from distill_core.store import RunStore

log = logging.getLogger(__name__)


class _StoreHistory:
    """Trainer callback that writes each epoch's row into the run store."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store, self.run_id, self.rows = store, run_id, []

    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "epoch_end":
            self.rows.append(payload["metrics"])
            self.store.update_history(self.run_id, self.rows)


def _train_and_record(ctx: JobContext, store: RunStore, ds: Dataset, split: Split, role: str, spec: ModelSpec,
                      train: TrainConfig, config: dict[str, Any], *, teacher: Recommender | None = None,
                      distill: DistillConfig | None = None, parent: str | None = None) -> str:
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
            store.finish_run(rid, "done", history=tm.fit.history, metrics=tm.test, info=_info(tm),
                             state_dict=tm.model.state_dict())
    except Exception as e:  # training or recording it (e.g. a full disk): the run ends failed, as the job does
        _record_failure(store, rid, f"{type(e).__name__}: {e}")
        raise
    return rid


def _record_failure(store: RunStore, rid: str, error: str) -> None:
    try:
        store.finish_run(rid, "failed", error=error)
    except StoreError:  # the store cannot be written either: the job's own error is the one to raise
        log.exception("run %s failed (%s) and could not be marked failed", rid, error)


def _info(tm: TrainedModel) -> dict[str, Any]:
    s = tm.summary()
    return {"params": s["params"], "bytes": s["bytes"], "train_seconds": s["train_seconds"],
            "best_epoch": s["best_epoch"], "score_ms_per_1k_users": s["score_ms_per_1k_users"],
            "family": tm.spec.family, "dim": tm.spec.dim, "device": str(next(tm.model.parameters()).device),
            "soft_labels": tm.distill.soft_labels if tm.distill is not None else None,
            "selection": tm.distill.selection if tm.distill is not None else None}


def _config(split: SplitOptions, spec: ModelSpec, train: TrainConfig, distill: DistillConfig | None) -> dict[str, Any]:
    return {"split": asdict(split), "model": asdict(spec), "train": asdict(train),
            "distill": asdict(distill) if distill is not None else None}


def load_model(store: RunStore, run_id: str, ds: Dataset) -> Recommender:
    """Rebuild a stored model for ``ds`` (refused when the run was trained on another dataset)."""
    rec = store.get(run_id)
    if rec.dataset != ds.fingerprint:
        raise ConfigError(f"run {run_id} was trained on dataset '{rec.dataset_name}', not on the active "
                          f"dataset '{ds.name}'; train a teacher on this dataset first")
    split = split_dataset(ds, SplitOptions(**rec.config["split"]))
    model = build_model(ModelSpec(**rec.config["model"]), split)
    model.load_state_dict(store.load_weights(run_id))
    return model.eval()


def teacher_job(ds: Dataset, spec: ModelSpec, train: TrainConfig, store: RunStore,
                split_opts: SplitOptions = SplitOptions()) -> Any:
    """A job function training a teacher; its result is the teacher's run id."""
    resolve_device(train.device)  # refuse an impossible device before the job starts

    def fn(ctx: JobContext) -> str:
        split = split_dataset(ds, split_opts)
        ctx.set_phase("teacher", 0, 1)
        return _train_and_record(ctx, store, ds, split, "teacher", spec, train, _config(split_opts, spec, train, None))
    return fn


def _plain_run(store: RunStore, ds: Dataset, config: dict[str, Any]) -> str | None:
    for rec in store.runs(dataset=ds.fingerprint, kind="student_plain", status="done"):
        if rec.config == config and rec.weights:
            return rec.id
    return None


def distill_job(ds: Dataset, teacher_run: str, spec: ModelSpec, train: TrainConfig, distill: DistillConfig,
                store: RunStore, *, with_plain: bool = True, reuse_plain: bool = True) -> Any:
    """A job function distilling ``spec`` from the stored teacher, plus the plain baseline.

    Its result is ``{"student_kd": run id, "student_plain": run id}``.
    """
    rec = store.get(teacher_run)
    if rec.dataset != ds.fingerprint:
        raise ConfigError(f"the teacher {teacher_run} was trained on dataset '{rec.dataset_name}', not on the "
                          f"active dataset '{ds.name}'; train a teacher on this dataset first")
    split_opts = SplitOptions(**rec.config["split"])
    resolve_device(train.device)

    def fn(ctx: JobContext) -> dict[str, str]:
        split = split_dataset(ds, split_opts)
        teacher = load_model(store, teacher_run, ds)
        plain_cfg = _config(split_opts, spec, train, None)
        plain = _plain_run(store, ds, plain_cfg) if (with_plain and reuse_plain) else None
        n = 2 if with_plain and plain is None else 1
        out = {}
        ctx.set_phase("student_kd", 0, n)
        out["student_kd"] = _train_and_record(ctx, store, ds, split, "student_kd", spec, train,
                                              _config(split_opts, spec, train, distill) | {"teacher": teacher_run},
                                              teacher=teacher, distill=distill, parent=teacher_run)
        if with_plain and not ctx.cancelled:
            if plain is None:
                ctx.set_phase("student_plain", 1, n)
                plain = _train_and_record(ctx, store, ds, split, "student_plain", spec, train, plain_cfg)
            ctx.add_run("student_plain", plain)
            out["student_plain"] = plain
        return out
    return fn


def demo_job(ds: Dataset, store: RunStore, cfg: RunConfig = RunConfig()) -> Any:
    resolve_device(cfg.teacher_train.device)

    def fn(ctx: JobContext) -> dict[str, str]:
        split = split_dataset(ds, cfg.split)
        ctx.set_phase("teacher", 0, 3)
        t_id = _train_and_record(ctx, store, ds, split, "teacher", cfg.teacher, cfg.teacher_train,
                                 _config(cfg.split, cfg.teacher, cfg.teacher_train, None))
        out = {"teacher": t_id}
        if ctx.cancelled:
            return out
        teacher = load_model(store, t_id, ds)
        ctx.set_phase("student_kd", 1, 3)
        out["student_kd"] = _train_and_record(
            ctx, store, ds, split, "student_kd", cfg.student, cfg.student_train,
            _config(cfg.split, cfg.student, cfg.student_train, cfg.distill) | {"teacher": t_id},
            teacher=teacher, distill=cfg.distill, parent=t_id)
        if ctx.cancelled:
            return out
        plain_cfg = _config(cfg.split, cfg.student, cfg.student_train, None)
        plain = _plain_run(store, ds, plain_cfg)
        if plain is None:
            ctx.set_phase("student_plain", 2, 3)
            plain = _train_and_record(ctx, store, ds, split, "student_plain", cfg.student, cfg.student_train, plain_cfg)
        ctx.add_run("student_plain", plain)
        out["student_plain"] = plain
        return out
    return fn


def ladder_job(ds: Dataset, teacher_run: str, family: str, dims: tuple[int, ...], train: TrainConfig,
               distill: DistillConfig, store: RunStore) -> Any:
    """A job function distilling one student per size in ``dims`` from the stored teacher, each with its
    plain twin (reused when stored), smallest first, so the Compare page fills in as each finishes.

    Its result is ``{dim: {"student_kd": run id, "student_plain": run id}}`` for the sizes that finished.
    """
    if not dims:
        raise ConfigError("size ladder: choose at least one student dim")
    steps = [distill_job(ds, teacher_run, ModelSpec(family, int(d)), train, distill, store)
             for d in sorted(set(dims))]  # each validates its settings now, before the job starts

    def fn(ctx: JobContext) -> dict[int, dict[str, str]]:
        out = {}
        for d, step in zip(sorted(set(dims)), steps):
            if ctx.cancelled:
                break
            out[d] = step(ctx)
        return out
    return fn

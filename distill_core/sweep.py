"""Alpha x temperature sweeps: one distilled student per grid cell, trained one after another in a
background job, resumable through the run store.

A cell (alpha, T) is the distilled student whose stored config is exactly the one ``distill_job``
writes for these settings (split, student, training settings, DistillConfig, teacher run). A cell
whose run is already 'done' is never trained again, so a stopped sweep resumes where it stopped, a
grown grid trains only its new cells, and a student distilled on the Distill page with the same
settings counts as a cell. The plain student does not depend on alpha, T or the teacher: it is
trained once (or reused from the store) and is every cell's baseline.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from distill_core.config import DistillConfig, ModelSpec, SplitOptions, TrainConfig
from distill_core.data.dataset import Dataset, split_dataset
from distill_core.distill import resolve_device
from distill_core.errors import ConfigError
from distill_core.inspect import best_val_ndcg
from distill_core.jobs import _config, _plain_run, _train_and_record, load_model
from distill_core.runner import JobContext
from distill_core.store import RunRecord, RunStore
from distill_core.trainer import TrainingError

log = logging.getLogger(__name__)

MAX_CELLS = 100  # a larger grid is almost surely a typo (and would run for hours)
# The values a grid cell reports, with their axis / colour-bar titles.
METRICS: dict[str, str] = {"val_ndcg@10": "validation NDCG@10, best epoch (0-1)",
                           "ndcg@10": "test NDCG@10 (0-1)", "hr@10": "test HR@10 (0-1)",
                           "final_kl": "KL at the last epoch, before T² (nats)"}
COLUMNS = ["alpha", "temperature", "status", "run", *METRICS]
NOT_TRAINED = "not trained"


def parse_grid(values: str | Iterable[float], kind: str, name: str | None = None) -> tuple[float, ...]:
    """The distinct values of an alpha grid (``kind="alpha"``: each in [0, 1]) or a temperature grid
    (``kind="temperature"``: each > 0), sorted; text is split on commas, semicolons or spaces.
    Errors name the field as ``name`` (e.g. ``--alpha`` in the CLI)."""
    name = name or f"{kind} grid"
    if isinstance(values, str):
        tokens = [t for t in re.split(r"[,;\s]+", values.strip()) if t]
        out = []
        for t in tokens:
            try:
                out.append(float(t))
            except ValueError:
                raise ConfigError(f"{name}: {t!r} is not a number") from None
    else:
        out = [float(v) for v in values]
    if not out:
        raise ConfigError(f"{name} is empty: give at least one value (e.g. {'0.5' if kind == 'alpha' else '2'})")
    for v in out:
        if not math.isfinite(v):
            raise ConfigError(f"{name}: {v!r} is not a finite number")
        if kind == "alpha" and not 0 <= v <= 1:
            raise ConfigError(f"{name}: alpha {v:g} is outside [0, 1]")
        if kind == "temperature" and v <= 0:
            raise ConfigError(f"{name}: temperature {v:g} must be > 0")
    return tuple(sorted(set(out)))


@dataclass(frozen=True)
class SweepSpec:
    """A grid of alphas x temperatures for one student and its training settings."""

    alphas: tuple[float, ...]
    temperatures: tuple[float, ...]
    student: ModelSpec = field(default_factory=lambda: ModelSpec("mf", 6))
    train: TrainConfig = field(default_factory=TrainConfig)
    t_squared: bool = True
    soft_labels: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "alphas", parse_grid(self.alphas, "alpha"))
        object.__setattr__(self, "temperatures", parse_grid(self.temperatures, "temperature"))
        n = len(self.alphas) * len(self.temperatures)
        if n > MAX_CELLS:
            raise ConfigError(f"the grid has {n} cells ({len(self.alphas)} alphas x {len(self.temperatures)} "
                              f"temperatures); at most {MAX_CELLS} are allowed")
        DistillConfig(soft_labels=self.soft_labels)  # the usual message for a bad mode

    def cells(self) -> list[DistillConfig]:
        """One DistillConfig per cell, alpha-major."""
        return [DistillConfig(a, t, self.t_squared, self.soft_labels) for a in self.alphas for t in self.temperatures]


def cell_label(alpha: float, temperature: float) -> str:
    return f"alpha {alpha:g} · T {temperature:g}"


def teacher_split(store: RunStore, teacher_run: str, ds: Dataset) -> SplitOptions:
    """The split the teacher was trained on (refused when it was trained on another dataset)."""
    rec = store.get(teacher_run)
    if rec.kind != "teacher":
        raise ConfigError(f"run {teacher_run} is a {rec.kind} run, not a teacher")
    if rec.dataset != ds.fingerprint:
        raise ConfigError(f"the teacher {teacher_run} was trained on dataset '{rec.dataset_name}', not on the "
                          f"active dataset '{ds.name}'; train a teacher on this dataset first")
    return SplitOptions(**rec.config["split"])


def cell_config(split: SplitOptions, spec: SweepSpec, distill: DistillConfig, teacher_run: str) -> dict[str, Any]:
    """The config a cell's run is stored with: the one distill_job writes for the same settings."""
    return _config(split, spec.student, spec.train, distill) | {"teacher": teacher_run}


def plain_config(split: SplitOptions, spec: SweepSpec) -> dict[str, Any]:
    return _config(split, spec.student, spec.train, None)


def _cell_runs(store: RunStore, ds: Dataset, configs: list[dict[str, Any]]) -> list[tuple[RunRecord | None, RunRecord | None]]:
    """For each config: its newest finished run with weights, and its newest run of any status."""
    recs = store.runs(dataset=ds.fingerprint, kind="student_kd")  # one query, newest first
    out = []
    for cfg in configs:
        same = [r for r in recs if r.config == cfg]
        out.append((next((r for r in same if r.status == "done" and r.weights), None), same[0] if same else None))
    return out


def sweep_job(ds: Dataset, teacher_run: str, spec: SweepSpec, store: RunStore) -> Any:
    """A job function training every cell of ``spec`` not yet done in the store, one after another,
    after the plain student (when it is not stored yet). Stop it between or during cells; a cell stopped
    mid-training is stored as cancelled and trained again by the next sweep.

    Its result is ``{"student_plain": id, "trained": [ids], "reused": [ids], "failed": {cell: message}}``.
    """
    split_opts = teacher_split(store, teacher_run, ds)
    resolve_device(spec.train.device)  # refuse an impossible device before the job starts

    def fn(ctx: JobContext) -> dict[str, Any]:
        cells = spec.cells()
        configs = [cell_config(split_opts, spec, d, teacher_run) for d in cells]
        found = _cell_runs(store, ds, configs)
        todo = [(d, cfg) for d, cfg, (done, _) in zip(cells, configs, found) if done is None]
        out: dict[str, Any] = {"student_plain": None, "trained": [], "failed": {},
                               "reused": [done.id for done, _ in found if done is not None]}
        log.info("sweep of %d cells: %d stored, %d to train", len(cells), len(out["reused"]), len(todo))
        split = split_dataset(ds, split_opts)
        p_cfg = plain_config(split_opts, spec)
        plain = _plain_run(store, ds, p_cfg)
        n = len(todo) + (plain is None)
        if plain is None:
            ctx.set_phase("student_plain", 0, n)
            plain = _train_and_record(ctx, store, ds, split, "student_plain", spec.student, spec.train, p_cfg)
            out["trained"].append(plain)
        ctx.add_run("student_plain", plain)
        out["student_plain"] = plain
        teacher = load_model(store, teacher_run, ds) if todo else None
        for i, (d, cfg) in enumerate(todo, start=n - len(todo)):
            if ctx.cancelled:
                break
            label = cell_label(d.alpha, d.temperature)
            done, _ = _cell_runs(store, ds, [cfg])[0]
            if done is not None:  # finished meanwhile by another sweep (e.g. from another session)
                out["reused"].append(done.id)
                continue
            ctx.set_phase(label, i, n)  # the progress bar names the cell
            try:
                rid = _train_and_record(ctx, store, ds, split, "student_kd", spec.student, spec.train, cfg,
                                        teacher=teacher, distill=d, parent=teacher_run)
            except TrainingError as e:  # e.g. a NaN loss at one T: recorded as failed, the others go on
                log.warning("sweep cell %s failed: %s", label, e)
                out["failed"][label] = str(e)
                continue
            ctx.add_run(label, rid)
            out["trained"].append(rid)
        return out
    return fn


def grid_frame(store: RunStore, ds: Dataset, teacher_run: str, spec: SweepSpec) -> pd.DataFrame:
    """One row per cell (alpha-major) read from the store: alpha, temperature, status, run, and for a
    finished cell its best validation NDCG@10, test NDCG@10 and HR@10, and the training KL of its
    last epoch (before the T² factor); NaN where the cell has no finished run."""
    split_opts = teacher_split(store, teacher_run, ds)
    cells = spec.cells()
    found = _cell_runs(store, ds, [cell_config(split_opts, spec, d, teacher_run) for d in cells])
    rows = []
    for d, (done, latest) in zip(cells, found):
        row: dict[str, Any] = {"alpha": d.alpha, "temperature": d.temperature, "run": None,
                               "status": latest.status if latest is not None else NOT_TRAINED}
        row.update({m: math.nan for m in METRICS})
        if done is not None:
            val = best_val_ndcg(done)
            row.update(status="done", run=done.id, **{
                "val_ndcg@10": val if val is not None else math.nan,
                "ndcg@10": done.metrics.get("ndcg@10", math.nan), "hr@10": done.metrics.get("hr@10", math.nan),
                "final_kl": done.history[-1].get("kl", math.nan) if done.history else math.nan})
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS).astype({m: "float64" for m in METRICS})


def best_cell(grid: pd.DataFrame) -> dict[str, Any] | None:
    """The finished cell with the highest validation NDCG@10 (chosen on validation, never on test;
    ties go to the first cell, alpha-major), or None."""
    done = grid.dropna(subset=["val_ndcg@10"])
    return None if done.empty else done.loc[done["val_ndcg@10"].idxmax()].to_dict()


def plain_record(store: RunStore, ds: Dataset, teacher_run: str, spec: SweepSpec) -> RunRecord | None:
    """The stored plain student of this sweep's settings (the baseline of every cell), if any."""
    rid = _plain_run(store, ds, plain_config(teacher_split(store, teacher_run, ds), spec))
    return store.get(rid) if rid is not None else None


def _summary(rec: RunRecord | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    return {"run": rec.id, "model": rec.config["model"], "params": rec.info.get("params"),
            "val_ndcg@10": best_val_ndcg(rec), "ndcg@10": rec.metrics.get("ndcg@10"),
            "hr@10": rec.metrics.get("hr@10"), "recall@20": rec.metrics.get("recall@20")}


def sweep_report(store: RunStore, ds: Dataset, teacher_run: str, spec: SweepSpec,
                 result: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON report of ``python -m distill_core sweep``: settings, teacher, plain baseline, every
    cell, the best cell by validation NDCG@10, and (given the job's result) what was trained or reused."""
    grid = grid_frame(store, ds, teacher_run, spec)
    out = {"dataset": {"name": ds.name, "users": ds.n_users, "items": ds.n_items, "interactions": ds.n_interactions},
           "alphas": list(spec.alphas), "temperatures": list(spec.temperatures), "student": asdict(spec.student),
           "train": asdict(spec.train), "t_squared": spec.t_squared, "soft_labels": spec.soft_labels,
           "teacher": _summary(store.get(teacher_run)),
           "student_plain": _summary(plain_record(store, ds, teacher_run, spec)),
           "cells": grid.to_dict("records"), "best": best_cell(grid)}
    if result is not None:
        out.update(trained=len(result["trained"]), reused=len(result["reused"]), failed=result["failed"])
    return out

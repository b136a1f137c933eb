"""Reading a sweep back from the run store: one frame per side (distilled cells over alpha x T, plain
cells over learning rate x weight decay), each side's best cell by validation NDCG@10, the gain between
them, and the JSON report of ``python -m distill_core sweep``. Training the cells is ``distill_core.sweep``.
"""
from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import pandas as pd

from distill_core import sizing
from distill_core.config import METHOD_KNOBS, ModelSpec
from distill_core.data.dataset import Dataset
from distill_core.runs import best_val_ndcg
from distill_core.store import RunRecord, RunStore
from distill_core.sweep import (COLUMNS, METRICS, NOT_TRAINED, PLAIN_COLUMNS, SweepSpec, cell_config, cell_runs,
                                plain_config, teacher_split)
from distill_core.workflows.record import plain_run


def grid_frame(store: RunStore, ds: Dataset, teacher_run: str, spec: SweepSpec) -> pd.DataFrame:
    """One row per cell (alpha-major) read from the store: alpha, temperature, the method, its swept knob
    (``MAIN_KNOB``) and the cell's value of it, status, run, and for a
    finished cell its best validation NDCG@10, test NDCG@10 and HR@10, and the training KL of its
    last epoch (before the T² factor); NaN where the cell has no finished run."""
    split_opts = teacher_split(store, teacher_run, ds)
    cells = spec.cells()
    found = cell_runs(store, ds, [cell_config(split_opts, spec, d, teacher_run) for d in cells])
    rows = []
    for d, (done, latest) in zip(cells, found):
        row = {"alpha": d.alpha, "temperature": d.temperature, "method": d.method, "knob": spec.knob,
               "value": float(getattr(d, spec.knob)), **_numbers(done, latest)}
        if done is not None:
            row["final_kl"] = done.history[-1].get("kl", math.nan) if done.history else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS).astype({m: "float64" for m in METRICS})


def plain_frame(store: RunStore, ds: Dataset, teacher_run: str, spec: SweepSpec) -> pd.DataFrame:
    """One row per plain cell (ladder order: the sweep's own settings first): lr, weight_decay, status,
    run, best validation NDCG@10, test NDCG@10 and HR@10 (NaN where the cell has no finished run)."""
    split_opts = teacher_split(store, teacher_run, ds)
    cells = spec.plain_cells()
    found = cell_runs(store, ds, [plain_config(split_opts, spec, t) for t in cells], "student_plain")
    rows = [{"lr": t.lr, "weight_decay": t.weight_decay, **_numbers(done, latest)}
            for t, (done, latest) in zip(cells, found)]
    return pd.DataFrame(rows, columns=PLAIN_COLUMNS).astype({m: "float64" for m in PLAIN_COLUMNS[4:]})


def _numbers(done: RunRecord | None, latest: RunRecord | None) -> dict[str, Any]:
    row: dict[str, Any] = {"status": latest.status if latest is not None else NOT_TRAINED, "run": None}
    row.update({m: math.nan for m in METRICS})
    if done is not None:
        val = best_val_ndcg(done)
        row.update(status="done", run=done.id, **{
            "val_ndcg@10": val if val is not None else math.nan,
            "ndcg@10": done.metrics.get("ndcg@10", math.nan), "hr@10": done.metrics.get("hr@10", math.nan)})
    return row


def best_cell(grid: pd.DataFrame) -> dict[str, Any] | None:
    """The finished cell (of ``grid_frame`` or ``plain_frame``) with the highest validation NDCG@10
    (chosen on validation, never on test; ties go to the first row), or None."""
    done = grid.dropna(subset=["val_ndcg@10"])
    return None if done.empty else done.loc[done["val_ndcg@10"].idxmax()].to_dict()


def to_train(grid: pd.DataFrame, plain: pd.DataFrame) -> int:
    """How many cells of either side have no finished run yet."""
    return int((grid["status"] != "done").sum() + (plain["status"] != "done").sum())


def comparison(grid: pd.DataFrame, plain: pd.DataFrame) -> dict[str, Any]:
    """Each side's best cell by validation NDCG@10, how many of its cells finished, and the gain of the
    distilled one over the plain one on test (``gain_ndcg@10``: the ratio of their test NDCG@10, as in
    ``run``'s report; NaN until both sides have a finished cell)."""
    kd, pl = best_cell(grid), best_cell(plain)
    gain = kd["ndcg@10"] / pl["ndcg@10"] if kd and pl and pl["ndcg@10"] else math.nan
    return {"best": kd, "best_plain": pl, "gain_ndcg@10": gain,
            "finished": {"distilled": int((grid["status"] == "done").sum()),
                         "plain": int((plain["status"] == "done").sum()), "of": len(grid)}}


def plain_record(store: RunStore, ds: Dataset, teacher_run: str, spec: SweepSpec) -> RunRecord | None:
    """The stored plain student with the sweep's own settings (the first plain cell), if any."""
    rid = plain_run(store, ds, plain_config(teacher_split(store, teacher_run, ds), spec))
    return store.get(rid) if rid is not None else None


def _summary(rec: RunRecord | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    return {"run": rec.id, "model": rec.config["model"], "params": rec.info.get("params"),
            "val_ndcg@10": best_val_ndcg(rec), "ndcg@10": rec.metrics.get("ndcg@10"),
            "hr@10": rec.metrics.get("hr@10"), "recall@20": rec.metrics.get("recall@20")}


def sweep_report(store: RunStore, ds: Dataset, teacher_run: str, spec: SweepSpec,
                 result: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON report of ``python -m distill_core sweep``: settings, teacher, the student's share of its
    parameters, both sides' budgets, every distilled and plain cell, each side's best cell by
    validation NDCG@10 and the gain between them, and (given the job's result) what was trained or reused."""
    grid, plain = grid_frame(store, ds, teacher_run, spec), plain_frame(store, ds, teacher_run, spec)
    teacher = store.get(teacher_run)
    out = {"dataset": {"name": ds.name, "users": ds.n_users, "items": ds.n_items, "interactions": ds.n_interactions},
           "method": spec.method, "knob": spec.knob, "knob_values": list(spec.axis),
           "method_knobs": ({k: getattr(spec.distill, k) for k in METHOD_KNOBS} if spec.method != "logits" else {}),
           "alphas": list(spec.alphas), "temperatures": list(spec.temperatures), "student": asdict(spec.student),
           "train": asdict(spec.train), "t_squared": spec.t_squared, "soft_labels": spec.soft_labels,
           "teacher": _summary(teacher),
           "param_ratio": sizing.param_ratio(spec.student, ModelSpec(**teacher.config["model"]), ds.n_users,
                                             ds.n_items),
           "budget": spec.budget(), "student_plain": _summary(plain_record(store, ds, teacher_run, spec)),
           "cells": grid.to_dict("records"), "plain_cells": plain.to_dict("records"), **comparison(grid, plain)}
    if result is not None:
        out.update(trained=len(result["trained"]), reused=len(result["reused"]), failed=result["failed"])
    return out

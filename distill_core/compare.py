"""Comparing model sizes: every stored model of a dataset with its size, speed and quality.

The Compare page draws these frames; ``bench/quality.py`` measures the same quantities over seeds.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from distill_core.distill import scoring_ms_per_1k
from distill_core.models import Recommender
from distill_core.runs import ROLE_LABELS, model_label
from distill_core.store import RunRecord, RunStore

ROLES = {kind: label.lower() for kind, label in ROLE_LABELS.items()}  # the "role" column: "distilled student"
METRICS = {"NDCG@10": "ndcg@10", "HR@10": "hr@10", "Recall@20": "recall@20"}
LADDER_DIMS = (4, 8, 16, 32, 64)


def weight_bytes(store: RunStore, rec: RunRecord) -> int | None:
    """Size of the run's weight file on disk (None when it has none)."""
    if not rec.weights:
        return None
    try:
        return os.path.getsize(store.weights_dir / rec.weights)
    except OSError:
        return None


def models_frame(store: RunStore, dataset: str, reference: RunRecord | None = None) -> pd.DataFrame:
    """One row per finished model on ``dataset``: role, architecture, parameters, size on disk, scoring
    latency, test metrics, and retention: the model's test NDCG@10 / HR@10 as a % of ``reference``'s (the
    teacher the page compares against; by default each distilled student's own teacher, else the newest)."""
    runs = [r for r in store.runs(dataset=dataset, status="done") if r.weights and r.kind in ROLES]
    teachers = {r.id: r for r in runs if r.kind == "teacher"}
    default_ref = reference or next(iter(teachers.values()), None)
    rows = []
    for r in runs:
        ref = reference or (teachers.get(r.parent) if r.kind == "student_kd" else None) or default_ref
        m = r.metrics
        row = {"run": r.id, "role": ROLES[r.kind], "model": model_label(r), "family": r.config["model"]["family"],
               "dim": r.config["model"]["dim"], "params": r.info.get("params"), "bytes": weight_bytes(store, r),
               "ms_per_1k_users": r.info.get("score_ms_per_1k_users"), "device": r.info.get("device", "cpu"),
               **{name: m.get(key) for name, key in METRICS.items()}, "teacher": r.parent}
        if r.kind == "student_kd" and r.config.get("distill"):
            d = r.config["distill"]
            row["alpha"], row["T"], row["soft_labels"] = d["alpha"], d["temperature"], r.info.get("soft_labels")
        for name, key in (("NDCG@10", "ndcg@10"), ("HR@10", "hr@10")):
            base = ref.metrics.get(key) if ref is not None else None
            row[f"retention {name} %"] = (100 * m[key] / base) if (base and m.get(key) is not None
                                                                     and r.kind != "teacher") else None
        rows.append(row)
    cols = ["run", "role", "model", "family", "dim", "params", "bytes", "ms_per_1k_users", "device", *METRICS,
            "retention NDCG@10 %", "retention HR@10 %", "alpha", "T", "soft_labels", "teacher"]
    return pd.DataFrame(rows, columns=cols)


def pareto_mask(params: Sequence[float], quality: Sequence[float]) -> np.ndarray:
    """True for the points no other point beats: as few parameters or fewer *and* as good or better,
    strictly better in one of the two. ``(n,) bool``."""
    p = np.asarray(params, dtype=float)
    q = np.asarray(quality, dtype=float)
    ok = np.isfinite(p) & np.isfinite(q)
    out = np.zeros(len(p), dtype=bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (p <= p[i]) & (q >= q[i]) & ((p < p[i]) | (q > q[i]))
        out[i] = not dominated.any()
    return out


def measure_latency(model: Recommender, repeats: int = 7, batch: int = 256) -> dict[str, float | str]:
    """Scoring time of 1,000 users against the whole catalogue on this machine (median of ``repeats``)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        model.score_all(torch.zeros(1, dtype=torch.long, device=device))  # warm-up, off the clock
        ms = scoring_ms_per_1k(model, batch=batch, repeats=repeats)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return {"ms_per_1k_users": ms, "device": name, "repeats": float(repeats), "batch": float(batch)}

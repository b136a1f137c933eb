"""Lookups of stored runs: which runs belong together, and how a run is named.

A distillation is three runs: the teacher, the distilled student (whose ``parent`` is the teacher) and
the plain student, the same student trained on the hard labels only; a page shows the three side by side
only when all three are stored and finished. :data:`ROLE_LABELS` is the one place the roles get their
display names (the pages, the charts and the run history all use it). Pure functions over the run store
(no Streamlit).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from distill_core.errors import StoreError
from distill_core.store import RunRecord, RunStore

ROLE_LABELS = {"teacher": "Teacher", "student_kd": "Distilled student", "student_plain": "Plain student"}


@dataclass(frozen=True)
class Distillation:
    """A distilled student with its teacher and the same student trained without distillation."""

    teacher: RunRecord
    student_kd: RunRecord
    student_plain: RunRecord


def plain_for(store: RunStore, kd: RunRecord) -> RunRecord | None:
    """The finished plain run whose config is the distilled run's without the teacher (newest first)."""
    want = {k: v for k, v in kd.config.items() if k != "teacher"} | {"distill": None}
    for rec in store.runs(dataset=kd.dataset, kind="student_plain", status="done"):
        if rec.config == want and rec.weights:
            return rec
    return None


def distillations(store: RunStore, dataset: str, teacher: str | None = None) -> list[Distillation]:
    """Finished distilled students on ``dataset`` (of ``teacher`` if given) whose teacher and plain
    twin are stored too, newest first."""
    out = []
    for kd in store.runs(dataset=dataset, kind="student_kd", status="done"):
        if kd.parent is None or (teacher is not None and kd.parent != teacher) or not kd.weights:
            continue
        plain = plain_for(store, kd)
        try:
            t = store.get(kd.parent)
        except StoreError:  # the teacher was deleted: the pair cannot be shown
            continue
        if plain is not None and t.weights:
            out.append(Distillation(teacher=t, student_kd=kd, student_plain=plain))
    return out


def best_val_ndcg(rec: RunRecord) -> float | None:
    """The best validation NDCG@10 in a run's history (the epoch whose weights were kept)."""
    vals = [row["val_ndcg@10"] for row in rec.history if "val_ndcg@10" in row]
    return max(vals) if vals else None


def model_label(rec: RunRecord) -> str:
    """``mf dim 64`` (plus layers for the models that have them)."""
    m = rec.config.get("model", {})
    layers = f", {m.get('layers')} layers" if m.get("family") != "mf" else ""
    return f"{m.get('family', '?')} dim {m.get('dim', '?')}{layers}"


def method_of(rec: RunRecord) -> str | None:
    """The distillation method of a distilled run (``config.METHODS``), None for a teacher or a plain student.
    A run stored before the methods existed, or with Hinton KD (``DistillConfig.to_dict`` leaves the default
    out), has no ``method`` in its config: it was trained by ``"logits"``."""
    d = rec.config.get("distill") if rec.kind == "student_kd" else None
    return d.get("method", "logits") if d else None


def distill_text(d: Mapping[str, Any]) -> str:
    """A stored ``config["distill"]`` in a few words: ``alpha 0.5, T 2`` for Hinton KD (the text runs had before
    the methods), ``rrd, alpha 0.5`` for another method; T only for the methods that read it (logits, logits+rrd)."""
    method = d.get("method", "logits")
    temperature = f", T {d['temperature']:g}" if "logits" in method.split("+") else ""
    return f"{'' if method == 'logits' else method + ', '}alpha {d['alpha']:g}{temperature}"


def run_label(rec: RunRecord) -> str:
    """One line naming a run: its model (and how a distilled one was distilled), its result and when it ended."""
    ndcg = rec.metrics.get("ndcg@10")
    result = f"test NDCG@10 {ndcg:.4f}" if ndcg is not None else rec.status
    extra = ""
    if rec.kind == "student_kd" and rec.config.get("distill"):
        extra = f", {distill_text(rec.config['distill'])}"
    when = pd.Timestamp(rec.ended or rec.started, unit="s").strftime("%Y-%m-%d %H:%M")
    return f"{model_label(rec)}{extra} · {result} · {when} · {rec.id}"

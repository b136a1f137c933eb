"""The run history: every stored run as a table, filters over it, curves of several runs, a run's
JSON bundle, and deletion that leaves no weight file behind.

Pure functions over the run store (no Streamlit), shaped for the Run history page.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from distill_core.errors import StoreError
from distill_core.runs import ROLE_LABELS, method_of, model_label
from distill_core.store import RunRecord, RunStore

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("teacher", "student_kd", "student_plain")
STATUSES: tuple[str, ...] = ("running", "done", "failed", "cancelled", "interrupted")
BUNDLE_FORMAT = "recdistill-run/1"
# per-epoch series a stored history holds (trainer.fit): the loss terms and validation metrics
CURVE_COLUMNS: tuple[str, ...] = ("total", "ce", "kl", "val_ndcg@10", "val_hr@10")


# ----------------------------------------------------------------------------- table and filters
def config_summary(rec: RunRecord) -> str:
    """The settings that tell runs apart, in one line: KD settings, then the training settings."""
    c = rec.config
    parts = []
    if d := c.get("distill"):
        method = d.get("method", "logits")  # a run stored before the methods existed: Hinton KD
        t = (f", T {d.get('temperature'):g}{'' if d.get('t_squared', True) else ', no T²'}"
             if method in ("logits", "logits+rrd") else "")
        parts.append(f"{'' if method == 'logits' else method + ', '}alpha {d.get('alpha'):g}{t}, "
                     f"soft labels {d.get('soft_labels')}")
    if t := c.get("train"):
        parts.append(f"≤{t.get('epochs')} epochs, lr {t.get('lr'):g}, batch {t.get('batch_size')}, "
                     f"seed {t.get('seed')}")
    if s := c.get("split"):
        parts.append(f"split {s.get('method')}")
    return " · ".join(parts)


def dataset_label(rec: RunRecord) -> str:
    """``sample (3f2a9c01)``: names can repeat (two uploads called ratings.csv), fingerprints cannot."""
    return f"{rec.dataset_name} ({rec.dataset[:8]})"


def dataset_options(runs: Iterable[RunRecord]) -> dict[str, str]:
    """Fingerprint -> label of every dataset the runs were trained on, in order of first appearance."""
    out: dict[str, str] = {}
    for r in runs:
        out.setdefault(r.dataset, dataset_label(r))
    return out


def _haystack(rec: RunRecord) -> str:
    return " ".join(str(x) for x in (rec.id, rec.dataset_name, rec.dataset, rec.kind, ROLE_LABELS.get(rec.kind, ""),
                                     model_label(rec), config_summary(rec), rec.status, rec.parent or "",
                                     rec.error or "")).lower()


def filter_runs(runs: Iterable[RunRecord], *, datasets: Collection[str] = (), kinds: Collection[str] = (),
                statuses: Collection[str] = (), text: str = "") -> list[RunRecord]:
    """Runs matching every given filter: dataset fingerprints, kinds and statuses (empty: any), and
    every word of ``text`` somewhere in the run (id, dataset, model, config, status, error; any case)."""
    words = text.lower().split()
    return [r for r in runs
            if (not datasets or r.dataset in datasets) and (not kinds or r.kind in kinds)
            and (not statuses or r.status in statuses) and all(w in _haystack(r) for w in words)]


def runs_frame(runs: Sequence[RunRecord], known: Collection[str] | None = None) -> pd.DataFrame:
    """One row per run: id, dataset, kind, model, config, status, test metrics, size, times, teacher.

    ``known`` are the ids still in the store: a teacher not among them is marked "(deleted)".
    """
    rows = []
    for r in runs:
        teacher = r.parent or ""
        if teacher and known is not None and teacher not in known:
            teacher += " (deleted)"
        rows.append({"run": r.id, "dataset": dataset_label(r), "kind": ROLE_LABELS.get(r.kind, r.kind),
                     "model": model_label(r), "config": config_summary(r), "status": r.status,
                     "NDCG@10": r.metrics.get("ndcg@10"), "HR@10": r.metrics.get("hr@10"),
                     "Recall@20": r.metrics.get("recall@20"), "params": r.info.get("params"),
                     "epochs": len(r.history), "started": pd.Timestamp(r.started, unit="s"),
                     "duration s": (r.ended - r.started) if r.ended is not None else None,
                     "teacher": teacher, "error": r.error or ""})
    cols = ["run", "dataset", "kind", "model", "config", "status", "NDCG@10", "HR@10", "Recall@20", "params",
            "epochs", "started", "duration s", "teacher", "error"]
    return pd.DataFrame(rows, columns=cols)


def short_label(rec: RunRecord) -> str:
    """A legend entry: role (and the method of a run distilled by another than Hinton KD), model and the end
    of the id (which tells two alike runs apart)."""
    method = method_of(rec)
    how = f" · {method}" if method not in (None, "logits") else ""  # distilled by another method than Hinton KD
    return f"{ROLE_LABELS.get(rec.kind, rec.kind)}{how} · {model_label(rec)} · …{rec.id[-6:]}"


# ----------------------------------------------------------------------------- curves
def curves_frame(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """Per-epoch curves of several runs in long form: run, label, epoch, series, value."""
    rows = []
    for r in runs:
        label = short_label(r)
        for h in r.history:
            for col in CURVE_COLUMNS:
                if col in h and h[col] is not None:
                    rows.append({"run": r.id, "label": label, "epoch": int(h["epoch"]), "series": col,
                                 "value": float(h[col])})
    return pd.DataFrame(rows, columns=["run", "label", "epoch", "series", "value"])


# ----------------------------------------------------------------------------- bundle
def _finite(x: Any) -> Any:
    """NaN and infinities become None: the bundle stays strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def _iso(t: float | None) -> str | None:
    return pd.Timestamp(t, unit="s", tz="UTC").isoformat() if t is not None else None


def run_bundle(rec: RunRecord) -> dict[str, Any]:
    """Everything the store knows of a run but its weights: config, per-epoch history, test metrics, info."""
    return _finite({"format": BUNDLE_FORMAT, "id": rec.id, "kind": rec.kind,
                    "dataset": {"name": rec.dataset_name, "fingerprint": rec.dataset}, "teacher": rec.parent,
                    "status": rec.status, "started": _iso(rec.started), "ended": _iso(rec.ended),
                    "config": rec.config, "history": rec.history, "metrics": rec.metrics, "info": rec.info,
                    "weights_file": rec.weights, "error": rec.error})


def bundle_json(rec: RunRecord) -> bytes:
    """The bundle as UTF-8 JSON (indented: people read it)."""
    return json.dumps(run_bundle(rec), indent=2, allow_nan=False).encode()


def weights_bytes(store: RunStore, rid: str) -> bytes:
    """The run's ``.pt`` state dict file as it is on disk (loads with ``torch.load(..., weights_only=True)``)."""
    path = store.weights_path(rid)
    if path is None:
        raise StoreError(f"run {rid} has no weights (status {store.get(rid).status})")
    return path.read_bytes()


# ----------------------------------------------------------------------------- deletion
def students_of(store: RunStore, rid: str) -> list[RunRecord]:
    """Runs distilled from ``rid`` (their ``parent``)."""
    return [r for r in store.runs() if r.parent == rid]


def delete_run(store: RunStore, rid: str, *, with_students: bool = False) -> list[str]:
    """Delete a run and its weight file (and, if asked, the students distilled from it); the ids deleted.

    Refused while the run trains (its job would write weights after the row is gone, leaving a file
    no run refers to) or while a student is being distilled from it (its job reads this teacher).
    Students left behind keep working; the pages that pair a student with its teacher skip them
    (``runs.distillations``).
    """
    rec = store.get(rid)
    students = students_of(store, rid)
    victims = [rec] + (students if with_students else [])
    busy = [r.id for r in victims if r.status == "running"]
    if busy:
        raise StoreError(f"run {', '.join(busy)} is still training; stop its job (or wait for it) before deleting")
    if learning := [r.id for r in students if r.status == "running"]:
        raise StoreError(f"{', '.join(learning)} is being distilled from {rid} right now; stop that job (or wait "
                         "for it) before deleting its teacher")
    for r in victims:
        store.delete(r.id)
        log.info("deleted run %s (weights %s)", r.id, r.weights)
    return [r.id for r in victims]

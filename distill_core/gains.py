"""Who gains from distillation: the segments (:mod:`distill_core.segments`) of a teacher, its distilled student
and the plain student side by side, and the gain of distilled over plain per bucket with a bootstrap interval.

The gain in a bucket is ``mean(kd) - mean(plain)`` of HR or NDCG@K over its users (test cases for items),
and the ratio ``mean(kd) / mean(plain)``. Its 95% interval is the paired percentile bootstrap (Efron &
Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13): the bucket's users are drawn with replacement
``n_boot`` times, the *same* draws for both models (they rank the same users), and the interval is the 2.5th
and 97.5th percentile of the drawn gains. Each bucket's draws come from ``numpy.random.default_rng([seed,
bucket])``, so a figure is the same on every run. A bucket marked ``too_few`` gets no gain.

Segments are kept in each run's ``info["segments"]``; a run stored before they existed gets them computed
from its weights and kept (``pair_segments``). Pure functions over the engine (no Streamlit).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from distill_core.data.dataset import Split
from distill_core.models import Recommender
from distill_core.runs import ROLE_LABELS, Distillation
from distill_core.diversity import diversity_space
from distill_core.segments import SegmentOptions, SegmentResult, model_segments
from distill_core.store import RunStore

ROLES = ("teacher", "student_kd", "student_plain")
SECTIONS = {"users": "user activity", "items": "item popularity"}
LIST_FIGURES = ("coverage", "gini", "head_share", "tail_share", "novelty", "diversity")


@dataclass(frozen=True)
class Gain:
    """``mean(a) - mean(b)`` and ``mean(a) / mean(b)`` with percentile bootstrap bounds (None: undefined)."""

    diff: float
    lo: float
    hi: float
    ratio: float | None
    ratio_lo: float | None
    ratio_hi: float | None
    n: int


def _drawn_means(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int | list[int],
                 block: int) -> tuple[np.ndarray, np.ndarray]:
    """``(runs, n_boot)`` means of ``a`` and ``b`` (``(runs, n)``) over ``n_boot`` draws of their ``n`` rows with
    replacement, the same rows for every run and both arrays, ``block`` draws at a time."""
    rng = np.random.default_rng(seed)
    n, ma, mb = a.shape[1], [], []
    for start in range(0, n_boot, block):
        idx = rng.integers(0, n, size=(min(block, n_boot - start), n))
        ma.append(a[:, idx].mean(2))
        mb.append(b[:, idx].mean(2))
    return np.concatenate(ma, 1), np.concatenate(mb, 1)


def bootstrap_gain(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int | list[int] = 0,
                   level: float = 0.95, block: int = 200) -> Gain:
    """Paired bootstrap of ``mean(a) - mean(b)`` (and of the ratio) over the rows of ``a`` and ``b``.

    The ratio's bounds are None when some draw has ``mean(b) == 0``. Draws are made ``block`` at a time, so
    no ``n_boot x n`` index table is built for a large bucket.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"bootstrap_gain needs two paired, non-empty 1-d arrays (got {a.shape} and {b.shape})")
    if not 0 < level < 1:
        raise ValueError(f"bootstrap level must be in (0, 1) (got {level!r})")
    ma, mb = (m[0] for m in _drawn_means(a[None], b[None], n_boot, seed, block))
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    lo, hi = np.percentile(ma - mb, q)
    ratio = float(a.mean() / b.mean()) if b.mean() > 0 else None
    r_lo = r_hi = None
    if ratio is not None and (mb > 0).all():
        r_lo, r_hi = (float(x) for x in np.percentile(ma / mb, q))
    return Gain(float(a.mean() - b.mean()), float(lo), float(hi), ratio, r_lo, r_hi, len(a))


@dataclass(frozen=True)
class MeanRatio:
    """The mean over runs of ``mean(a_s) / mean(b_s)`` with percentile bootstrap bounds (None: undefined),
    and the share of the draws at or above ``at_least`` (None when not asked)."""

    ratio: float | None
    lo: float | None
    hi: float | None
    n: int
    runs: int
    share_at_least: float | None = None


def bootstrap_mean_ratio(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int | list[int] = 0,
                         level: float = 0.95, at_least: float | None = None, block: int = 200) -> MeanRatio:
    """Paired bootstrap over rows of the mean over runs of ``mean(a[s]) / mean(b[s])``.

    ``a`` and ``b`` are ``(runs, n)``: ``runs`` pairs of models (one pair per seed) scored on the same ``n``
    rows (test users; a 1-d array is one run). Each draw takes the same rows for every run and both models, so
    the interval is the test set's sampling noise in the seeds' mean gain (Efron & Tibshirani 1993, ch. 13, as
    ``bootstrap_gain``); the seeds' training noise shows in their spread, not here. The bounds are None when
    some draw has a ``mean(b[s]) == 0``. Draws come ``block`` at a time (no ``n_boot x n`` index table).
    """
    a, b = np.atleast_2d(np.asarray(a, dtype=np.float64)), np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"bootstrap_mean_ratio needs two paired, non-empty (runs, n) arrays (got {a.shape} "
                         f"and {b.shape})")
    if not 0 < level < 1:
        raise ValueError(f"bootstrap level must be in (0, 1) (got {level!r})")
    runs, n = a.shape
    mb0 = b.mean(1)
    if (mb0 <= 0).any():
        return MeanRatio(None, None, None, n, runs)
    ratio = float((a.mean(1) / mb0).mean())
    ma, mb = _drawn_means(a, b, n_boot, seed, block)  # (runs, n_boot)
    d = np.where(mb > 0, ma, np.nan) / np.where(mb > 0, mb, 1.0)
    if np.isnan(d).any():
        return MeanRatio(ratio, None, None, n, runs)
    d = d.mean(0)
    lo, hi = np.percentile(d, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    share = float((d >= at_least).mean()) if at_least is not None else None
    return MeanRatio(ratio, float(lo), float(hi), n, runs, share)


def gains_frame(results: Mapping[str, SegmentResult], by: str, metrics: tuple[str, ...] = ("ndcg@10", "hr@10"),
                n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per bucket of ``by`` ("users" or "items") and metric: the three models' means and the gain of
    the distilled student over the plain one with its bootstrap interval (None where the bucket is too few)."""
    if by not in SECTIONS:
        raise ValueError(f"by must be one of {', '.join(SECTIONS)} (got {by!r})")
    kd, plain = results["student_kd"], results["student_plain"]
    rows = []
    for m_i, metric in enumerate(metrics):
        vals = {role: results[role].values(by, metric) for role in ROLES}
        for j, bucket in enumerate(kd.summary[by]["buckets"]):
            inside = vals["student_kd"][1] == j
            row = {"section": by, "bucket": bucket["bucket"], "lo": bucket["lo"], "hi": bucket["hi"],
                   "n": bucket["n"], "too_few": bucket["too_few"], "metric": metric}
            row |= {ROLE_LABELS[role]: float(v[inside].mean()) if inside.any() else None
                    for role, (v, _) in vals.items()}
            g = None
            if not bucket["too_few"] and inside.any():
                g = bootstrap_gain(kd.values(by, metric)[0][inside], plain.values(by, metric)[0][inside],
                                   n_boot, seed=[seed, m_i, j])
            row |= {"gain": g.diff if g else None, "gain_lo": g.lo if g else None, "gain_hi": g.hi if g else None,
                    "ratio": g.ratio if g else None, "ratio_lo": g.ratio_lo if g else None,
                    "ratio_hi": g.ratio_hi if g else None}
            rows.append(row)
    return pd.DataFrame(rows)


def buckets_frame(summaries: Mapping[str, dict[str, Any]], by: str) -> pd.DataFrame:
    """The stored buckets of ``by`` of each model, long: model, bucket, lo, hi, n, too_few, hr@K, ndcg@K."""
    rows = [{"model": ROLE_LABELS[role], **b} for role in ROLES for b in summaries[role][by]["buckets"]]
    return pd.DataFrame(rows)


def lists_frame(summaries: Mapping[str, dict[str, Any]]) -> pd.DataFrame:
    """The list-level figures, one row each, one column per model, and distilled minus plain."""
    k = summaries["teacher"]["k"]
    rows = []
    for fig in LIST_FIGURES:
        key = f"{fig}@{k}"
        row = {"figure": key} | {ROLE_LABELS[r]: summaries[r]["lists"].get(key) for r in ROLES}
        kd, pl = row[ROLE_LABELS["student_kd"]], row[ROLE_LABELS["student_plain"]]
        row["distilled − plain"] = kd - pl if kd is not None and pl is not None else None
        rows.append(row)
    return pd.DataFrame(rows)


def export_frame(gains: list[pd.DataFrame], lists: pd.DataFrame) -> pd.DataFrame:
    """The CSV of the page: every bucket row (both sections, every metric) and the list figures below them
    (section "lists", the figure in ``metric``, distilled minus plain in ``gain``)."""
    tail = lists.rename(columns={"figure": "metric", "distilled − plain": "gain"}).assign(section="lists")
    return pd.concat([*gains, tail], ignore_index=True)[
        ["section", "bucket", "lo", "hi", "n", "too_few", "metric", *(ROLE_LABELS[r] for r in ROLES), "gain",
         "gain_lo", "gain_hi", "ratio", "ratio_lo", "ratio_hi"]]


@dataclass(frozen=True)
class PairSegments:
    """The segments of a stored distillation: computed from the weights (``results``, with the per-user
    values), and as kept in the runs' info (``summaries``); ``computed_now`` names the runs stored without
    segments that got them now."""

    results: dict[str, SegmentResult]
    summaries: dict[str, dict[str, Any]]
    computed_now: tuple[str, ...]


def pair_segments(store: RunStore, pair: Distillation, split: Split, models: Mapping[str, Recommender],
                  opts: SegmentOptions = SegmentOptions()) -> PairSegments:
    """Segments of the pair's three models (``models``: role -> model) on its ``split``; any run whose info
    holds none gets them now (``RunStore.update_info``: nothing else in the info changes)."""
    space = diversity_space(split, opts.svd_rank, opts.seed)  # one diversity space for the three, so their lists compare
    results = {role: model_segments(models[role], split, opts, space=space) for role in ROLES}
    summaries, now = {}, []
    for role, rec in zip(ROLES, (pair.teacher, pair.student_kd, pair.student_plain)):
        current = store.find(rec.id)
        stored = current.info.get("segments") if current is not None else None
        if stored is None or _layout(stored) != _layout(results[role].summary):  # none, or other options
            store.update_info(rec.id, {"segments": results[role].summary})
            stored = results[role].summary
            now.append(role)
        summaries[role] = stored
    return PairSegments(results, summaries, tuple(now))


def _layout(summary: dict[str, Any]) -> tuple[Any, ...]:
    """What must agree for stored segments to stand beside freshly computed ones: K and the buckets."""
    return (summary.get("k"), *((b["bucket"], b["n"]) for by in SECTIONS for b in summary.get(by, {}).get("buckets", [])))

"""Parameter counts without building a model, and the largest student within a size budget.

A claim like "mf dim 6 has about a tenth of the teacher's parameters" holds for one catalogue only:
embedding tables grow with users and items, attention blocks with dim², so the same dim is 0.1 of the
teacher on the sample and 0.21 on a 6,040 x 3,416 dataset. ``student_for_ratio`` therefore picks the
dim from the actual dataset: the largest one whose count stays at or below ``ratio`` x the teacher's.

The counts are closed formulas, one per family, read off the model files (``distill_core/models``) and
cross-checked against ``build_model(...).n_params()`` in ``tests/test_sizing.py``; they count what
``Recommender.n_params`` counts (trainable parameters, not the frozen text table of ``text``).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from distill_core.config import ModelSpec
from distill_core.errors import ConfigError

if TYPE_CHECKING:
    from distill_core.data.dataset import Dataset

TEXT_DIM = 384  # width of the frozen sentence embeddings a text model projects (distill_core.text_embed.DIM)
RECENT = 3  # items the two-tower user tower reads one by one (distill_core.models.two_tower.RECENT)
MAX_DIM = 4096  # ModelSpec's upper bound


def _attention_blocks(d: int, layers: int) -> int:
    # per TransformerEncoderLayer(d, ff=2d): in-proj 3d²+3d, out-proj d²+d, ff 2d²+2d and 2d²+d,
    # two LayerNorms 4d; then the final LayerNorm 2d
    return layers * (8 * d * d + 11 * d) + 2 * d


def n_params(spec: ModelSpec, n_users: int, n_items: int) -> int:
    """Trainable parameters of a model of ``spec`` for ``n_users`` x ``n_items`` (= ``build_model(spec,
    split).n_params()`` for a split of that shape)."""
    d, u, i = spec.dim, n_users, n_items
    if spec.family == "mf":  # user and item tables, item bias
        return (u + i) * d + i
    if spec.family == "two_tower":  # user, history (+ padding row), item tables, item bias, the MLP tower
        width, tower = (2 + RECENT) * d, 0
        for _ in range(spec.layers):
            tower += width * 2 * d + 2 * d
            width = 2 * d
        return u * d + (i + 1) * d + i * d + i + tower + width * d + d
    if spec.family == "sasrec":  # item table (+ padding row), positions, item bias, blocks
        return (i + 1) * d + spec.max_len * d + i + _attention_blocks(d, spec.layers)
    if spec.family == "text":  # as sasrec (or mf for layers = 0) plus the text projection (384 -> d)
        if spec.layers == 0:
            return u * d + i * d + TEXT_DIM * d + i
        return (i + 1) * d + TEXT_DIM * d + spec.max_len * d + i + _attention_blocks(d, spec.layers)
    raise ConfigError(f"model family {spec.family!r} has no parameter formula")


def check_ratio(ratio: float, name: str = "student ratio") -> float:
    """``ratio`` as a float in (0, 1], else a ConfigError naming ``name`` (e.g. ``--student-ratio``)."""
    try:
        r = float(ratio)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in (0, 1] (got {ratio!r})") from None
    if not (math.isfinite(r) and 0 < r <= 1):
        raise ConfigError(f"{name} must be in (0, 1]: the student's share of the teacher's parameters (got {ratio!r})")
    return r


def _valid_dims(spec: ModelSpec) -> range:
    # attention splits dim across heads: only multiples of `heads` are valid there
    step = spec.heads if spec.family in ("sasrec", "text") and spec.layers >= 1 else 1
    return range(step, MAX_DIM + 1, step)


def largest_dim(spec: ModelSpec, n_users: int, n_items: int, budget: float) -> int:
    """The largest valid dim of ``spec``'s family (and its other settings) with at most ``budget``
    parameters; ConfigError when even the smallest one exceeds it. Counts grow with dim, so this is a
    bisection over the valid dims."""
    dims = _valid_dims(spec)
    count = lambda k: n_params(replace(spec, dim=dims[k]), n_users, n_items)  # noqa: E731
    if count(0) > budget:
        raise ConfigError(f"even the smallest {spec.family} student (dim {dims[0]}) has {count(0):,} parameters, "
                          f"more than the budget of {budget:,.0f} on this dataset ({n_users:,} users, "
                          f"{n_items:,} items); give a larger ratio")
    lo, hi = 0, len(dims) - 1  # count(lo) <= budget; find the last such index
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return dims[lo]


def student_for_ratio(student: ModelSpec, teacher_params: int, ratio: float, n_users: int, n_items: int,
                      name: str = "student ratio") -> ModelSpec:
    """``student`` with the largest dim whose parameters are at most ``ratio`` x ``teacher_params`` on a
    dataset of ``n_users`` x ``n_items`` (``ratio`` in (0, 1], checked; errors name ``name``)."""
    r = check_ratio(ratio, name)
    try:
        return replace(student, dim=largest_dim(student, n_users, n_items, r * teacher_params))
    except ConfigError as e:
        raise ConfigError(f"{name} {r:g} of a teacher with {teacher_params:,} parameters: {e}") from None


def param_ratio(student: ModelSpec, teacher: ModelSpec, n_users: int, n_items: int) -> float:
    """The student's parameters over the teacher's on this dataset."""
    return n_params(student, n_users, n_items) / n_params(teacher, n_users, n_items)


def size_line(student: ModelSpec, teacher: ModelSpec, n_users: int, n_items: int) -> str:
    """``mf dim 6: 18,600 parameters, 0.099 of the teacher's 187,336 on this dataset``."""
    s, t = n_params(student, n_users, n_items), n_params(teacher, n_users, n_items)
    return (f"{student.family} dim {student.dim}: {s:,} parameters, {s / t:.3f} of the teacher's {t:,} "
            f"on this dataset ({n_users:,} users, {n_items:,} items)")


def auto_max_len(ds: "Dataset") -> int:
    """The history a sequential model reads by default on ``ds``: the users' mean number of training
    interactions (all but the validation and test item), rounded up to a multiple of 10, within [20, 200].

    SASRec's authors read 200 items on MovieLens-1M (165 per user on average) and 50 on the sparse Amazon sets
    (under 10 per user): a window much longer than most users' histories is padding that costs attention, and a
    much shorter one cuts off the context a long history holds. Sample: 98 per user -> 100; 40,000 users x
    55,000 items with 7 per user -> 20."""
    counts = np.bincount(ds.users) if len(ds.users) else np.zeros(1)
    mean = float(np.maximum(counts[counts > 0] - 2, 1).mean()) if (counts > 0).any() else 1.0
    return int(min(200, max(20, math.ceil(mean / 10) * 10)))

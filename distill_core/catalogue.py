"""How a dataset trains at its size: full or sampled softmax, the K of the soft labels, chunk sizes, memory.

Every per-position cost of the full path is ``O(n_items)``: the softmax of every training position, the
teacher's soft label of every user (``users x items`` floats), every evaluation row. The sampled path costs
``O(negatives + K)`` per position instead, so epoch time grows with the interactions, not with
interactions x items. ``auto`` picks full up to ``FULL_MAX_ITEMS`` items: below it the full softmax is cheap
and exact; above it the sampled path is faster at no measured loss (``bench/scale.py``, BENCHMARKS.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from distill_core import distributed
from distill_core.config import DistillConfig, ModelSpec, TrainConfig
from distill_core.errors import ConfigError

if TYPE_CHECKING:
    from distill_core.data.dataset import Split

# bench/scale.py: at 7,284 items a sampled epoch is already faster than a full one (teacher 1.4 vs 1.8 s, KD
# student 0.56 vs 2.2 s); below about 5,000 items the full softmax costs little and is exact. Quality is not the
# reason for the threshold: the sampled teacher reached 0.98 of the full one on the sample at the default 1,024
# negatives and 0.94 at 256, but 0.945 (0.963 over 10 seeds) and 1.02 on ml-100k (bench/scale_quality.py,
# BENCHMARKS.md): within about 5% either way, and no setting of the knob is best on both, so small catalogues keep
# the exact softmax.
FULL_MAX_ITEMS = 5_000
DEFAULT_TOP_K = 128
# The students' default learning rate on the sampled path (TrainConfig.lr, 5e-3, on the full one). An item's
# embedding is updated only in the batches that draw it (as a positive or one of the shared negatives), a few
# times an epoch on a large catalogue instead of every step, so Adam's per-update step needs to be larger.
# Measured on 40,000 users x 53,438 items (bench/scale_run.py's data): the plain MF student at 5e-3 was still
# rising after 12 epochs (validation NDCG@10 0.0677); at 2e-2 it peaked at epoch 9 (0.0704) with the same test
# NDCG@10 (0.0501 vs 0.0506), and the distilled student peaked at epoch 18 instead of about 33.
SAMPLED_STUDENT_LR = 2e-2
CACHE_BYTES = 512 * 2**20  # a dense users x items soft-label table is cached up to this size
CHUNK_BYTES = 64 * 2**20  # one chunk of (rows x n_items) floats in the soft labels
# One chunk of (users x n_items) scores in evaluation. Small enough that glibc's malloc serves it from its heap
# (it maps blocks above its mmap threshold, at most 32 MB, afresh each time, and every page of a new map faults
# on first write): ranking a 53,438-item catalogue took 23-25 s for 40,000 test users in 64 MB chunks (313
# users) and 11-14 s in chunks of 32-64 users, measured side by side; scoring 512 users x 53,438 items into a
# fresh tensor 128 ms, into a reused one 61 ms.
EVAL_CHUNK_BYTES = 16 * 2**20
# Validation (early stopping, every epoch) ranks at most this many (user, item) scores: every user up to
# 5e8 / n_items users (all of them on the sample and ml-100k), else a fixed seeded sample of that many,
# the same for every model of a dataset. Each user is still ranked against the whole catalogue; the test
# evaluation always ranks every user. At 40,000 users x 53,000 items a full validation took about 20 s on
# 2 cores, so 50 validations of a run would take longer than everything else together.
VALID_CELLS = 500_000_000


class MemoryBudgetError(ConfigError):
    """A job would not fit in memory; raised before it starts."""


@dataclass(frozen=True)
class TrainPath:
    """The resolved training path of one model on one catalogue (stored with the run)."""

    loss: str  # "full" | "sampled"
    negatives: int  # 0 on the full path
    negative_beta: float
    top_k: int  # K of the soft labels (n_items: the whole distribution); 0 without a teacher
    sparse_tables: bool = False  # id tables train by row updates, lazy Adam (see sparse_tables())
    n_items: int = 0  # the catalogue it was resolved for (0: unknown, as in runs stored before it was kept)

    def describe(self) -> str:
        loss = ("full softmax" if self.loss == "full" else
                f"sampled softmax ({self.negatives} negatives, q ∝ (count + 1)^{self.negative_beta:g}, logQ-corrected)")
        labels = "; soft labels: " + labels_text(self.top_k, self.n_items) if self.top_k else ""
        return loss + ("; row updates of the id tables (lazy Adam)" if self.sparse_tables else "") + labels


def labels_text(top_k: int, n_items: int) -> str:
    """The soft labels of K ``top_k`` on a catalogue of ``n_items`` in words (``n_items`` 0: unknown)."""
    if n_items and top_k >= n_items:
        return f"the teacher's whole distribution ({n_items:,} items)"
    return f"top-{top_k}"


def loss_for(loss: str, n_items: int) -> str:
    """``full`` or ``sampled`` for ``loss`` (full | sampled | auto) on a catalogue of ``n_items``: auto is full up
    to ``FULL_MAX_ITEMS`` items, sampled above."""
    return loss if loss != "auto" else ("full" if n_items <= FULL_MAX_ITEMS else "sampled")


def resolve_loss(train: TrainConfig, n_items: int) -> str:
    """``loss_for(train.loss, n_items)``; checks ``negatives`` against the catalogue."""
    loss = loss_for(train.loss, n_items)
    if loss == "sampled" and train.negatives >= n_items:
        raise ConfigError(f"negatives must be below the catalogue of {n_items} items (got {train.negatives}); "
                          "use fewer negatives or loss='full'")
    return loss


def student_lr(loss: str, n_items: int) -> float:
    """The students' default learning rate for ``loss`` (full | sampled | auto) on ``n_items`` items: the
    config's 5e-3 on the full softmax, ``SAMPLED_STUDENT_LR`` on the sampled path (both students get it)."""
    return SAMPLED_STUDENT_LR if loss_for(loss, n_items) == "sampled" else TrainConfig().lr


def resolve_top_k(distill: DistillConfig, loss: str, n_users: int, n_items: int, cache_bytes: int | None = None) -> int:
    """The K of the soft labels: ``distill.soft_top_k`` (at most the catalogue), or auto."""
    cache_bytes = CACHE_BYTES if cache_bytes is None else cache_bytes
    if distill.soft_top_k:
        if distill.soft_top_k > n_items:
            raise ConfigError(f"soft_top_k must be at most the catalogue of {n_items} items "
                              f"(got {distill.soft_top_k})")
        return distill.soft_top_k
    if loss == "full" and n_users * n_items * 4 <= cache_bytes:
        return n_items  # today's exact path: the whole distribution, cached
    return min(DEFAULT_TOP_K, n_items)


def lookups_per_step(train: TrainConfig) -> int:
    """The id-table rows one sampled step looks up, soft labels aside: each position's target and input (its user
    or its history item) and the batch's shared negatives."""
    return train.batch_size * 2 + train.negatives


# Row updates pay when a step touches a small part of a table. The sasrec teacher (about 3,000 lookups, dim 64):
# at 674,582 items 0.311 -> 0.034 s a step, at 7,284 items 0.040 -> 0.036 (bench/scale.py). A top-128 KD student
# looks up 131,000 rows a step more; on 700,000 x 6 its step took 40 ms with rows against 30 ms dense (a
# micro-benchmark: gathering the touched rows' weights and moments is random access), 7.3 vs 6.9 s an epoch at
# 70,204 items. The rule leaves the soft labels out on purpose: the distilled and the plain student must train
# with the same optimiser, and on the 53,438-item run lazy Adam alone moved the plain student from test NDCG@10
# 0.0501 to 0.0594 (bench/scale_run.py), so giving it to one student and not the other would decide the comparison.
ROW_UPDATE_SHARE = 8  # row updates when a step's lookups are at most 1/8 of the catalogue


def sparse_tables(train: TrainConfig, loss: str, n_items: int) -> bool:
    """Whether the id tables train by row updates (``rowadam``: lazy Adam on the rows a batch touched):
    on the sampled path (``TrainConfig.sparse_tables``), when a step looks up at most ``1 / ROW_UPDATE_SHARE``
    of the catalogue (``lookups_per_step``), without weight decay (decaying only the touched rows would be
    another regulariser; ``torch.optim.SparseAdam`` has none either) and outside torchrun (DDP all-reduces
    dense ``.grad``). Teacher and students of one catalogue and config get the same answer.

    Why: a sampled batch touches a few thousand of a table's rows, but a dense gradient and Adam read and write
    every row every step: the sasrec teacher's epoch time grew with exponent 1.53 in the catalogue, 1.04 with
    row updates (bench/scale.py). It changes the optimiser, not the loss."""
    return (loss == "sampled" and train.sparse_tables and train.weight_decay == 0 and distributed.current() is None
            and lookups_per_step(train) * ROW_UPDATE_SHARE <= n_items)


def resolve(train: TrainConfig, distill: DistillConfig | None, n_users: int, n_items: int) -> TrainPath:
    loss = resolve_loss(train, n_items)
    k = resolve_top_k(distill, loss, n_users, n_items) if distill is not None and distill.alpha < 1 else 0
    return TrainPath(loss, train.negatives if loss == "sampled" else 0, train.negative_beta, k,
                     sparse_tables=sparse_tables(train, loss, n_items), n_items=n_items)


def rows_per_chunk(n_items: int, bytes_per_cell: int = 8, budget: int = CHUNK_BYTES, most: int = 1024) -> int:
    """Rows of a ``(rows, n_items)`` block that fit ``budget`` bytes (at least 1, at most ``most``)."""
    return max(1, min(most, budget // max(1, n_items * bytes_per_cell)))


def validation_users(users: np.ndarray, n_items: int, cells: int | None = None) -> np.ndarray:
    """The validation users early stopping ranks: all when ``len(users) x n_items <= cells``, else a fixed
    seeded sample of ``cells // n_items`` of them (sorted)."""
    cells = VALID_CELLS if cells is None else cells
    most = max(1, cells // max(n_items, 1))
    if len(users) <= most:
        return users
    return np.sort(np.random.default_rng(0).choice(users, size=most, replace=False))


def available_bytes() -> int | None:
    """Memory this process may still take: MemAvailable (Linux), capped by a cgroup limit; None if unknown."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        return None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                raw = f.read().strip()
            if raw.isdigit():
                with open(path.replace("memory.max", "memory.current").replace("limit_in_bytes", "usage_in_bytes")) as g:
                    used = int(g.read().strip())
                avail = min(avail, int(raw) - used) if avail is not None else int(raw) - used
            break
        except OSError:
            continue
    return avail


def estimate_bytes(spec: ModelSpec, train: TrainConfig, path: TrainPath, split: "Split", *,
                   teacher_spec: ModelSpec | None = None, lagged: bool = False) -> dict[str, int]:
    """Peak memory of training one model on ``split`` by ``path``, by part (bytes; an upper-side estimate)."""
    n_users, n_items, n_train = split.n_users, split.n_items, len(split.train_items)
    dim = spec.dim
    id_rows = n_items + (n_users if spec.family in ("mf", "two_tower", "text") else 0)
    params = id_rows * dim * 4 + spec.layers * 12 * dim * dim * 4
    out = {"weights, gradients, Adam state and best copy": 5 * params}
    seq_len = spec.max_len if spec.family in ("sasrec", "two_tower", "text") else 0
    out["training examples"] = n_train * (16 + 8 * seq_len)
    positions = train.batch_size
    cols = n_items if path.loss == "full" else path.negatives + max(path.top_k, 1)
    act = positions * cols * 4 * 4  # logits, softmax, gradient, one temporary
    if spec.family == "sasrec":
        act += positions * dim * 4 * 12 * spec.layers
    out["one batch"] = act
    if path.top_k:
        per_row = n_items * 4 if path.top_k >= n_items else path.top_k * 8 + 8
        out["soft labels"] = n_users * per_row * (2 if lagged else 1)
        if teacher_spec is not None:
            t_rows = n_items + (n_users if teacher_spec.family in ("mf", "two_tower", "text") else 0)
            out["teacher weights"] = t_rows * teacher_spec.dim * 4
    out["one evaluation chunk"] = rows_per_chunk(n_items) * n_items * 8 * 4
    out["interaction arrays"] = n_train * 8 * 4
    return out


def check_memory(estimate: dict[str, int], what: str, available: int | None = None) -> None:
    """Refuse, before anything starts, a job whose estimate exceeds the memory left (``MemoryBudgetError``)."""
    available = available_bytes() if available is None else available
    if os.environ.get("RECDISTILL_SKIP_MEMORY_CHECK") or available is None:
        return
    need = sum(estimate.values())
    if need > available:
        parts = ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in sorted(estimate.items(), key=lambda kv: -kv[1])[:3])
        raise MemoryBudgetError(f"{what} needs about {need / 2**30:.1f} GiB but {available / 2**30:.1f} GiB are free "
                           f"({parts}); use the sampled loss, a smaller soft_top_k, batch or model")

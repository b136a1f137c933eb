"""From raw interactions to an indexed dataset and its train / validation / test split.

Users and items get contiguous indices ``0..n-1``; each user's interactions are ordered by time
(a stable sort: file order breaks ties, and stands in when there are no timestamps), so the split and
any sequence built from it never look into a user's future. :attr:`Dataset.order_source` says which.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from distill_core.config import DataOptions, SplitOptions
from distill_core.data.columns import RawData
from distill_core.errors import DataError


@dataclass(frozen=True, eq=False)
class Dataset:
    """Positive interactions with contiguous ids, sorted by (user, time)."""

    name: str
    format: str
    source: str
    user_ids: np.ndarray  # (n_users,) original ids, str
    item_ids: np.ndarray  # (n_items,) original ids, str
    users: np.ndarray  # (n_interactions,) int64
    items: np.ndarray  # (n_interactions,) int64
    timestamps: np.ndarray  # (n_interactions,) float64, NaN where the source has none
    titles: np.ndarray  # (n_items,) str ("item <id>" when the source has no title)
    genres: np.ndarray  # (n_items,) str, '|'-separated, '' when unknown
    has_timestamps: bool
    options: DataOptions = field(default_factory=DataOptions)

    @property
    def order_source(self) -> str:
        """Where each user's order comes from: "timestamps" (ties keep file order) or "file order"."""
        return "timestamps" if self.has_timestamps else "file order"

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.users)

    @property
    def density(self) -> float:
        return self.n_interactions / max(self.n_users * self.n_items, 1)

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of the interactions and options: the dataset's identity in the run store."""
        h = hashlib.sha1()
        for arr in (self.users, self.items):
            h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
        h.update("\x1f".join(self.item_ids.tolist()).encode())
        h.update(repr(self.options).encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, float | int | str]:
        return {"name": self.name, "format": self.format, "users": self.n_users,
                "items": self.n_items, "interactions": self.n_interactions,
                "density": self.density, "fingerprint": self.fingerprint, "order": self.order_source}


def build_dataset(raw: RawData, options: DataOptions = DataOptions(), name: str | None = None) -> Dataset:
    """Collapse duplicates, apply the rating threshold, k-core filter and index ``raw``.

    Duplicates go first: a (user, item) pair rated twice is judged by its latest rating, at that
    rating's time, so a pair re-rated below the threshold is no positive at its earlier time.
    """
    df = raw.interactions
    src = raw.source
    if len(df) == 0:
        raise DataError(f"{src}: the file holds no interactions (0 rows)")
    if options.rating_threshold is not None and df["rating"].isna().all():
        raise DataError(f"{src}: rating_threshold={options.rating_threshold} was given but the "
                        "data has no rating column")
    gaps = df["timestamp"].isna()
    if gaps.any() and not gaps.all():  # the loaders refuse this with the line; a hand-made frame too
        raise DataError(f"{src}: column 'timestamp', row {int(np.argmax(gaps.to_numpy())) + 1}: missing "
                        f"timestamp ({int(gaps.sum())} of {len(df)} missing)")
    has_ts = not gaps.any()
    df = df.assign(_order=np.arange(len(df)))
    sort_cols = ["user_id", "timestamp", "_order"] if has_ts else ["user_id", "_order"]
    df = df.sort_values(sort_cols, kind="stable")  # ties in time keep file order
    # A repeated (user, item) pair counts once, at its latest occurrence, with its latest rating.
    df = df.drop_duplicates(["user_id", "item_id"], keep="last")
    if options.rating_threshold is not None:
        df = df[df["rating"] >= options.rating_threshold]
        if len(df) == 0:
            raise DataError(f"{src}: no interaction has rating >= {options.rating_threshold} "
                            "(field rating_threshold)")
    if options.kcore > 1:
        df = _kcore(df, options.kcore)
        if len(df) == 0:
            raise DataError(f"{src}: nothing is left after the {options.kcore}-core filter "
                            "(field kcore); try a smaller value")
    user_codes, user_ids = pd.factorize(df["user_id"], sort=True)
    item_codes, item_ids = pd.factorize(df["item_id"], sort=True)
    item_ids = np.asarray(item_ids, dtype=object).astype(str)
    meta = raw.items.drop_duplicates("item_id").set_index("item_id") if len(raw.items) else None
    titles = np.array([f"item {i}" for i in item_ids], dtype=object)
    genres = np.array([""] * len(item_ids), dtype=object)
    if meta is not None:
        known = meta.reindex(item_ids)
        has = known["title"].notna().to_numpy()
        titles[has] = known["title"].to_numpy()[has]
        genres = known["genres"].fillna("").to_numpy(dtype=object)
    order = np.lexsort((np.arange(len(df)), user_codes))  # stable: keeps time order within a user
    return Dataset(
        name=name or _default_name(src), format=raw.format, source=src,
        user_ids=np.asarray(user_ids, dtype=object).astype(str), item_ids=item_ids,
        users=user_codes[order].astype(np.int64), items=item_codes[order].astype(np.int64),
        timestamps=df["timestamp"].to_numpy(dtype=np.float64)[order],
        titles=titles.astype(str), genres=genres.astype(str), has_timestamps=has_ts, options=options,
    )


def _default_name(source: str) -> str:
    parts = [p for p in source.replace("\\", "/").split("/") if p]
    return parts[-1] if parts else "dataset"


def _kcore(df: pd.DataFrame, k: int) -> pd.DataFrame:
    while True:
        uc = df["user_id"].map(df["user_id"].value_counts())
        ic = df["item_id"].map(df["item_id"].value_counts())
        keep = (uc >= k) & (ic >= k)
        if keep.all():
            return df
        df = df[keep]


@dataclass(frozen=True, eq=False)
class Split:
    """Training pairs (ordered by user, then time) and held-out items per user.

    ``valid_ptr``/``valid_items`` is a CSR layout: user ``u``'s validation items are
    ``valid_items[valid_ptr[u]:valid_ptr[u + 1]]`` (empty for users kept in training only).
    """

    n_users: int
    n_items: int
    train_users: np.ndarray  # (n_train,) int64
    train_items: np.ndarray  # (n_train,) int64
    valid_ptr: np.ndarray  # (n_users + 1,)
    valid_items: np.ndarray
    test_ptr: np.ndarray  # (n_users + 1,)
    test_items: np.ndarray
    options: SplitOptions = field(default_factory=SplitOptions)
    # (n_items,) str each, the dataset's item metadata: what text-aware models (family "text") read
    titles: np.ndarray | None = None
    genres: np.ndarray | None = None

    def held_out(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ptr, items)`` of ``part`` ("valid" or "test")."""
        if part == "valid":
            return self.valid_ptr, self.valid_items
        if part == "test":
            return self.test_ptr, self.test_items
        raise ValueError(f"part must be 'valid' or 'test', got {part!r}")

    def eval_users(self, part: str) -> np.ndarray:
        ptr, _ = self.held_out(part)
        return np.flatnonzero(np.diff(ptr) > 0)

    @cached_property
    def train_ptr(self) -> np.ndarray:
        """CSR pointer into ``train_items`` (train pairs are grouped by user)."""
        return np.searchsorted(self.train_users, np.arange(self.n_users + 1))

    def train_prefixes(self, length: int) -> np.ndarray:
        """``(n_train, length)``: for each training pair, the user's training items just *before* it
        (newest last, left-padded with ``n_items``). A training input never holds its own target or
        anything later, and never a validation or test item."""
        n = len(self.train_items)
        start = self.train_ptr[self.train_users]  # (n_train,) first training pair of each pair's user
        out = np.full((n, length), self.n_items, dtype=np.int64)
        pos = np.arange(n)
        for k in range(1, length + 1):
            prev = pos - k
            ok = prev >= start
            out[ok, length - k] = self.train_items[prev[ok]]
        return out

    def train_windows(self, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each user's training sequence cut into windows for next-item training at every position.

        Returns ``users (W,)``, ``inputs (W, length)`` and ``targets (W, length)``: ``targets[w, j]`` is the
        item that follows ``inputs[w, :j + 1]`` (newest last); windows are left-padded (input
        ``n_items``, target ``-1``). Every training pair except each user's first is a target exactly
        once, and an input only ever holds training items from before its target.
        """
        users, inputs, targets = [], [], []
        for u in range(self.n_users):
            seq = self.train_items[self.train_ptr[u]:self.train_ptr[u + 1]]
            for end in range(len(seq), 1, -length):  # windows from the newest backwards
                start = max(end - length - 1, 0)
                x, y = seq[start:end - 1], seq[start + 1:end]
                pad = length - len(x)
                users.append(u)
                inputs.append(np.concatenate([np.full(pad, self.n_items), x]))
                targets.append(np.concatenate([np.full(pad, -1), y]))
        if not users:
            return np.zeros(0, np.int64), np.zeros((0, length), np.int64), np.zeros((0, length), np.int64)
        return np.array(users, dtype=np.int64), np.stack(inputs).astype(np.int64), np.stack(targets).astype(np.int64)

    def context(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ptr, items)``: what a model may know of each user when predicting ``part``, in time
        order: the training items for "train"/"valid", plus the validation items for "test"."""
        if part in ("train", "valid"):
            return self.train_ptr, self.train_items
        return self._test_context

    @cached_property
    def _test_context(self) -> tuple[np.ndarray, np.ndarray]:
        users = np.concatenate([self.train_users, np.repeat(np.arange(self.n_users), np.diff(self.valid_ptr))])
        items = np.concatenate([self.train_items, self.valid_items])
        order = np.argsort(users, kind="stable")  # stable: validation items stay after training items
        return np.searchsorted(users[order], np.arange(self.n_users + 1)), items[order]

    def advance(self) -> "Split":
        """The split one step later in time: each user's validation items have *arrived* and joined the
        end of their training sequence; nothing is left for validation; the test items stay held out.

        This is what a deployed model sees when new interactions come in (see ``distill_core.refresh``).
        """
        ptr, items = self._test_context  # training then validation items, per user in time order
        users = np.repeat(np.arange(self.n_users), np.diff(ptr))
        return Split(n_users=self.n_users, n_items=self.n_items, train_users=users, train_items=items.copy(),
                     valid_ptr=np.zeros(self.n_users + 1, dtype=np.int64), valid_items=np.zeros(0, np.int64),
                     test_ptr=self.test_ptr, test_items=self.test_items, options=self.options,
                     titles=self.titles, genres=self.genres)

    def lagged(self) -> "Split":
        """The training data one step earlier: each user's last training interaction removed.

        Only a source of soft labels for honest model selection (``DistillConfig.selection``): a teacher
        reading this context forecasts the last *training* item, so the validation item lies one step past
        its forecast, as the test item lies one step past the forecast made from the full training data.
        """
        keep = np.ones(len(self.train_items), dtype=bool)
        counts = np.diff(self.train_ptr)
        keep[self.train_ptr[1:][counts > 0] - 1] = False
        return Split(n_users=self.n_users, n_items=self.n_items, train_users=self.train_users[keep],
                     train_items=self.train_items[keep], valid_ptr=self.valid_ptr, valid_items=self.valid_items,
                     test_ptr=self.test_ptr, test_items=self.test_items, options=self.options,
                     titles=self.titles, genres=self.genres)

    def seen(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """Items excluded when ranking for ``part`` (the items of its context)."""
        return self.context(part)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_items), "valid": len(self.valid_items), "test": len(self.test_items)}


def split_dataset(ds: Dataset, options: SplitOptions = SplitOptions()) -> Split:
    """Per-user split: temporal leave-one-out (default) or a random ratio split.

    Users with fewer than ``options.min_interactions`` interactions stay in training only.
    """
    ptr = np.searchsorted(ds.users, np.arange(ds.n_users + 1))
    counts = np.diff(ptr)
    eligible = counts >= options.min_interactions
    if not eligible.any():
        raise DataError(f"{ds.source}: dataset too small to split: no user has at least "
                        f"{options.min_interactions} interactions (largest has {counts.max(initial=0)})")
    rng = np.random.default_rng(options.seed)
    part = np.zeros(ds.n_interactions, dtype=np.int8)  # 0 train, 1 valid, 2 test
    for u in np.flatnonzero(eligible):
        lo, hi = ptr[u], ptr[u + 1]
        n = hi - lo
        if options.method == "loo":
            part[hi - 1], part[hi - 2] = 2, 1
        else:
            n_test = max(1, int(round(options.test_ratio * n)))
            n_valid = max(1, int(round(options.valid_ratio * n)))
            n_valid = min(n_valid, n - n_test - 1)
            idx = lo + rng.permutation(n)
            part[idx[:n_test]] = 2
            part[idx[n_test:n_test + n_valid]] = 1

    def csr(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.searchsorted(ds.users[mask], np.arange(ds.n_users + 1)), ds.items[mask]

    vp, vi = csr(part == 1)
    tp, ti = csr(part == 2)
    return Split(n_users=ds.n_users, n_items=ds.n_items, train_users=ds.users[part == 0],
                 train_items=ds.items[part == 0], valid_ptr=vp, valid_items=vi, test_ptr=tp,
                 test_items=ti, options=options, titles=ds.titles, genres=ds.genres)

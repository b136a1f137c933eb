"""Views of a dataset and of trained models, shaped for the dashboard's pages.

Pure functions over the public engine types (no Streamlit): dataset statistics, the soft-label view
of one user at a temperature, top-K lists side by side, a user's history, and the table of a few runs.
Sequential models are scored with an explicit history built here (``scorer``), so a shared model's
context is never mutated by a view. Which stored runs belong together is :mod:`distill_core.runs`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from distill_core.config import DistillConfig
from distill_core.data.dataset import Dataset, Split
from distill_core.errors import ConfigError
from distill_core.losses import soft_targets
from distill_core.metrics import agreement
from distill_core.models import Recommender
from distill_core.models.base import recent_history
from distill_core.runs import ROLE_LABELS, method_of, model_label
from distill_core.store import RunRecord

HEAD_SHARE = 0.2  # the "head" of the catalogue: its most popular 20% of items


# ----------------------------------------------------------------------------- dataset
def item_popularity(ds: Dataset) -> pd.DataFrame:
    """Items from most to least popular: rank (1 = most popular), item_id, title, genres,
    interactions, share of all interactions, cumulative share."""
    counts = np.bincount(ds.items, minlength=ds.n_items)
    order = np.argsort(-counts, kind="stable")
    c = counts[order]
    total = max(int(counts.sum()), 1)
    return pd.DataFrame({"rank": np.arange(1, ds.n_items + 1), "item_id": ds.item_ids[order],
                         "title": ds.titles[order], "genres": ds.genres[order], "interactions": c,
                         "share": c / total, "cumulative_share": np.cumsum(c) / total})


def user_activity(ds: Dataset, bins: int = 30) -> pd.DataFrame:
    """Histogram of interactions per user on log-spaced bins: bin_start, bin_end (inclusive), users."""
    counts = np.bincount(ds.users, minlength=ds.n_users)
    lo, hi = max(int(counts.min()), 1), max(int(counts.max()), 1)
    edges = np.unique(np.round(np.geomspace(lo, hi + 1, bins + 1)).astype(np.int64))
    if len(edges) < 2:
        edges = np.array([lo, hi + 1])
    hist, _ = np.histogram(counts, bins=edges)
    return pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:] - 1, "users": hist})


def dataset_stats(ds: Dataset) -> dict[str, float | int | str]:
    """Counts and shape of the interactions: sizes, density, the head's share, user activity."""
    items = np.bincount(ds.items, minlength=ds.n_items)
    users = np.bincount(ds.users, minlength=ds.n_users)
    n_head = max(1, int(round(HEAD_SHARE * ds.n_items)))
    head = float(np.sort(items)[::-1][:n_head].sum()) / max(ds.n_interactions, 1)
    return {"name": ds.name, "format": ds.format, "users": ds.n_users, "items": ds.n_items,
            "interactions": ds.n_interactions, "density": ds.density, "head_share": head,
            "median_user_interactions": float(np.median(users)) if len(users) else 0.0,
            "min_user_interactions": int(users.min(initial=0)), "max_user_interactions": int(users.max(initial=0)),
            "items_without_interactions": int((items == 0).sum())}


def preview(ds: Dataset, n: int = 50) -> pd.DataFrame:
    """The first ``n`` interactions (by user, then time) with original ids, titles and times."""
    n = min(n, ds.n_interactions)
    u, i = ds.users[:n], ds.items[:n]
    return pd.DataFrame({"user_id": ds.user_ids[u], "item_id": ds.item_ids[i], "title": ds.titles[i],
                         "genres": ds.genres[i], "time": _times(ds.timestamps[:n])})


def split_sizes(split: Split) -> pd.DataFrame:
    """Interactions and users in each part of the split."""
    train_users = int((np.diff(split.train_ptr) > 0).sum())
    sizes = split.sizes()
    return pd.DataFrame({"part": ["train", "validation", "test"],
                         "interactions": [sizes["train"], sizes["valid"], sizes["test"]],
                         "users": [train_users, len(split.eval_users("valid")), len(split.eval_users("test"))]})


def _times(ts: np.ndarray) -> pd.Series:
    return pd.to_datetime(pd.Series(ts, dtype="float64"), unit="s", errors="coerce")


# ----------------------------------------------------------------------------- users
def user_index(ds: Dataset, user_id: str) -> int:
    """The contiguous index of the original ``user_id``; ConfigError naming the id otherwise."""
    hits = np.flatnonzero(ds.user_ids == str(user_id).strip())
    if len(hits) == 0:
        raise ConfigError(f"user id {str(user_id).strip()!r} is not in dataset '{ds.name}' "
                          f"(ids look like {', '.join(repr(str(x)) for x in ds.user_ids[:3])}, ...)")
    return int(hits[0])


def random_long_tail_user(ds: Dataset, split: Split, rng: np.random.Generator, quantile: float = 0.2) -> int:
    """A random user with a test item among the least active ones (training interactions at or
    below the ``quantile`` of those users): the users a small model serves worst."""
    users = split.eval_users("test")
    if len(users) == 0:
        raise ConfigError(f"dataset '{ds.name}' has no user with a test item")
    activity = np.diff(split.train_ptr)[users]
    cut = np.quantile(activity, quantile)
    return int(rng.choice(users[activity <= cut]))


def user_history(ds: Dataset, split: Split, user: int, newest_first: bool = False) -> pd.DataFrame:
    """The user's interactions in time order (or newest first): item_id, title, genres, time and
    split part ("train", "validation", "test (held out)")."""
    ptr = np.searchsorted(ds.users, [user, user + 1])
    items = ds.items[ptr[0]:ptr[1]]
    vp, vi = split.held_out("valid")
    tp, ti = split.held_out("test")
    part = np.full(len(items), "train", dtype=object)
    part[np.isin(items, vi[vp[user]:vp[user + 1]])] = "validation"
    part[np.isin(items, ti[tp[user]:tp[user + 1]])] = "test (held out)"
    df = pd.DataFrame({"item_id": ds.item_ids[items], "title": ds.titles[items], "genres": ds.genres[items],
                       "time": _times(ds.timestamps[ptr[0]:ptr[1]]), "part": part})
    return df.iloc[::-1].reset_index(drop=True) if newest_first else df


# ----------------------------------------------------------------------------- models
Scorer = Callable[[torch.Tensor], torch.Tensor]


def scorer(model: Recommender, split: Split, part: str) -> Scorer:
    """``users -> (batch, n_items)`` logits, with what the model may know of each user for ``part``
    ("train", "valid" or "test"); sequential models get their history explicitly."""
    ptr, items = split.context(part)

    def score(users: torch.Tensor) -> torch.Tensor:
        if not model.sequential:
            return model.score_all(users)
        u = users.cpu().numpy()
        counts = ptr[u + 1] - ptr[u]
        sub_ptr = np.concatenate([[0], np.cumsum(counts)])
        sub = np.concatenate([items[ptr[x]:ptr[x + 1]] for x in u]) if len(u) else np.zeros(0, np.int64)
        seq = recent_history(sub_ptr, sub, model.n_items, model.max_len).to(users.device)  # (batch, max_len)
        return model.score_all(users, seq)
    return score


def entropy(p: np.ndarray) -> float:
    """Shannon entropy in nats, ``-sum p log p`` (0 log 0 = 0)."""
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@dataclass(frozen=True)
class SoftLabelView:
    """One user's distributions at temperature T over the union of each model's top-N items."""

    temperature: float
    items: pd.DataFrame  # item, item_id, title, genres, seen, then one probability column per model
    entropy: dict[str, float]  # of each full distribution over the catalogue, nats
    mass: dict[str, float]  # probability each model puts on the items shown
    models: tuple[str, ...]
    top_k: int | None = None  # the K of the soft labels the student learnt from (None: the whole distribution)
    top_k_mass: float | None = None  # the first model's (the teacher's) probability on its top-K items


def soft_label_view(models: Mapping[str, Recommender], ds: Dataset, split: Split, user: int,
                    temperature: float, top_n: int = 10, top_k: int | None = None) -> SoftLabelView:
    """``softmax(logits / T)`` of each model for ``user`` (training context, as the soft labels of
    training), on the union of the models' top-``top_n`` items, sorted by the first model's probability.
    ``top_k``: the student learnt from the teacher's top-K soft labels; the view then marks the teacher's
    top-K items (``in_top_k``) and says how much of its probability they hold (the rest was one bucket)."""
    DistillConfig(temperature=temperature)  # the usual message for T <= 0
    if not models:
        raise ConfigError("soft_label_view needs at least one model")
    users = torch.tensor([user])
    probs = {name: soft_targets(scorer(m, split, "train")(users).double(), temperature)[0].cpu().numpy()
             for name, m in models.items()}  # name -> (n_items,)
    first = next(iter(probs.values()))
    top_n = max(1, min(top_n, split.n_items))
    shown = np.unique(np.concatenate([np.argsort(-p, kind="stable")[:top_n] for p in probs.values()]))
    shown = shown[np.argsort(-first[shown], kind="stable")]
    ptr, seen_items = split.context("train")
    df = pd.DataFrame({"item": shown, "item_id": ds.item_ids[shown], "title": ds.titles[shown],
                       "genres": ds.genres[shown], "seen": np.isin(shown, seen_items[ptr[user]:ptr[user + 1]])})
    k_mass = None
    if top_k is not None and top_k < split.n_items:
        top = np.argsort(-first, kind="stable")[:top_k]
        df["in_top_k"] = np.isin(shown, top)
        k_mass = float(first[top].sum())
    for name, p in probs.items():
        df[name] = p[shown]
    return SoftLabelView(temperature=float(temperature), items=df, models=tuple(probs),
                         entropy={n: entropy(p) for n, p in probs.items()},
                         mass={n: float(p[shown].sum()) for n, p in probs.items()},
                         top_k=top_k if k_mass is not None else None, top_k_mass=k_mass)


def top_k_lists(models: Mapping[str, Recommender], ds: Dataset, split: Split, user: int,
                k: int = 10) -> dict[str, pd.DataFrame]:
    """Each model's top-``k`` unseen items for ``user`` (test context, as in evaluation; fewer when the user
    has fewer than ``k`` unseen items): rank,
    item, item_id, title, genres, score, test (the held-out test item), shared_with (other lists
    holding the item) and in_lists (how many lists hold it, itself included)."""
    if not 1 <= k <= split.n_items:
        raise ConfigError(f"K must be between 1 and {split.n_items} (got {k})")
    ptr, seen = split.seen("test")
    tp, ti = split.held_out("test")
    test_items = ti[tp[user]:tp[user + 1]]
    tops = {}
    for name, m in models.items():
        s = scorer(m, split, "test")(torch.tensor([user]))[0].double()  # (n_items,)
        s[torch.as_tensor(seen[ptr[user]:ptr[user + 1]])] = float("-inf")
        vals, idx = s.topk(k)
        keep = torch.isfinite(vals)  # a user with fewer than k unseen items gets a shorter list, never a seen item
        tops[name] = (idx[keep].numpy(), vals[keep].numpy())
    out = {}
    for name, (idx, vals) in tops.items():
        others = [o for o in tops if o != name]
        shared = [", ".join(o for o in others if i in tops[o][0]) for i in idx]
        out[name] = pd.DataFrame({"rank": np.arange(1, len(idx) + 1), "item": idx, "item_id": ds.item_ids[idx],
                                  "title": ds.titles[idx], "genres": ds.genres[idx], "score": vals,
                                  "test": np.isin(idx, test_items), "shared_with": shared,
                                  "in_lists": [1 + sum(i in tops[o][0] for o in others) for i in idx]})
    return out


def user_agreement(a: Recommender, b: Recommender, split: Split, user: int, k: int = 10) -> dict[str, float]:
    """overlap@k and Spearman correlation of two models' rankings for one user (test context)."""
    return agreement(scorer(a, split, "test"), scorer(b, split, "test"), np.array([user]), split.seen("test"),
                     split.n_items, k=k)


def mean_agreement(a: Recommender, b: Recommender, split: Split, k: int = 10, max_users: int = 500,
                   seed: int = 0) -> dict[str, float]:
    """Mean overlap@k and Spearman over the test users (a fixed random subset of at most ``max_users``)."""
    users = split.eval_users("test")
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    out = agreement(scorer(a, split, "test"), scorer(b, split, "test"), users, split.seen("test"),
                    split.n_items, k=k)
    return out | {"users": float(len(users))}


# ----------------------------------------------------------------------------- runs
def human_bytes(n: float) -> str:
    """``1536 -> '1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def runs_table(runs: Mapping[str, RunRecord] | Sequence[RunRecord]) -> pd.DataFrame:
    """One row per run (keyed by a display name, else named by its role): model, distillation method (None but
    for a distilled student; ``runs.method_of``), size, time, test metrics."""
    pairs = list(runs.items()) if isinstance(runs, Mapping) else [(ROLE_LABELS.get(r.kind, r.kind), r) for r in runs]
    rows = []
    for name, rec in pairs:
        m, info = rec.metrics, rec.info
        rows.append({"model": name, "architecture": model_label(rec), "method": method_of(rec),
                     "params": info.get("params"),
                     "size": human_bytes(info["bytes"]) if "bytes" in info else None,
                     "train s": info.get("train_seconds"), "best epoch": info.get("best_epoch"),
                     "NDCG@10": m.get("ndcg@10"), "HR@10": m.get("hr@10"), "Recall@20": m.get("recall@20"),
                     "MRR": m.get("mrr"), "coverage@10": m.get("coverage@10"),
                     "ms / 1k users": info.get("score_ms_per_1k_users"),
                     # how it trained (runs stored before the large-catalogue path: the full softmax)
                     "training path": info.get("path_text") or "full softmax", "stopped": info.get("stopped"),
                     "run": rec.id})
    return pd.DataFrame(rows)

"""Whom a model serves: HR/NDCG@K by user activity and by item popularity, and what its lists look like.

The test ranking of :mod:`distill_core.metrics` (full ranking, seen items excluded, pessimistic ties through
``_relevant_ranks``), cut three ways. ``a_u`` is user u's number of *training* interactions, ``k_i`` item i's.

* **Users by activity.** A "cold" bucket ``a_u <= cold_max``, then the other test users cut at the
  ``quantiles``-quantiles of their ``a_u`` (floored to integers, equal edges merged): bucket j holds
  ``e_{j-1} < a_u <= e_j``; its lo / hi are stored with it. HR@K and NDCG@K per user are
  ``evaluate_ranking``'s, so the size-weighted mean over the buckets is its mean.
* **Items by popularity** (head / torso / tail by share of training interactions, after the short head and
  long tail of Abdollahpouri, Burke & Mobasher, "Managing Popularity Bias in Recommender Systems with
  Personalized Re-ranking", FLAIRS 2019): with ``before_i = sum_{j: k_j > k_i} k_j / sum_j k_j``, the share
  of interactions on strictly more popular items, head = ``before_i < head_share``, tail = ``before_i >=
  1 - tail_share``, torso the rest (equal counts share a bucket). A *test case* is a (user, held-out item)
  pair in the bucket of its item, ranked among the user's unseen items other than the held-out ones:
  ``rank = 1 + #{unseen j not held out: s_j >= s_i}``, HR = [rank <= K], NDCG = [rank <= K] / log2(rank + 1).
  With one test item per user (leave-one-out) these are the user's own HR and NDCG.
* **Lists** (each test user's top K, seen items excluded):
  - coverage@K = |union of the lists| / n_items (as ``evaluate_ranking``);
  - Gini@K of the recommendation counts c_i of all n items, sorted ascending:
    ``G = sum_j (2j - n - 1) c_(j) / (n sum_j c_j)`` (0: every item equally often; (n-1)/n: one item only;
    Fleder & Hosanagar, "Blockbuster Culture's Next Rise or Fall", Management Science 2009; RecBole GiniIndex);
  - head / tail share@K: mean over users of the share of their list in the head / tail bucket (the APLT of
    Abdollahpouri, Burke & Mobasher, RecSys 2017, with the tail above);
  - novelty@K: mean over users of ``mean_{i in L_u} -log2(max(k_i, 1) / n_users)``, the self-information of
    Zhou et al., "Solving the apparent diversity-accuracy dilemma of recommender systems", PNAS 2010;
  - diversity@K (intra-list diversity, Ziegler et al., "Improving Recommendation Lists Through Topic
    Diversification", WWW 2005): mean over users of ``mean_{i<j in L_u} 1 - cos(v_i, v_j)``, pairs with an item
    without a vector left out; v is the item's genre set where the data has genres, else its PureSVD embedding
    from the training interactions, the same for every model (:mod:`distill_core.diversity`; ``diversity_by``
    says which).

Buckets with fewer than ``min_users`` users (test cases for items) are merged with a neighbour (activity
quantiles) or marked ``too_few`` (the cold bucket, the item buckets), so no noisy bar is shown as a finding.
Users are scored ``chunk`` at a time: no users x items block larger than ``(chunk, n_items)`` is built.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from distill_core.data.dataset import Split
from distill_core.diversity import Space, diversity_space
from distill_core.errors import ConfigError
from distill_core.metrics import _rank_chunk
from distill_core.models import Recommender
from distill_core.models.base import recent_history

Scorer = Callable[[torch.Tensor], torch.Tensor]  # (batch,) users -> (batch, n_items)


@dataclass(frozen=True)
class SegmentOptions:
    """How users and items are bucketed and how long the lists are."""

    k: int = 10
    cold_max: int = 5  # users with at most this many training interactions are "cold"
    quantiles: int = 4  # the other users are cut at their quartiles
    head_share: float = 0.2  # the head holds (about) the top 20% of training interactions
    tail_share: float = 0.2  # the tail (about) the last 20%
    min_users: int = 20  # a bucket with fewer users (test cases) is merged or marked "too few"
    chunk: int = 256
    svd_rank: int = 32  # item embeddings for diversity when the data has no genres
    seed: int = 0  # of the randomised SVD

    def __post_init__(self) -> None:
        for name, lo in (("k", 1), ("cold_max", 0), ("quantiles", 1), ("min_users", 1), ("chunk", 1),
                         ("svd_rank", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ConfigError(f"segments {name} must be an integer >= {lo} (got {v!r})")
        for name in ("head_share", "tail_share"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 < v < 1:
                raise ConfigError(f"segments {name} must be in (0, 1) (got {v!r})")
        if self.head_share + self.tail_share > 1:
            raise ConfigError(f"segments head_share + tail_share must be at most 1 (got "
                              f"{self.head_share + self.tail_share:g})")


@dataclass(frozen=True, eq=False)
class Buckets:
    """Named buckets with their inclusive (lo, hi) range and the bucket index of every row."""

    names: tuple[str, ...]
    edges: tuple[tuple[int | None, int | None], ...]  # (None, None): an empty bucket
    of: np.ndarray  # (rows,) bucket index


def user_buckets(activity: np.ndarray, opts: SegmentOptions = SegmentOptions()) -> Buckets:
    """Cold bucket, then activity quantiles of the other users, merged while one holds < ``min_users``."""
    activity = np.asarray(activity, dtype=np.int64)
    rest = activity[activity > opts.cold_max]
    uppers: list[int] = []
    if len(rest):
        qs = np.floor(np.quantile(rest, np.arange(1, opts.quantiles) / opts.quantiles)).astype(np.int64)
        uppers = sorted({int(q) for q in qs if opts.cold_max < q < rest.max()} | {int(rest.max())})
    while len(uppers) > 1:
        lows = [opts.cold_max] + uppers[:-1]
        n = [int(((rest > lo) & (rest <= hi)).sum()) for lo, hi in zip(lows, uppers)]
        j = int(np.argmin(n))
        if n[j] >= opts.min_users:
            break
        # merge with the smaller neighbour: drop the edge between them
        left = j == len(uppers) - 1 or (j > 0 and n[j - 1] <= n[j + 1])
        del uppers[j - 1 if left else j]
    edges = [(0, opts.cold_max)] + [(lo + 1, hi) for lo, hi in zip([opts.cold_max] + uppers[:-1], uppers)]
    names = [f"cold (≤{opts.cold_max})"] + [f"{lo}–{hi}" if hi > lo else f"{lo}" for lo, hi in edges[1:]]
    of = np.searchsorted(np.array([opts.cold_max] + uppers), activity, side="left")
    return Buckets(tuple(names), tuple(edges), of.astype(np.int64))


def item_buckets(popularity: np.ndarray, opts: SegmentOptions = SegmentOptions()) -> Buckets:
    """Head / torso / tail of the catalogue by the share of training interactions on more popular items."""
    pop = np.asarray(popularity, dtype=np.int64)
    total = max(int(pop.sum()), 1)
    values, inverse = np.unique(pop, return_inverse=True)  # ascending
    mass = values * np.bincount(inverse, minlength=len(values))
    above = (mass[::-1].cumsum()[::-1] - mass) / total  # share of interactions on strictly more popular items
    before = above[inverse]
    of = np.where(before < opts.head_share, 0, np.where(before >= 1 - opts.tail_share - 1e-12, 2, 1))
    edges = tuple((int(pop[of == b].min()), int(pop[of == b].max())) if (of == b).any() else (None, None)
                  for b in range(3))
    return Buckets(("head", "torso", "tail"), edges, of.astype(np.int64))


@dataclass(frozen=True, eq=False)
class SegmentResult:
    """The JSON-able ``summary`` and the per-user / per-test-case values behind it (for a bootstrap)."""

    summary: dict[str, Any]
    users: np.ndarray  # (n_users,) test users, ascending
    user_bucket: np.ndarray  # (n_users,) index into summary["users"]["buckets"]
    user_values: dict[str, np.ndarray]  # "hr@10" / "ndcg@10" -> (n_users,)
    case_user: np.ndarray  # (n_cases,) test cases in (user, item) order, the same for every model
    case_item: np.ndarray
    case_bucket: np.ndarray  # (n_cases,) index into summary["items"]["buckets"]
    case_values: dict[str, np.ndarray]

    def values(self, by: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """``(values, bucket index)`` per user (``by="users"``) or per test case (``by="items"``)."""
        if by == "users":
            return self.user_values[metric], self.user_bucket
        return self.case_values[metric], self.case_bucket


def evaluate_segments(scorer: Scorer, split: Split, opts: SegmentOptions = SegmentOptions(), *,
                      space: Space | None = None, device: torch.device | str = "cpu",
                      name: str = "model") -> SegmentResult:
    """Segments of ``scorer``'s test ranking on ``split`` (see the module docstring); ``space`` is
    ``diversity.diversity_space(split, opts.svd_rank, opts.seed)``, computed here when not given."""
    device, k = torch.device(device), opts.k
    if k > split.n_items:
        raise ConfigError(f"segments k={k} is larger than the catalogue ({split.n_items} items)")
    vectors, by, note = space if space is not None else diversity_space(split, opts.svd_rank, opts.seed)
    rel_ptr, rel_items = split.held_out("test")
    users = split.eval_users("test")
    pop = np.bincount(split.train_items, minlength=split.n_items)
    items_b = item_buckets(pop, opts)
    tail = torch.as_tensor(items_b.of == 2, device=device)
    head = torch.as_tensor(items_b.of == 0, device=device)
    info = torch.as_tensor(-np.log2(np.maximum(pop, 1) / split.n_users), device=device)
    vec = torch.as_tensor(vectors, device=device, dtype=torch.float64)
    known = vec.norm(dim=1) > 0
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, device=device, dtype=torch.float64))
    hr, ndcg, cases, rec = [], [], [], torch.zeros(split.n_items, dtype=torch.float64, device=device)
    per_list: dict[str, list[torch.Tensor]] = {"head_share": [], "tail_share": [], "novelty": [], "diversity": []}
    for start in range(0, len(users), opts.chunk):
        u = users[start:start + opts.chunk]
        # metrics._rank_chunk: the pessimistic ranks of evaluate_ranking, in a few passes over the chunk
        r = _rank_chunk(scorer(torch.as_tensor(u, device=device)), u, split.seen("test"), (rel_ptr, rel_items),
                        k, name, mrr=False)
        ranks, n_rel = r.ranks, r.n_rel
        slots = torch.arange(ranks.shape[1], device=device)
        valid = slots < n_rel.unsqueeze(1)
        in_top = valid & (ranks <= k)
        ideal = torch.cumsum(discounts, 0)[(n_rel.clamp(max=k) - 1).long()]
        hr.append(in_top.any(1).double())
        ndcg.append((in_top / torch.log2(ranks.double() + 1)).sum(1) / ideal)
        # the held-out item in slot p has p better held-out items ahead of it: its own rank drops them
        slot_items = r.rel_items
        rows = torch.as_tensor(u, device=device).unsqueeze(1).expand_as(ranks)
        cases.append(torch.stack([rows[valid], slot_items[valid], (ranks - slots)[valid]], 1))
        top_s, top = r.top_scores, r.top  # (chunk, k)
        ok = torch.isfinite(top_s)  # a user with fewer than k unseen items has a shorter list
        rec.index_add_(0, top[ok], torch.ones(int(ok.sum()), dtype=torch.float64, device=device))
        length = ok.sum(1).double()
        per_list["head_share"].append((head[top] & ok).sum(1) / length)
        per_list["tail_share"].append((tail[top] & ok).sum(1) / length)
        per_list["novelty"].append((info[top] * ok).sum(1) / length)
        v = vec[top]  # (chunk, k, d)
        good = ok & known[top]
        pair = (torch.triu(torch.ones(k, k, dtype=torch.bool, device=device), 1)
                & good.unsqueeze(2) & good.unsqueeze(1))  # (chunk, k, k): i < j, both with a vector
        dist = 1.0 - v @ v.transpose(1, 2)  # (chunk, k, k)
        per_list["diversity"].append((dist * pair).sum((1, 2)) / pair.sum((1, 2)))  # NaN: no pair
    user_vals = {f"hr@{k}": _cat(hr), f"ndcg@{k}": _cat(ndcg)}
    c = torch.cat(cases).cpu().numpy() if cases else np.zeros((0, 3), np.int64)
    c = c[np.lexsort((c[:, 1], c[:, 0]))]  # (user, item) order: the same cases in the same order for any model
    case_vals = {f"hr@{k}": (c[:, 2] <= k).astype(np.float64),
                 f"ndcg@{k}": np.where(c[:, 2] <= k, 1.0 / np.log2(c[:, 2] + 1.0), 0.0)}
    users_b = user_buckets(np.diff(split.train_ptr)[users], opts)
    case_b = items_b.of[c[:, 1]]
    lists = {f"{m}@{k}": _mean(_cat(v)) for m, v in per_list.items()} | {"diversity_by": by, "diversity_note": note}
    summary = _summary(opts, split, users_b, user_vals, items_b, case_b, case_vals, pop, rec.cpu().numpy(), lists)
    return SegmentResult(summary, users, users_b.of, user_vals, c[:, 0], c[:, 1], case_b, case_vals)


def _summary(opts: SegmentOptions, split: Split, users_b: Buckets, user_vals: dict[str, np.ndarray],
             items_b: Buckets, case_b: np.ndarray, case_vals: dict[str, np.ndarray], pop: np.ndarray,
             counts: np.ndarray, lists: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able result: both bucketings with their edges, n and means, and the list figures."""
    k = opts.k
    items = [row | {"items": int((items_b.of == b).sum()),
                    "interaction_share": float(pop[items_b.of == b].sum() / max(pop.sum(), 1))}
             for b, row in enumerate(_table(items_b, case_b, case_vals, opts.min_users))]
    return {"k": k, "test_users": len(users_b.of), "test_cases": len(case_b),
            "users": {"by": "training interactions per user", "cold_max": opts.cold_max, "quantiles": opts.quantiles,
                      "min_users": opts.min_users,
                      "buckets": _table(users_b, users_b.of, user_vals, opts.min_users)},
            "items": {"by": "share of training interactions", "head_share": opts.head_share,
                      "tail_share": opts.tail_share, "min_cases": opts.min_users, "buckets": items},
            "lists": {f"coverage@{k}": float((counts > 0).sum() / split.n_items), f"gini@{k}": gini(counts)} | lists}


def _cat(xs: list[torch.Tensor]) -> np.ndarray:
    return torch.cat(xs).cpu().numpy() if xs else np.zeros(0)


def _mean(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else None


def _table(b: Buckets, of: np.ndarray, vals: dict[str, np.ndarray], min_n: int) -> list[dict[str, Any]]:
    out = []
    for j, (name, (lo, hi)) in enumerate(zip(b.names, b.edges)):
        inside = of == j
        n = int(inside.sum())
        out.append({"bucket": name, "lo": lo, "hi": hi, "n": n, "too_few": n < min_n,
                    **{m: _mean(v[inside]) for m, v in vals.items()}})
    return out


def gini(counts: np.ndarray) -> float:
    """Gini index of non-negative counts: ``sum_j (2j - n - 1) c_(j) / (n sum c)``, c sorted ascending."""
    c = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(c), c.sum()
    if n == 0 or total == 0:
        return 0.0
    return float(((2 * np.arange(1, n + 1) - n - 1) * c).sum() / (n * total))


def ranking_scorer(model: Recommender, split: Split) -> Scorer:
    """The model's test-time scores with each user's test context passed explicitly (a shared model's
    context is never changed): training items plus the validation item for a sequential model."""
    ptr, items = split.context("test")

    def score(users: torch.Tensor) -> torch.Tensor:
        if not model.sequential:
            return model.score_all(users)
        u = users.cpu().numpy()
        sub_ptr = np.concatenate([[0], np.cumsum(ptr[u + 1] - ptr[u])])
        sub = np.concatenate([items[ptr[x]:ptr[x + 1]] for x in u]) if len(u) else np.zeros(0, np.int64)
        return model.score_all(users, recent_history(sub_ptr, sub, model.n_items, model.max_len).to(users.device))
    return score


def model_segments(model: Recommender, split: Split, opts: SegmentOptions = SegmentOptions(), *,
                   space: Space | None = None) -> SegmentResult:
    """``evaluate_segments`` of a model's test ranking, on the model's device."""
    return evaluate_segments(ranking_scorer(model, split), split, opts, space=space,
                             device=next(model.parameters()).device, name=f"the {model.family} model")

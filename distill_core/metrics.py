"""Full-ranking metrics: every item is ranked for every evaluated user, seen items excluded.

For one user with relevant (held-out) set R, each relevant item r gets a rank rank_r = 1, 2, ...
among the user's unseen items, and:

* HR@K     = 1 if some rank_r <= K
* NDCG@K   = sum_{r in R: rank_r <= K} 1 / log2(rank_r + 1)  /  sum_{i=1}^{min(|R|, K)} 1 / log2(i + 1)
* Recall@K = |{r in R: rank_r <= K}| / |R|
* MRR      = 1 / min_r rank_r, in the full ranking (not truncated)
* coverage@K = distinct items in anyone's top-K / n_items

Ties count against the relevant items (the *pessimistic* rank): a relevant item tied with k
non-relevant items is ranked below all k of them, and relevant items tied with each other take
consecutive ranks (their order among themselves changes no metric). So with one relevant item,
rank_r = 1 + #{unseen j != r: s_j >= s_r}. Ties impose only a partial order and each way of breaking
them gives a different value (McSherry & Najork, "Computing Information Retrieval Performance Measures
Efficiently in the Presence of Tied Scores", ECIR 2008); we report the worst of those orderings, so a
model cannot gain by emitting equal scores: a constant scorer ranks the held-out item last
(MRR = 1 / n_unseen, HR@K = 0), where breaking ties by item index would hand it whatever the index
order happens to give. The same ordering serves every metric, so HR, NDCG, Recall and MRR agree.

Scores must be finite: a NaN or an infinity (of either sign) from the model is refused (``ScoreError``,
naming the model), never ranked, because no ordering of a NaN means anything. ``-inf`` is only the value
the seen items are masked with, so finiteness is checked on the scorer's raw output, before that mask.

Users are scored in chunks of ``chunk`` rows, so no dense users x items matrix larger than
``(chunk, n_items)`` is ever built.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from distill_core.errors import RecDistillError

Scorer = Callable[[torch.Tensor], torch.Tensor]  # (batch,) users -> (batch, n_items)


class ScoreError(RecDistillError, ValueError):
    """A model produced scores that cannot be ranked (NaN or infinite)."""


def _csr_mask(ptr: np.ndarray, items: np.ndarray, users: np.ndarray, n_items: int, device: torch.device) -> torch.Tensor:
    """Dense ``(len(users), n_items)`` bool mask of each user's items in a CSR layout."""
    counts = ptr[users + 1] - ptr[users]
    rows = np.repeat(np.arange(len(users)), counts)
    cols = np.concatenate([items[ptr[u]:ptr[u + 1]] for u in users]) if len(users) else np.zeros(0, np.int64)
    mask = torch.zeros((len(users), n_items), dtype=torch.bool, device=device)
    mask[torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)] = True
    return mask


def _check_finite(scores: torch.Tensor, users: np.ndarray, name: str) -> None:
    """Refuse NaN / +-inf in a scorer's raw output (before seen items are masked with -inf)."""
    if bool(torch.isfinite(scores.sum())):  # one reduction: a NaN or inf anywhere makes the sum non-finite
        return
    bad = ~torch.isfinite(scores)  # the sum overflowed, or there is a bad score: look for it
    if bool(bad.any()):
        row, col = (int(v) for v in bad.nonzero()[0])
        raise ScoreError(f"{name} produced a non-finite score ({float(scores[row, col])}) for user "
                         f"{int(users[row])}, item {col} ({int(bad.sum())} such scores in this batch of "
                         f"{len(users)} users); NaN or infinite scores cannot be ranked")


def _relevant_ranks(scores: torch.Tensor, rel: torch.Tensor, max_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pessimistic ranks of each user's relevant items, best first, exact up to ``max_k``.

    ``scores (B, n_items)`` with seen items at -inf, ``rel (B, n_items)`` bool ->
    ``ranks (B, R)`` (``R`` = most relevant items of any row; the relevant scores sorted in descending
    order, slot p of a row holding its p-th best) and ``first (B,)``, the exact full-ranking rank of
    each row's best relevant item. Slot p's rank is ``1 + #{non-relevant j: s_j >= s_p} + p``; the count
    is taken over the row's ``max_k`` best non-relevant scores only, so a rank above ``max_k`` is only
    known to be above it. No sort of a whole row: two top-k and a comparison per relevant item.
    """
    n_max = int(rel.sum(1).max())
    rel_s = scores.masked_fill(~rel, float("-inf")).topk(n_max, dim=1).values  # (B, R), descending
    other = scores.masked_fill(rel, float("-inf"))  # non-relevant unseen items keep their scores
    top_other = other.topk(max_k, dim=1).values  # (B, max_k)
    ahead = (top_other.unsqueeze(1) >= rel_s.unsqueeze(2)).sum(2)  # (B, R), at most max_k
    ranks = ahead + torch.arange(1, n_max + 1, device=scores.device)  # (B, R)
    first = (other >= rel_s[:, :1]).sum(1) + 1  # (B,), not truncated: MRR needs it exactly
    return ranks, first


def _csr_rows(ptr: np.ndarray, items: np.ndarray, users: np.ndarray, device: torch.device
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(row, item, slot)`` of every item of ``users`` in a CSR layout (slot: its place within its row)."""
    counts = ptr[users + 1] - ptr[users]
    rows = np.repeat(np.arange(len(users)), counts)
    cols = np.concatenate([items[ptr[u]:ptr[u + 1]] for u in users]) if len(users) else np.zeros(0, np.int64)
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    return tuple(torch.as_tensor(a, dtype=torch.long, device=device) for a in (rows, cols, slot))  # type: ignore[return-value]


class Ranked(NamedTuple):
    """One chunk of users ranked (``_rank_chunk``)."""

    ranks: torch.Tensor  # (B, R) pessimistic rank of each row's relevant items, best first (exact up to max_k)
    first: torch.Tensor | None  # (B,) exact rank of the best relevant item (None without mrr)
    n_rel: torch.Tensor  # (B,) relevant items per row
    top: torch.Tensor  # (B, max_k) the row's best unseen items
    top_scores: torch.Tensor  # (B, max_k) their scores (-inf: the row has fewer unseen items)
    rel_items: torch.Tensor  # (B, R) the relevant items in the order of ``ranks``


def _count_at_least(scores: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """``(scores >= threshold).sum(1)`` for ``scores (B, n)`` and ``threshold (B, 1)``: ``(B,)`` long. On the CPU
    numpy counts the mask (512 x 53,438: 26 ms against 140 for torch's bool count_nonzero, side by side)."""
    ge = scores >= threshold
    if ge.device.type == "cpu":
        return torch.from_numpy(np.count_nonzero(ge.numpy(), axis=1).astype(np.int64))
    return torch.count_nonzero(ge, dim=1)


def _rank_chunk(scores: torch.Tensor, users: np.ndarray, seen: tuple[np.ndarray, np.ndarray],
                relevant: tuple[np.ndarray, np.ndarray], max_k: int, name: str, mrr: bool = True) -> Ranked:
    """One chunk of users: ``ranks (B, R)`` and ``first (B,)`` as ``_relevant_ranks`` gives them, ``n_rel (B,)``,
    and the top ``max_k`` items of each row (seen items excluded); ``first`` is None without ``mrr``.

    The same pessimistic ranks as ``_relevant_ranks``, in a few passes over the ``(B, n_items)`` block instead
    of a dozen: seen and relevant items are written into the scores in place (no dense masks), the relevant
    scores gathered by index, one top-k of the rest. ``scores`` is the scorer's fresh output (a view is copied).
    """
    _check_finite(scores, users, name)
    if scores._base is not None:
        scores = scores.clone()
    device = scores.device
    s_rows, s_cols, _ = _csr_rows(*seen, users, device)
    scores[s_rows, s_cols] = float("-inf")
    r_rows, r_cols, r_slot = _csr_rows(*relevant, users, device)
    n_rel = torch.bincount(r_rows, minlength=len(users))
    n_max = int(n_rel.max()) if len(r_rows) else 1
    rel_vals = scores.new_full((len(users), n_max), float("-inf"))
    rel_vals[r_rows, r_slot] = scores[r_rows, r_cols]
    rel_idx = torch.zeros((len(users), n_max), dtype=torch.long, device=device)
    rel_idx[r_rows, r_slot] = r_cols
    rel_s, order = rel_vals.sort(1, descending=True)  # (B, R)
    scores[r_rows, r_cols] = float("-inf")  # now: the non-relevant unseen items keep their scores
    top_v, top_i = scores.topk(max_k, dim=1)  # (B, max_k)
    ahead = (top_v.unsqueeze(1) >= rel_s.unsqueeze(2)).sum(2)  # (B, R), at most max_k
    ranks = ahead + torch.arange(1, n_max + 1, device=device)
    first = _count_at_least(scores, rel_s[:, :1]) + 1 if mrr else None  # a pass of its own
    # the rows' top max_k over all unseen items: the best of the rest's top and the relevant ones
    rel_items = rel_idx.gather(1, order)
    cand_v, cand_i = torch.cat([rel_s, top_v], 1), torch.cat([rel_items, top_i], 1)
    best_v, pick = cand_v.topk(max_k, dim=1)
    return Ranked(ranks, first, n_rel, cand_i.gather(1, pick), best_v, rel_items)


def evaluate_ranking(scorer: Scorer, users: np.ndarray, relevant: tuple[np.ndarray, np.ndarray],
                     seen: tuple[np.ndarray, np.ndarray], n_items: int, ks: tuple[int, ...] = (10, 20),
                     chunk: int = 512, device: torch.device | str = "cpu", name: str = "model",
                     mrr: bool = True) -> dict[str, float]:
    """Mean HR/NDCG/Recall@K, MRR and coverage@K over ``users`` (those with relevant items).

    Ties are pessimistic (see the module docstring); ``name`` is the model named when its scores are
    not finite (``ScoreError``). ``mrr=False`` leaves MRR out, and the pass over every score it costs.
    """
    device = torch.device(device)
    max_k = max(ks)
    if max_k > n_items:
        raise ValueError(f"K={max_k} is larger than the catalogue ({n_items} items)")
    rel_ptr, rel_items = relevant
    users = users[(rel_ptr[users + 1] - rel_ptr[users]) > 0]
    sums = {f"{m}@{k}": 0.0 for k in ks for m in ("hr", "ndcg", "recall")}
    sums["mrr"] = 0.0
    covered = {k: torch.zeros(n_items, dtype=torch.bool, device=device) for k in ks}
    discounts = 1.0 / torch.log2(torch.arange(2, max_k + 2, device=device, dtype=torch.float64))
    for start in range(0, len(users), chunk):
        u = users[start:start + chunk]
        ranks, first, n_rel, top, _, _ = _rank_chunk(scorer(torch.as_tensor(u, device=device)), u, seen,
                                                     relevant, max_k, name, mrr)
        n_rel = n_rel.double()
        valid = torch.arange(ranks.shape[1], device=device) < n_rel.unsqueeze(1)  # slots holding an item
        gains = 1.0 / torch.log2(ranks.double() + 1)  # (chunk, R)
        for k in ks:
            in_top = valid & (ranks <= k)
            ideal = torch.cumsum(discounts[:k], 0)[(n_rel.clamp(max=k) - 1).long()]
            sums[f"hr@{k}"] += float(in_top.any(1).sum())
            sums[f"ndcg@{k}"] += float(((gains * in_top).sum(1) / ideal).sum())
            sums[f"recall@{k}"] += float((in_top.sum(1) / n_rel).sum())
            covered[k][top[:, :k].reshape(-1)] = True
        if first is not None:
            sums["mrr"] += float((1.0 / first.double()).sum())
    n = max(len(users), 1)
    out = {k: v / n for k, v in sums.items() if mrr or k != "mrr"}
    for k in ks:
        out[f"coverage@{k}"] = float(covered[k].sum()) / n_items
    out["users"] = float(len(users))
    return out


def agreement(scorer_a: Scorer, scorer_b: Scorer, users: np.ndarray, seen: tuple[np.ndarray, np.ndarray],
              n_items: int, k: int = 10, chunk: int = 512, device: torch.device | str = "cpu") -> dict[str, float]:
    """How alike two rankers are: mean overlap@K of their top-K lists (|A ∩ B| / K) and mean
    Spearman rank correlation of their scores over each user's unseen items."""
    device = torch.device(device)
    if k > n_items:
        raise ValueError(f"K={k} is larger than the catalogue ({n_items} items)")
    overlap = spearman = 0.0
    for start in range(0, len(users), chunk):
        u = users[start:start + chunk]
        ut = torch.as_tensor(u, device=device)
        mask = _csr_mask(*seen, u, n_items, device)
        a = scorer_a(ut).double().masked_fill(mask, float("-inf"))
        b = scorer_b(ut).double().masked_fill(mask, float("-inf"))
        ta, tb = a.topk(k, 1).indices, b.topk(k, 1).indices
        overlap += float((ta.unsqueeze(2) == tb.unsqueeze(1)).any(2).sum()) / k
        for row in range(len(u)):
            keep = ~mask[row]
            ra = _ranks(a[row][keep])
            rb = _ranks(b[row][keep])
            spearman += float(torch.corrcoef(torch.stack([ra, rb]))[0, 1]) if keep.sum() > 1 else 1.0
    n = max(len(users), 1)
    return {f"overlap@{k}": overlap / n, "spearman": spearman / n}


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share the mean rank), as scipy.stats.rankdata."""
    sorted_x, order = torch.sort(x)
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(1, len(x) + 1, dtype=x.dtype, device=x.device)
    # tie correction: mean rank of each group of equal values
    uniq, inverse = torch.unique(sorted_x, return_inverse=True)
    if len(uniq) < len(x):
        sums = torch.zeros(len(uniq), dtype=x.dtype, device=x.device).index_add_(0, inverse, torch.arange(1, len(x) + 1, dtype=x.dtype, device=x.device))
        counts = torch.bincount(inverse, minlength=len(uniq)).to(x.dtype)
        ranks[order] = (sums / counts)[inverse]
    return ranks

"""Full-ranking metrics: every item is ranked for every evaluated user, seen items excluded.

For one user with relevant (held-out) set R and top-K list L (rank r = 1, 2, ...):

* HR@K     = 1 if L ∩ R is not empty
* NDCG@K   = sum_{r: L_r in R} 1 / log2(r + 1)  /  sum_{r=1}^{min(|R|, K)} 1 / log2(r + 1)
* Recall@K = |L ∩ R| / |R|
* MRR      = 1 / rank of the best-ranked relevant item in the full ranking (not truncated)
* coverage@K = distinct items in anyone's top-K / n_items

Users are scored in chunks of ``chunk`` rows, so no dense users x items matrix larger than
``(chunk, n_items)`` is ever built.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Scorer = Callable[[torch.Tensor], torch.Tensor]  # (batch,) users -> (batch, n_items)


def _csr_mask(ptr: np.ndarray, items: np.ndarray, users: np.ndarray, n_items: int, device: torch.device) -> torch.Tensor:
    """Dense ``(len(users), n_items)`` bool mask of each user's items in a CSR layout."""
    counts = ptr[users + 1] - ptr[users]
    rows = np.repeat(np.arange(len(users)), counts)
    cols = np.concatenate([items[ptr[u]:ptr[u + 1]] for u in users]) if len(users) else np.zeros(0, np.int64)
    mask = torch.zeros((len(users), n_items), dtype=torch.bool, device=device)
    mask[torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)] = True
    return mask


def evaluate_ranking(scorer: Scorer, users: np.ndarray, relevant: tuple[np.ndarray, np.ndarray],
                     seen: tuple[np.ndarray, np.ndarray], n_items: int, ks: tuple[int, ...] = (10, 20),
                     chunk: int = 512, device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean HR/NDCG/Recall@K, MRR and coverage@K over ``users`` (those with relevant items)."""
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
        scores = scorer(torch.as_tensor(u, device=device)).double()  # (chunk, n_items)
        scores = scores.masked_fill(_csr_mask(*seen, u, n_items, device), float("-inf"))
        rel = _csr_mask(rel_ptr, rel_items, u, n_items, device)
        n_rel = rel.sum(1).double()
        top = scores.topk(max_k, dim=1).indices  # (chunk, max_k)
        hits = rel.gather(1, top).double()
        for k in ks:
            h = hits[:, :k]
            ideal = torch.cumsum(discounts[:k], 0)[(n_rel.clamp(max=k) - 1).long()]
            sums[f"hr@{k}"] += float((h.sum(1) > 0).sum())
            sums[f"ndcg@{k}"] += float(((h * discounts[:k]).sum(1) / ideal).sum())
            sums[f"recall@{k}"] += float((h.sum(1) / n_rel).sum())
            covered[k][top[:, :k].reshape(-1)] = True
        best_rel = scores.masked_fill(~rel, float("-inf")).max(1, keepdim=True).values
        rank = (scores > best_rel).sum(1).double() + 1
        sums["mrr"] += float((1.0 / rank).sum())
    n = max(len(users), 1)
    out = {k: v / n for k, v in sums.items()}
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

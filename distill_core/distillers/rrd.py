"""Relaxed Ranking Distillation (Kang, Hwang, Kweon & Yu, CIKM 2020, "DE-RRD: A Knowledge Distillation Framework
for Recommender System"): a listwise Plackett-Luce likelihood of the teacher's order of a few
"interesting" items, ranked above a sample of "uninteresting" ones whose own order is left free (relaxed).

    term = mean_rows  - sum_{k=1..K} [ s_{pi_k} - log( sum_{j=k..K} exp(s_{pi_j}) + sum_{l in U} exp(s_l) ) ]

``s`` are the student's raw scores (no temperature); ``pi_1..pi_K`` the interesting items in the teacher's order;
``U`` the uninteresting items. ``exp(-term)`` per row is the Plackett-Luce probability that the student ranks
``pi_1, .., pi_K`` first, in that order, summed over every order of ``U`` below them (a test enumerates the
orders). The items:

* interesting: K of the teacher's top ``rrd_pool`` items (its top-K lists, so this scales with them), drawn
  without replacement with ``p(rank r) ∝ exp(-r / rrd_t)``, r = 1..pool (Gumbel top-K), kept in the teacher's
  order; with ``rrd_pool = rank_k`` they are simply the teacher's top K;
* uninteresting: ``rrd_l`` items drawn uniformly per batch (shared by its rows), each left out of the rows whose
  pool or target holds it.

Checked against the authors' code. The stored copy of github.com/SeongKu-Kang/DE-RRD_CIKM20 holds only
``Models/DE.py``; the RRD loss is their ``relaxed_ranking_loss`` as it appears in copies of that code and in a
multi-method KD4Rec code base built on it (class ``RRD``): ``above = S1.sum(1)``, ``below1 =
S1.flip(-1).exp().cumsum(1)``, ``below2 = S2.exp().sum(1)``, ``loss = -(above - log(below1 + below2).sum(1)).sum()``,
the interesting items drawn by ``torch.multinomial(exp(-(arange(mxK) + 1) / T), K, replacement=False)`` and
sorted, the uninteresting ones uniformly from the items outside the teacher's top mxK and the user's training
items. Here, unlike there: the sum over a batch's users is a mean over its rows (``batchmean``, as the KL); both
samples are drawn per batch rather than once per epoch, the uninteresting items with replacement and shared by
the batch; the user's other training items are not excluded (the row's target is); the scores are not clipped
(the log-sum-exp is stable without it). The stored sources do not give the paper's K, L and T; the defaults
(K 10, pool 100, L 100, T 10) are starting points for ``bench/methods.py`` to tune.
"""
from __future__ import annotations

import torch

from distill_core.config import DistillConfig
from distill_core.distillers.base import Distiller, View
from distill_core.sampled import NEG_INF, member


def rrd_term(interesting: torch.Tensor, uninteresting: torch.Tensor) -> torch.Tensor:
    """The relaxed Plackett-Luce NLL (module docstring), averaged over rows: ``(n, K), (n, L) -> ()``.

    ``interesting`` in the teacher's order, best first; an uninteresting score of -inf is left out."""
    tail = torch.logcumsumexp(interesting.flip(1), 1).flip(1)  # (n, K): log sum_{j >= k} exp(s_j)
    rest = torch.logsumexp(uninteresting, 1, keepdim=True)  # (n, 1)
    return (torch.logaddexp(tail, rest) - interesting).sum(1).mean()


def sample_ranks(n: int, pool: int, k: int, temperature: float, gen: torch.Generator) -> torch.Tensor:
    """``k`` of the ranks ``0..pool-1`` per row, without replacement, ``p(r) ∝ exp(-(r + 1) / T)``, sorted:
    ``(n, k)`` (the Gumbel top-K trick: the same law as drawing one by one, as ``torch.multinomial`` does)."""
    if k == pool:
        return torch.arange(pool).expand(n, -1)
    log_w = -torch.arange(1, pool + 1, dtype=torch.float64) / temperature
    u = torch.rand((n, pool), generator=gen, dtype=torch.float64).clamp(1e-300, 1.0)
    keys = log_w - torch.log(-torch.log(u))
    return keys.topk(k, 1).indices.sort(1).values


class RRD(Distiller):
    name = "rrd"

    def __init__(self, cfg: DistillConfig) -> None:
        super().__init__()
        self.k, self.pool, self.l, self.t = cfg.rank_k, cfg.rrd_pool, cfg.rrd_l, cfg.rrd_t

    def term(self, v: View) -> torch.Tensor:
        pool = v.teacher_ranking(self.pool)  # (n, pool), the teacher's best first
        ranks = sample_ranks(len(pool), self.pool, self.k, self.t, v.gen).to(pool.device)
        interesting = pool.gather(1, ranks)  # (n, K) in the teacher's order
        u = v.uniform_items(self.l)  # (L,)
        out = member(u, pool) | (u.unsqueeze(0) == v.b.targets.unsqueeze(1))  # (n, L)
        return rrd_term(v.scores(interesting), v.scores_at(u).masked_fill(out, NEG_INF))

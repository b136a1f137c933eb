"""Ranking Distillation (Tang & Wang, KDD 2018, "Ranking Distillation: Learning Compact Ranking Models With High
Performance for Recommender System"): the teacher's top-K items of a row are extra, weighted positives of the
student's own ranking loss.

    term = mean_rows  sum_{r=1..K} w_r * NLL(pi_r)
    w_r  = w^a_r * w^b_r,   w^a_r = exp(-r / lambda) / sum_{r'=1..K} exp(-r' / lambda)         (paper Eq. 8)
                            w^b_r = tanh(max(mu * (rank_s(pi_r) - (r - 1)), 0))                 (paper Eq. 9)

``pi_1..pi_K`` are the teacher's K best items of the row (its top-K lists, so this scales with them);
``rank_s(i)`` is the student's 0-based rank of item i (how many items it scores higher): exact on the full path,
on the sampled path estimated from the batch's negatives by importance sampling (``View.rank``). ``w^b`` pushes
only the items the student still ranks below the teacher's position for them; the weights carry no gradient.

Checked against the authors' code (github.com/graytowne/rank_distill, ``distill_caser.py`` and ``losses.py``):
``weight_static = exp(-(1..K) / lamda)`` normalised to sum 1; ``weight_dynamic = clamp(tanh(mu * (predicted_rank
- col)), min=0)`` with ``col`` the 0-based teacher position and ``predicted_rank = floor(n_items * share of
uniform samples scored higher)``; hybrid ``weight = weight_dynamic * weight_static`` without renormalisation
(``_weight_renormalize = False``); the distillation loss ``-weight * log sigmoid(s_pi)`` summed over K, averaged
over rows; the teacher's target item left out of its list (``with_targets = False``). Defaults from their code:
K = 10, lambda = 1, mu = 0.1.

The variant implemented here, and where it departs:

* **the positives go into the student's own loss**, which here is the softmax CE (``NLL(i) = -log softmax(s)_i``
  on the full path, the sampled softmax with logQ correction on the sampled one), not Caser's pointwise
  ``-log sigmoid(s_i)``; a pointwise positive-only term beside a softmax CE would be met by raising every score at
  once. So RD is a weighted CE: with K = 1 and ``mu = 0`` the term is the CE with the teacher's best item as
  the label (a test pins it);
* **``mu = 0`` means position weights only** (``w^b = 1``); the authors switch the hybrid weight on after
  ``dynamic_start_epoch = 10`` epochs, here it acts from the first step when ``mu > 0``;
* the row's target is left out by giving it weight 0 (not by refilling the list from rank K + 1); the user's
  other training items stay in the teacher's list, as they do in the soft labels of Hinton KD.
"""
from __future__ import annotations

import torch

from distill_core.config import DistillConfig
from distill_core.distillers.base import Distiller, View


def position_weights(k: int, lam: float) -> torch.Tensor:
    """``w^a_r = exp(-r / lambda) / sum_r' exp(-r' / lambda)``, r = 1..K: ``(K,)``, summing to 1."""
    w = torch.exp(-torch.arange(1, k + 1, dtype=torch.float64) / lam)
    return w / w.sum()


def dynamic_weights(student_rank: torch.Tensor, mu: float) -> torch.Tensor:
    """``w^b_r = tanh(max(mu * (rank_s - (r - 1)), 0))`` for ranks ``(n, K)`` of the teacher's items in order."""
    teacher_rank = torch.arange(student_rank.shape[1], device=student_rank.device, dtype=student_rank.dtype)
    return torch.tanh(torch.clamp(mu * (student_rank - teacher_rank), min=0.0))


def rd_term(nll: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``mean_rows sum_r w_r * NLL_r`` for ``nll (n, K)`` and ``weights`` (K,) or (n, K) (no gradient): ``-> ()``."""
    return (weights.detach() * nll).sum(1).mean()


class RD(Distiller):
    name = "rd"

    def __init__(self, cfg: DistillConfig) -> None:
        super().__init__()
        self.k, self.lam, self.mu = cfg.rank_k, cfg.rd_lambda, cfg.rd_mu

    def term(self, v: View) -> torch.Tensor:
        items = v.teacher_ranking(self.k)  # (n, K), the teacher's best first
        w = position_weights(self.k, self.lam).to(items.device, v.b.hidden.dtype).expand(len(items), -1)  # (n, K)
        if self.mu > 0:
            w = w * dynamic_weights(v.rank(items), self.mu)
        w = w.masked_fill(items == v.b.targets.unsqueeze(1), 0.0)  # the target is the CE's positive already
        return rd_term(v.nll(items), w)

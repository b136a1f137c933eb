"""Distillation Experts (Kang, Hwang, Kweon & Yu, CIKM 2020, "DE-RRD: A Knowledge Distillation Framework for
Recommender System"): small "expert" networks map the student's user and item representations onto the
teacher's, and a gate that reads the teacher's representation picks one expert per entity, so each expert
distils one region of the teacher's space into the student's smaller one.

    alpha_e = softmax(W_g t_e)                                      (the gate over M experts, from the teacher)
    z_e     = softmax((log(alpha_e + 1e-10) + g) / tau),  g ~ Gumbel(0, 1)^M        (Gumbel-softmax selection)
    D(e)    = || t_e - sum_m z_em E_m(s_e) ||^2 / d_t,    E_m(s) = W2 relu(W1 s + b1) + b2   (d_s -> h -> d_t)
    term    = mean_users D(u) + 1/2 (mean_{i in P} D(i) + mean_{i in N} D(i))

``s_e``, ``t_e``: the student's and the teacher's representation of entity e; for a user, the student's hidden
state at each of the batch's rows (``Batch.hidden``) and the teacher's at the same row
(``SoftLabels.teacher_vectors``: per position, or after the user's training sequence); for an item, the item
embeddings without bias. ``P``: the batch's distinct target items; ``N``: as many items drawn uniformly. Users and
items have their own experts and gate; ``h = (d_s + d_t) // 2``, or ``d_s // 2`` when ``d_s = d_t``. The experts
and gates train with the student (the trainer optimises ``Distiller.parameters``) and serve nothing after
training; gradients reach the student's representations, never the teacher's. Every family here provides
the representations DE reads (``user_vectors``, ``item_vectors``): mf, two_tower, sasrec and text.

Checked against the authors' code (github.com/SeongKu-Kang/DE-RRD_CIKM20, ``Models/DE.py``, ``BPR_DE``):
``Expert = Linear(d_s, (d_t + d_s) // 2), ReLU, Linear(.., d_t)`` (``d_s // 2`` in the middle for
self-distillation); ``selection_net = Linear(d_t, M), Softmax``; ``softmax((log(selection_dist + 1e-10) + g) / T)``
with Gumbel noise, no selection when M = 1; ``DE_loss = ((t - expert_outputs) ** 2).sum(-1).sum()``, in
``get_loss`` users + (positive items + negative items) * 0.5. Here, unlike there: sums over entities are means
and the squared error is divided by d_t (so the term does not grow with the batch or the teacher's width; the
weight is ``1 - alpha``); the Gumbel temperature ``tau`` is fixed (their later code anneals it during training);
the negative items are drawn uniformly per batch (theirs are the BPR negatives of the batch).
"""
from __future__ import annotations

import torch
from torch import nn

from distill_core.distillers.base import Distiller, View


def expert(d_s: int, d_t: int) -> nn.Sequential:
    """``E(s) = W2 relu(W1 s + b1) + b2``, ``d_s -> h -> d_t`` (h as the module docstring says)."""
    h = max(1, (d_s + d_t) // 2 if d_s != d_t else d_s // 2)
    return nn.Sequential(nn.Linear(d_s, h), nn.ReLU(), nn.Linear(h, d_t))


def select(alpha: torch.Tensor, g: torch.Tensor, tau: float) -> torch.Tensor:
    """Gumbel-softmax selection ``softmax((log(alpha + 1e-10) + g) / tau)``: ``(n, M), (n, M) -> (n, M)``."""
    return torch.softmax((torch.log(alpha + 1e-10) + g) / tau, dim=-1)


def de_distance(s: torch.Tensor, t: torch.Tensor, experts: nn.ModuleList, z: torch.Tensor | None) -> torch.Tensor:
    """``mean_e || t_e - sum_m z_em E_m(s_e) ||^2 / d_t`` (``z`` None: one expert): ``-> ()``."""
    out = torch.stack([e(s) for e in experts], -1)  # (n, d_t, M)
    mapped = out.squeeze(-1) if z is None else (out * z.unsqueeze(1)).sum(-1)  # (n, d_t)
    return ((t.detach() - mapped) ** 2).sum(-1).mean() / t.shape[-1]


class Side(nn.Module):
    """The experts and the gate of one side (users or items)."""

    def __init__(self, d_s: int, d_t: int, n_experts: int) -> None:
        super().__init__()
        self.experts = nn.ModuleList(expert(d_s, d_t) for _ in range(n_experts))
        self.gate = nn.Linear(d_t, n_experts)

    def distance(self, s: torch.Tensor, t: torch.Tensor, v: View, tau: float) -> torch.Tensor:
        if len(self.experts) == 1:
            return de_distance(s, t, self.experts, None)
        alpha = torch.softmax(self.gate(t.detach()), dim=-1)  # (n, M)
        return de_distance(s, t, self.experts, select(alpha, v.gumbel(tuple(alpha.shape)), tau))


class DE(Distiller):
    name = "de"

    def __init__(self, d_s: int, d_t: int, n_experts: int, tau: float) -> None:
        super().__init__()
        self.users, self.items, self.tau = Side(d_s, d_t, n_experts), Side(d_s, d_t, n_experts), tau

    def term(self, v: View) -> torch.Tensor:
        b = v.b
        user = self.users.distance(b.hidden, v.teacher_users(), v, self.tau)
        pos = b.targets.unique()
        neg = v.uniform_items(len(pos))
        item = [self.items.distance(b.item_vectors(i)[0], v.teacher_items(i), v, self.tau) for i in (pos, neg)]
        return user + 0.5 * (item[0] + item[1])

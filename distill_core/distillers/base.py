"""The contract of a distillation method: ``Distiller.term(view) -> ()``, the KD term of one batch.

A method reads what it needs from a ``View`` of the batch: the student's side (``models.base.Batch``: hidden
states, item vectors, targets), the teacher's (``soft_labels.SoftLabels``: dense rows, top-K lists, user and item
representations) and the path (the batch's shared ``negatives`` on the sampled softmax, else the full logits).
The View computes each thing once per batch, however many methods of a combination read it. Every method's
total is the same (``batch_loss``)::

    total = alpha * CE + (1 - alpha) * scale * term

CE is the student's own hard-label loss on the path (full softmax, or sampled softmax with logQ correction:
``distill_core.sampled``); ``scale`` is T^2 for Hinton KD with ``t_squared`` and 1 for every other method. A
combination ``a+b`` (``Combo``) has ``term = scale_a * term_a + combo_weight * scale_b * term_b`` and scale 1.
The loss terms the live view shows are ``KDLossOutput(ce, kl=term, total)``: ``kl`` holds the method's term.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from distill_core.config import DistillConfig
from distill_core.losses import KDLossOutput
from distill_core.models.base import Batch
from distill_core.sampled import NEG_INF, Negatives, TopK, sampled_ce

if TYPE_CHECKING:
    from distill_core.soft_labels import SoftLabels


class View:
    """One batch as a method sees it; each part computed on first use and kept for the batch.

    ``neg`` None: the full path (``logits`` is the student's ``(n, n_items)``); else the sampled path, where no
    ``(n, n_items)`` block is ever built. ``gen`` (CPU) draws what a method samples (RRD's items, DE's noise),
    so a run is reproducible from its seed."""

    def __init__(self, b: Batch, soft: "SoftLabels", cfg: DistillConfig, neg: Negatives | None,
                 gen: torch.Generator) -> None:
        self.b, self.soft, self.cfg, self.neg, self.gen = b, soft, cfg, neg, gen
        self.n_items = soft.teacher.n_items
        self._logits: torch.Tensor | None = None
        self._neg_logits: torch.Tensor | None = None
        self._top: TopK | None = None
        self._rankings: dict[int, torch.Tensor] = {}

    @property
    def sampled(self) -> bool:
        return self.neg is not None

    @property
    def dense(self) -> bool:
        """The exact path of small catalogues: the full softmax and the teacher's whole rows."""
        return self.neg is None and self.soft.k is None

    @property
    def logits(self) -> torch.Tensor:
        """The student's scores of every item (full path only): ``(n, n_items)``."""
        if self._logits is None:
            self._logits = self.b.logits()
        return self._logits

    @property
    def neg_logits(self) -> torch.Tensor:
        """The student's raw scores of the batch's shared negatives (sampled path): ``(n, S)``."""
        if self._neg_logits is None:
            self._neg_logits = self.b.logits_at(self.neg.items)
        return self._neg_logits

    def ce(self) -> torch.Tensor:
        """The hard-label CE on the path: the full softmax CE, or the sampled one (``sampled.sampled_ce``)."""
        if self.sampled:
            return sampled_ce(self.b, self.neg, self.neg_logits)
        return F.cross_entropy(self.logits, self.b.targets)

    def teacher_dense(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(teacher logits, cached log_softmax(t / T))``, one of them None (``SoftLabels.for_batch``)."""
        return self.soft.for_batch(self.b)

    def teacher_top(self) -> TopK:
        """The teacher's top-K soft labels of the batch's rows (``SoftLabels.top_for_batch``)."""
        if self._top is None:
            self._top = self.soft.top_for_batch(self.b)
        return self._top

    def teacher_ranking(self, k: int) -> torch.Tensor:
        """The teacher's ``k`` best items of each row, best first: ``(n, k)`` long. Read from its top-K lists
        (which hold at least ``k`` items: ``distillers.check``), or the top ``k`` of its dense rows."""
        if k not in self._rankings:
            if self.soft.k is not None or self.soft.table is not None:
                items = self.teacher_top().items[:, :k]
            else:
                items = self.soft.top_for_batch(self.b, k).items
            self._rankings[k] = items.long()
        return self._rankings[k]

    def scores(self, items: torch.Tensor) -> torch.Tensor:
        """The student's raw scores of each row's own items: ``(n, k) -> (n, k)``."""
        return self.logits.gather(1, items) if not self.sampled else self.b.row_logits(items)

    def scores_at(self, items: torch.Tensor) -> torch.Tensor:
        """The student's raw scores of items shared by the batch: ``(m,) -> (n, m)``."""
        return self.logits[:, items] if not self.sampled else self.b.logits_at(items)

    def nll(self, items: torch.Tensor) -> torch.Tensor:
        """``-log softmax(s)_i`` of each row's items ``(n, k)`` taken as positives of the student's own loss:
        over the whole catalogue (full path), or the sampled softmax with logQ correction over the batch's
        negatives, the positive's accidental hits masked (sampled path, as ``sampled.sampled_ce``): ``(n, k)``."""
        pos = self.scores(items)  # (n, k)
        if not self.sampled:
            return torch.logsumexp(self.logits, 1, keepdim=True) - pos
        neg = (self.neg_logits - self.neg.log_expected).unsqueeze(1)  # (n, 1, S)
        hit = self.neg.items.view(1, 1, -1) == items.unsqueeze(2)  # (n, k, S)
        rest = torch.logsumexp(neg.expand(-1, items.shape[1], -1).masked_fill(hit, NEG_INF), 2)  # (n, k)
        return torch.logaddexp(pos, rest) - pos

    @torch.no_grad()
    def rank(self, items: torch.Tensor) -> torch.Tensor:
        """The student's rank of each row's items ``(n, k)``: how many items it scores higher (0 = its best).
        Exact on the full path; on the sampled path the importance-sampling estimate
        ``sum_{j in N} 1[s_j > s_i] / (S q_j)`` from the batch's negatives (``q`` uniform: Tang & Wang's
        estimate from uniform samples, ``n_items * share of the samples above``)."""
        s = self.scores(items)  # (n, k)
        if not self.sampled:  # a count per ranked item: k passes over the row instead of sorting it
            return torch.stack([(self.logits > s[:, j:j + 1]).sum(1) for j in range(s.shape[1])], 1).to(s.dtype)
        above = self.neg_logits.unsqueeze(1) > s.unsqueeze(2)  # (n, k, S)
        return (above * torch.exp(-self.neg.log_expected)).sum(2)

    def teacher_users(self) -> torch.Tensor:
        """The teacher's user representation at each row: ``(n, teacher dim)`` (``SoftLabels.teacher_vectors``)."""
        return self.soft.teacher_vectors(self.b)

    def teacher_items(self, items: torch.Tensor) -> torch.Tensor:
        """The teacher's representation of ``items (m,)``: ``(m, teacher dim)``."""
        return self.soft.teacher_item_vectors(items)

    def uniform_items(self, m: int) -> torch.Tensor:
        """``m`` items drawn uniformly, with replacement, from the catalogue (seeded): ``(m,)`` long."""
        return torch.randint(0, self.n_items, (m,), generator=self.gen).to(self.b.targets.device)

    def gumbel(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard Gumbel noise ``-log(-log U)`` (seeded), on the batch's device."""
        u = torch.rand(shape, generator=self.gen).clamp(1e-10, 1 - 1e-7)
        return (-torch.log(-torch.log(u))).to(self.b.hidden.device, self.b.hidden.dtype)


class Distiller(nn.Module):
    """One distillation method. ``term(view)`` is its KD term of one batch (a scalar with autograd to the
    student); ``scale`` multiplies it in the total (T^2 for Hinton KD, else 1). A method with weights of its own
    (DE's experts) registers them as parameters; the trainer optimises them with the student's."""

    name: str = ""
    scale: float = 1.0

    def term(self, v: View) -> torch.Tensor:
        raise NotImplementedError


class Combo(Distiller):
    """``a+b``: ``scale_a * term_a + weight * scale_b * term_b`` (DE-RRD's ``L_DE + lambda L_RRD``), scale 1."""

    def __init__(self, first: Distiller, second: Distiller, weight: float) -> None:
        super().__init__()
        self.first, self.second, self.weight = first, second, weight
        self.name = f"{first.name}+{second.name}"

    def term(self, v: View) -> torch.Tensor:
        return self.first.scale * self.first.term(v) + self.weight * self.second.scale * self.second.term(v)


def batch_loss(method: Distiller, v: View) -> KDLossOutput:
    """``alpha * CE + (1 - alpha) * scale * term`` of one batch, with its terms (module docstring)."""
    ce = v.ce()
    if v.cfg.alpha == 1.0:
        return KDLossOutput(ce=ce, kl=ce.new_zeros(()), total=ce)
    term = method.term(v)
    return KDLossOutput(ce=ce, kl=term, total=v.cfg.alpha * ce + (1.0 - v.cfg.alpha) * method.scale * term)

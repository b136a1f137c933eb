"""Hinton KD on the teacher's softened distribution (Hinton, Vinyals & Dean, 2015, "Distilling the Knowledge in a
Neural Network"; torchdistill's ``KDLoss``): the method RecDistill has always used, wrapped in the contract.

    term = KL(softmax(t / T) || softmax(s / T)),   scale = T^2 (1 without t_squared)

On the exact path (full softmax, dense soft labels) the KL is ``losses.kd_kl`` over the whole catalogue; with
top-K soft labels it is ``sampled.topk_kl`` over the K items plus one "rest" bucket, the student's rest exact
from its full logits or estimated from the batch's negatives (``distill_core.sampled`` has the formulas). The
term is the one ``losses.kd_loss`` and ``sampled.large_kd_loss`` compute, which a test checks; the default method
``logits`` still trains through those two functions (``distill._loss_maker``), this class serves combinations.
"""
from __future__ import annotations

import torch

from distill_core.config import DistillConfig
from distill_core.distillers.base import Distiller, View
from distill_core.losses import kd_kl
from distill_core.sampled import exact_rest, sampled_rest, topk_kl


class LogitsKD(Distiller):
    name = "logits"

    def __init__(self, cfg: DistillConfig) -> None:
        super().__init__()
        self.temperature = cfg.temperature
        self.scale = cfg.temperature ** 2 if cfg.t_squared else 1.0

    def term(self, v: View) -> torch.Tensor:
        T = self.temperature
        if v.dense:
            t, log_p = v.teacher_dense()
            return kd_kl(v.logits, t, T, log_p)
        labels = v.teacher_top()
        if not v.sampled:
            return topk_kl(v.logits.gather(1, labels.items), exact_rest(v.logits, labels.items, T), labels, T)
        return topk_kl(v.b.row_logits(labels.items), sampled_rest(v.b, v.neg, labels.items, T, v.neg_logits),
                       labels, T)

"""Matrix factorisation: ``score(u, i) = <p_u, q_i> + b_i`` (the default student).

Serving is one matrix product, which makes it the fastest model to score with.
"""
from __future__ import annotations

import torch
from torch import nn

from distill_core.config import ModelSpec
from distill_core.models.base import Recommender, gather, rows


class MF(Recommender):
    family = "mf"

    def __init__(self, spec: ModelSpec, n_users: int, n_items: int) -> None:
        super().__init__(spec, n_users, n_items)
        self.user = nn.Embedding(n_users, spec.dim)
        self.item = nn.Embedding(n_items, spec.dim)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)

    def user_vectors(self, users: torch.Tensor, seq: torch.Tensor | None = None) -> torch.Tensor:
        return rows(self.user, users)  # (batch, dim)

    def item_vectors(self, items: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if items is None:
            return self.item.weight, self.item_bias
        return rows(self.item, items), gather(self.item_bias, items)

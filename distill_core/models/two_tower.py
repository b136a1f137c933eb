"""Two-tower model whose user tower reads the user's recent history.

``user = MLP([e_u ; mean(h_i over the last 50 items) ; r_1 ; r_2 ; r_3])`` where ``r_k`` is the
embedding of the user's k-th most recent item, ``item = e_i``, ``score(u, i) = <user, item> + b_i``.
The recent items let the model follow drifting taste, sessions and series, which a plain id
embedding averages away.
"""
from __future__ import annotations

import torch
from torch import nn

from distill_core.config import ModelSpec
from distill_core.models.base import Recommender, gather, rows

RECENT = 3  # most recent items read one by one (position-aware)


class TwoTower(Recommender):
    family = "two_tower"
    sequential = True

    def __init__(self, spec: ModelSpec, n_users: int, n_items: int) -> None:
        super().__init__(spec, n_users, n_items, max_len=spec.max_len)
        d = spec.dim
        self.user = nn.Embedding(n_users, d)
        self.hist = nn.Embedding(n_items + 1, d, padding_idx=n_items)
        self.item = nn.Embedding(n_items, d)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        layers: list[nn.Module] = []
        width = (2 + RECENT) * d
        for _ in range(spec.layers):
            layers += [nn.Linear(width, 2 * d), nn.GELU()]
            width = 2 * d
        layers.append(nn.Linear(width, d))
        self.tower = nn.Sequential(*layers)
        for emb in (self.user, self.item, self.hist):
            nn.init.normal_(emb.weight, std=0.1)
        with torch.no_grad():
            self.hist.weight[n_items].zero_()

    def user_vectors(self, users: torch.Tensor, seq: torch.Tensor | None = None) -> torch.Tensor:
        h = self._seq(users, seq)  # (batch, max_len)
        emb = rows(self.hist, h)  # (batch, max_len, dim); padding rows are zero
        n = (h != self.n_items).sum(1, keepdim=True).clamp_min(1)
        recent = emb[:, -RECENT:].flatten(1)  # (batch, RECENT * dim)
        return self.tower(torch.cat([rows(self.user, users), emb.sum(1) / n, recent], dim=-1))  # (batch, dim)

    def item_vectors(self, items: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if items is None:
            return self.item.weight, self.item_bias
        return rows(self.item, items), gather(self.item_bias, items)

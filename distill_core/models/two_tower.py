"""Two-tower model whose user tower reads the user's recent history.

``user = MLP([e_u ; mean(h_i over the last 50 items) ; r_1 ; r_2 ; r_3])`` where ``r_k`` is the
embedding of the user's k-th most recent item, ``item = e_i``, ``score(u, i) = <user, item> + b_i``.
The recent items let the model follow drifting taste, sessions and series, which a plain id
embedding averages away. The history is the model's *context*, set from the split
(``set_context``) and not part of the weights: training and validation see the training items;
the test ranking also sees the validation item, which precedes the test item in time.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from distill_core.config import ModelSpec
from distill_core.models.base import Recommender

HISTORY = 50  # most recent items the mean reads
RECENT = 3  # most recent items read one by one (position-aware)


def recent_history(ptr: np.ndarray, items: np.ndarray, n_items: int, length: int = HISTORY) -> torch.Tensor:
    """``(n_users, length)`` most recent items per user, newest last, left-padded with ``n_items``."""
    n_users = len(ptr) - 1
    out = np.full((n_users, length), n_items, dtype=np.int64)
    for u in range(n_users):
        seq = items[ptr[u]:ptr[u + 1]][-length:]
        if len(seq):
            out[u, length - len(seq):] = seq
    return torch.from_numpy(out)


class TwoTower(Recommender):
    family = "two_tower"

    def __init__(self, spec: ModelSpec, n_users: int, n_items: int) -> None:
        super().__init__(spec, n_users, n_items)
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
        self.register_buffer("history", torch.full((n_users, HISTORY), n_items, dtype=torch.long),
                             persistent=False)  # (n_users, HISTORY)

    def set_context(self, ptr: np.ndarray, items: np.ndarray) -> None:
        self.history = recent_history(ptr, items, self.n_items).to(self.history.device)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:  # (batch,) -> (batch, dim)
        h = self.history[users]  # (batch, HISTORY)
        emb = self.hist(h)  # (batch, HISTORY, dim); padding rows are zero
        n = (h != self.n_items).sum(1, keepdim=True).clamp_min(1)
        recent = emb[:, -RECENT:].flatten(1)  # (batch, RECENT * dim)
        return self.tower(torch.cat([self.user(users), emb.sum(1) / n, recent], dim=-1))

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.item_bias, self.user_vectors(users), self.item.weight.t())

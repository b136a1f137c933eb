"""The one contract every recommender honours.

``forward(users)`` scores a batch of users against the whole catalogue: ``(batch,) -> (batch, n_items)``
logits. A softmax over that row is the model's distribution over the next item, which is what the
hard CE trains and what the KD loss compares between teacher and student.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from distill_core.config import ModelSpec


class Recommender(nn.Module):
    """Base class: subclasses set ``family`` and implement ``forward``."""

    family: str = ""

    def __init__(self, spec: ModelSpec, n_users: int, n_items: int) -> None:
        super().__init__()
        self.spec = spec
        self.n_users = n_users
        self.n_items = n_items

    def forward(self, users: torch.Tensor) -> torch.Tensor:  # (batch,) -> (batch, n_items)
        raise NotImplementedError

    def set_context(self, ptr: np.ndarray, items: np.ndarray) -> None:
        """Give the model each user's known items (CSR, time order); id-only models ignore it."""

    @torch.no_grad()
    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Scores in eval mode without autograd: ``(batch,) -> (batch, n_items)``."""
        was_training = self.training
        self.eval()
        try:
            return self(users)
        finally:
            self.train(was_training)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def n_bytes(self) -> int:
        """Bytes of the parameters and persistent buffers (what a state dict holds)."""
        return sum(t.numel() * t.element_size() for t in self.state_dict().values())

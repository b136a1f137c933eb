"""The one contract every recommender honours.

Every family is a dot product: ``user_vectors(users, seq=None) (batch, dim)`` against
``item_vectors(items) (m, dim) + bias (m,)``. ``forward`` scores a batch of user contexts against the
whole catalogue: ``(batch,) -> (batch, n_items)`` logits. A softmax over that row is the model's
distribution over the next item, which is what the hard CE trains and what the KD loss compares between
teacher and student. Keeping the two sides apart lets a large catalogue train on sampled items only
(``Batch.logits_at``): a batch never needs all ``n_items`` scores.

*Sequential* models also read the user's recent items. ``seq`` (``(batch, max_len)``, newest last,
left-padded with ``n_items``) gives them explicitly (training examples use the items *before* the
target); without it they use each user's context set by ``set_context`` (training items for
training and validation, plus the validation item for the test ranking).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from distill_core.config import ModelSpec

if TYPE_CHECKING:
    from distill_core.data.dataset import Split


@dataclass(frozen=True)
class Examples:
    """A model's training examples on one split, as tensors a batch indexes (``Recommender.examples``).

    Pair models: one example per training pair, ``targets (n,)``, ``inputs (n, max_len)`` the items before
    each target (sequential models only, else None). Window models: one example per window,
    ``inputs (W, L)`` and ``targets (W, L)`` (-1 at padding). ``users`` is the user of every example.
    """

    users: torch.Tensor
    targets: torch.Tensor
    inputs: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.users)


ItemVectors = Callable[[torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Batch:
    """One batch as the loss sees it: the model's hidden state at the batch's ``n`` target positions and
    the model's item vectors, so a loss scores the whole catalogue (``logits``), or only the items it needs
    (``logits_at``, ``row_logits``, ``target_logits``: the sampled path, which never builds ``(n, n_items)``).
    Every logit is ``<hidden, e_i> + b_i``."""

    hidden: torch.Tensor  # (n, dim)
    item_vectors: ItemVectors  # items (m,) or None (all) -> (e (m, dim), b (m,)), with autograd
    targets: torch.Tensor  # (n,)
    users: torch.Tensor  # (batch,) the user of each example
    idx: torch.Tensor  # (batch,) example indices
    windows: tuple[torch.Tensor, torch.Tensor] | None = None  # window models: seq (batch, L), valid (batch, L)

    def logits(self) -> torch.Tensor:
        """Scores of every item: ``(n, n_items)``."""
        e, b = self.item_vectors(None)
        return torch.addmm(b, self.hidden, e.t())

    def logits_at(self, items: torch.Tensor) -> torch.Tensor:
        """Scores of items shared by the batch: ``items (m,) -> (n, m)``."""
        e, b = self.item_vectors(items)
        return torch.addmm(b, self.hidden, e.t())

    def row_logits(self, items: torch.Tensor) -> torch.Tensor:
        """Scores of each row's own items: ``items (n, k) -> (n, k)``."""
        e, b = self.item_vectors(items.reshape(-1))
        e = e.view(*items.shape, -1)
        if e.shape[-1] <= 16:  # a product and a sum: forward + backward of 1,024 x 128 x dim 6 in 8 ms vs 19 by bmm
            return (e * self.hidden.unsqueeze(1)).sum(-1) + b.view(items.shape)
        return (e @ self.hidden.unsqueeze(-1)).squeeze(-1) + b.view(items.shape)  # bmm wins at dim 64 (75 vs 123)

    def target_logits(self) -> torch.Tensor:
        """Score of each row's target: ``(n,)``."""
        return self.row_logits(self.targets.unsqueeze(1)).squeeze(1)


def recent_history(ptr: np.ndarray, items: np.ndarray, n_items: int, length: int) -> torch.Tensor:
    """``(n_users, length)`` most recent items per user (CSR input), newest last, left-padded with ``n_items``."""
    n_users = len(ptr) - 1
    out = np.full((n_users, length), n_items, dtype=np.int64)
    counts = np.minimum(np.diff(ptr), length)
    for k in range(1, length + 1):  # k-th most recent item of every user at once
        has = counts >= k
        out[has, length - k] = items[ptr[1:][has] - k]
    return torch.from_numpy(out)


def gather(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` (rows of an embedding table or entries of a bias vector), by ``index_select``: the same
    values and gradients as ``nn.Embedding`` / indexing, but its CPU backward is an ``index_add`` where theirs
    sorts the indices first. The top-K soft labels gather 1,024 x 128 item rows a step: 35 -> 13.5 ms at dim 6
    (forward + backward, 53,000 items; biases 1.7 -> 0.8 ms)."""
    return table.index_select(0, index.reshape(-1)).view(*index.shape, *table.shape[1:])


def rows(emb: nn.Module, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` of an id table, with the gradient the table is set to take: row updates
    (``Recommender.set_sparse``: the rows go to ``rowadam.RowAdam``, no dense ``.grad``), else dense, by ``gather``,
    or by ``nn.Embedding`` itself for a table with a padding row (whose gradient it keeps at zero)."""
    if not isinstance(emb, nn.Embedding):
        return emb(index)  # a table of its own kind (models.text.TextItems), which looks up its own parts
    acc = getattr(emb, "_rowgrad", None)
    if acc is not None:
        return acc.lookup(index)
    return emb(index) if emb.padding_idx is not None else gather(emb.weight, index)


class Recommender(nn.Module):
    """Base class: subclasses set ``family`` (and ``sequential``) and implement ``user_vectors`` and
    ``item_vectors``."""

    family: str = ""
    sequential: bool = False
    window_training: bool = False  # trains on whole windows via ``forward_all`` (next item at every position)

    def __init__(self, spec: ModelSpec, n_users: int, n_items: int, max_len: int = 0) -> None:
        super().__init__()
        self.spec = spec
        self.n_users = n_users
        self.n_items = n_items
        self.max_len = max_len  # history length a sequential model reads
        if self.sequential:
            self.register_buffer("history", torch.full((n_users, self.max_len), n_items, dtype=torch.long),
                                 persistent=False)  # (n_users, max_len); context, not weights

    def user_vectors(self, users: torch.Tensor, seq: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError  # (batch,) [, (batch, max_len)] -> (batch, dim)

    def item_vectors(self, items: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Item embeddings and biases of ``items (m,)`` (None: the whole catalogue): ``(m, dim), (m,)``."""
        raise NotImplementedError

    def forward(self, users: torch.Tensor, seq: torch.Tensor | None = None) -> torch.Tensor:
        """``<user_vectors, e_i> + b_i`` for every item: ``(batch,) [, (batch, max_len)] -> (batch, n_items)``."""
        e, b = self.item_vectors(None)
        return torch.addmm(b, self.user_vectors(users, seq), e.t())

    def forward_all(self, seq: torch.Tensor) -> torch.Tensor:
        """Window-trained models: next-item logits at every position, ``(batch, L) -> (batch, L, n_items)``."""
        raise NotImplementedError

    def examples(self, split: "Split", device: torch.device | str = "cpu") -> Examples:
        """This model's training examples on ``split``: every training pair (with the items before it for
        a sequential model, which never hold the target or anything later)."""
        inputs = torch.as_tensor(split.train_prefixes(self.max_len), device=device) if self.sequential else None
        return Examples(torch.as_tensor(split.train_users, device=device),
                        torch.as_tensor(split.train_items, device=device), inputs)

    def examples_per_batch(self, batch_size: int) -> int:
        """How many examples make a batch of about ``batch_size`` target positions."""
        return batch_size

    def batch(self, ex: Examples, idx: torch.Tensor) -> Batch:
        """Examples ``idx`` as the loss sees them (with autograd): one target each."""
        users = ex.users[idx]
        h = self.user_vectors(users, ex.inputs[idx] if ex.inputs is not None else None)  # (batch, dim)
        return Batch(h, self.item_vectors, ex.targets[idx], users, idx)

    def tables(self) -> list[nn.Embedding]:
        """The id tables, one row per user or item (``n_users`` or ``n_items`` [+ padding] rows): the weights
        whose size grows with the dataset and that a batch touches only a few rows of."""
        sizes = {self.n_users, self.n_items, self.n_items + 1}
        return [m for m in self.modules() if isinstance(m, nn.Embedding) and m.num_embeddings in sizes]

    def set_sparse(self, on: bool) -> None:
        """Train the id tables (``tables``) by row updates (``on``: ``rowadam``, what ``catalogue.sparse_tables``
        decides) or by dense gradients. Every training-time lookup of a table must go through ``rows``; a dense
        use with autograd (``item_vectors(None)``) would give the table a ``.grad`` that the trainer refuses.
        Not stored with the weights."""
        from distill_core.rowadam import RowGrad

        for m in self.tables():
            if on and getattr(m, "_rowgrad", None) is None:
                m._rowgrad = RowGrad(m)
            elif not on and hasattr(m, "_rowgrad"):
                del m._rowgrad

    def row_grads(self) -> list:
        """The ``rowadam.RowGrad`` of every table set to row updates."""
        return [m._rowgrad for m in self.tables() if getattr(m, "_rowgrad", None) is not None]

    def set_context(self, ptr: np.ndarray, items: np.ndarray) -> None:
        """Each user's known items (CSR, time order); id-only models ignore it."""
        if self.sequential:
            self.history = recent_history(ptr, items, self.n_items, self.max_len).to(self.history.device)

    def _seq(self, users: torch.Tensor, seq: torch.Tensor | None) -> torch.Tensor:
        return self.history[users] if seq is None else seq

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, seq: torch.Tensor | None = None) -> torch.Tensor:
        """Scores in eval mode without autograd: ``(batch,) -> (batch, n_items)``."""
        was_training = self.training
        self.eval()
        try:
            return self(users, seq)
        finally:
            self.train(was_training)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def n_bytes(self) -> int:
        """Bytes of the parameters and persistent buffers (what a state dict holds)."""
        return sum(t.numel() * t.element_size() for t in self.state_dict().values())

"""The frozen teacher's soft labels, aligned with each training example.

The soft label of a training example is the frozen teacher's output for the *same user tensor* the student
is scored on in that batch, so a label from another user, split or order cannot reach the loss. Two forms:

* **dense**: the teacher's whole row of logits (``n_items`` floats); cached once per user when the
  ``users x items`` table fits ``cache_bytes``, otherwise computed per batch;
* **top-K** (``top_k < n_items``, ``distill_core.sampled.TopK``): the teacher's K best items and logits per
  row plus the log-normaliser and the log-mass of the rest: ``users x K`` memory, not ``users x items``,
  computed once per user a chunk of users at a time (``current``) or per batch (``per-step``).
"""
from __future__ import annotations

import torch

from distill_core.catalogue import CACHE_BYTES, CHUNK_BYTES, rows_per_chunk
from distill_core.data.dataset import Split
from distill_core.errors import ConfigError
from distill_core.models import Recommender
from distill_core.models.base import Batch
from distill_core.sampled import TopK, top_k_blocked
from distill_core.sampled import top_k as topk_of


ROWS = 1024  # users per block of the top-K table


def soft_label_mode(teacher: Recommender, student: Recommender, requested: str = "auto") -> str:
    """``current`` or ``per-step`` (see ``DistillConfig.soft_labels``).

    An id-only teacher has no steps, so both modes are the same there and ``current`` is used. A
    window-trained student (SASRec) takes per-step labels only from a window-trained teacher that
    reads at least as long a window.
    """
    if not teacher.sequential:
        return "current"
    mode = requested if requested != "auto" else ("per-step" if teacher.family == student.family else "current")
    if mode == "per-step" and student.window_training and not (
            teacher.window_training and teacher.max_len >= student.max_len):
        raise ConfigError(f"per-step soft labels for a {student.family} student need a sasrec teacher with "
                          f"max_len >= {student.max_len}; use soft_labels='current'")
    return mode


class SoftLabels:
    """The frozen teacher's logits for each training example.

    ``current``: one row per user, the teacher's output after the user's whole *training* sequence.
    ``per-step``: the teacher's output for the example's own prefix (the items before its target), computed
    per batch. Either way the rows are looked up with the very ``users`` / ``idx`` / window tensors the student
    is trained on in that batch, and the teacher only ever reads training items. ``top_k`` (below the
    catalogue) keeps each row as a ``TopK`` at ``temperature`` instead of the dense row.
    """

    def __init__(self, teacher: Recommender, split: Split, mode: str = "current",
                 cache_bytes: int | None = None, temperature: float | None = None, top_k: int | None = None) -> None:
        cache_bytes = CACHE_BYTES if cache_bytes is None else cache_bytes
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.mode = mode
        device = next(teacher.parameters()).device
        n_items = teacher.n_items
        self.k = top_k if top_k is not None and top_k < n_items else None
        if self.k is not None and temperature is None:
            raise ValueError("top-K soft labels need the temperature (their mass is kept at T)")
        self._context = split.context("train")
        teacher.set_context(*self._context)
        # the rows of that context, kept: labels computed per batch read them, whatever context the shared
        # teacher is given later (a lagged selection builds labels on two contexts)
        self._history = teacher.history if teacher.sequential else None
        self._user_vectors: torch.Tensor | None = None  # the teacher's user representations (current mode, DE)
        self.prefixes = (torch.as_tensor(split.train_prefixes(teacher.max_len), device=device)
                         if mode == "per-step" else None)
        self.temperature = temperature
        self.cache: torch.Tensor | None = None  # raw logits (n_users, n_items), kept when no T is given
        self.cache_log_p: torch.Tensor | None = None  # log_softmax(t / T) (n_users, n_items)
        self.table: TopK | None = None  # top-K rows of every user (current mode)
        step = rows_per_chunk(n_items)
        if mode == "current" and self.k is not None:
            # 1,024 users at a time against blocks of items (sampled.top_k_blocked): the item table is read
            # once per 1,024 users, and no block is larger than CHUNK_BYTES
            e, bias = teacher.item_vectors(None)
            block = max(self.k, CHUNK_BYTES // (4 * ROWS))
            parts = []
            with torch.no_grad():
                for s in range(0, split.n_users, ROWS):
                    h = teacher.user_vectors(torch.arange(s, min(s + ROWS, split.n_users), device=device))
                    parts.append(top_k_blocked(h, e, bias, self.k, temperature, block))
            self.table = TopK(torch.cat([p.items for p in parts]).int(), torch.cat([p.logits for p in parts]),
                              torch.cat([p.lse for p in parts]), torch.cat([p.log_rest for p in parts]))
        elif mode == "current" and split.n_users * n_items * 4 <= cache_bytes:
            # one table filled a block of users at a time: no second full-size copy (raw logits, t / T)
            # ever exists; with T given it holds log_softmax(t / T), computed once per user instead of
            # once per batch (the teacher is frozen)
            table = torch.empty((split.n_users, n_items), device=device)
            for s in range(0, split.n_users, step):
                rows = teacher.score_all(torch.arange(s, min(s + step, split.n_users), device=device))
                table[s:s + len(rows)] = rows if temperature is None else torch.log_softmax(rows / temperature, -1)
            if temperature is None:
                self.cache = table
            else:
                self.cache_log_p = table

    def nbytes(self) -> int:
        """Bytes the soft labels hold (the top-K table or the dense cache)."""
        tensors = ([self.table.items, self.table.logits, self.table.lse, self.table.log_rest] if self.table is not None
                   else [t for t in (self.cache, self.cache_log_p) if t is not None])
        return sum(t.numel() * t.element_size() for t in tensors)

    def log_p(self, users: torch.Tensor) -> torch.Tensor | None:
        """Cached ``log_softmax(t / T)`` rows of ``users`` in ``current`` mode, else None."""
        return self.cache_log_p[users] if self.cache_log_p is not None else None

    def logits(self, users: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Dense soft-label logits of training pairs ``idx`` (users ``users``): ``(batch, n_items)``."""
        if self.prefixes is not None:
            if idx is None:
                raise ValueError("per-step soft labels need the example indices")
            return self.teacher.score_all(users, self.prefixes[idx])
        if self.cache is not None:
            return self.cache[users]
        if self.cache_log_p is not None:
            # T * log_softmax(t / T) = t - T * logsumexp(t / T): the teacher's logits shifted by one
            # constant per user, which no softmax, at any temperature, can tell from t
            return self.cache_log_p[users] * self.temperature
        return self.teacher.score_all(users, self._history[users] if self._history is not None else None)

    def for_batch(self, b: Batch) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(teacher logits, cached log_softmax(t / T))`` at the batch's target positions; one is None."""
        if b.windows is not None:
            return self.window_logits(b.users, *b.windows), None
        log_p = self.log_p(b.users)
        return (self.logits(b.users, b.idx) if log_p is None else None), log_p

    def top_for_batch(self, b: Batch, k: int | None = None) -> TopK:
        """The batch's soft labels as ``TopK`` rows at its target positions (``k``: when the labels are dense)."""
        if self.table is not None:
            users = b.users if b.windows is None else b.users.unsqueeze(1).expand_as(b.windows[1])[b.windows[1]]
            rows = self.table[users]
            return TopK(rows.items.long(), rows.logits, rows.lse, rows.log_rest)
        if self.k is not None:  # per-step: the teacher's rows at the batch's positions, a chunk of rows at a time
            return self._top_of(self._hidden(b), self.k)
        t, log_p = self.for_batch(b)
        logits = t if t is not None else log_p * self.temperature
        return topk_of(logits, self.k or k or logits.shape[1], self.temperature)

    @torch.no_grad()
    def teacher_vectors(self, b: Batch) -> torch.Tensor:
        """The teacher's user representation at the batch's target positions, ``(n, teacher dim)`` (what
        Distillation Experts distil): its hidden state at each position (per-step), else each user's vector after
        the user's training sequence (current), the same rows the soft labels come from."""
        if self.mode == "per-step":
            return self._hidden(b)
        if self._user_vectors is None:
            # once per user (the teacher is frozen): a sequential teacher would otherwise encode every row's
            # sequence again in every batch (DE from sasrec: 54 s an epoch on the sample instead of 5)
            self.teacher.set_context(*self._context)
            n, dev = self.teacher.n_users, b.users.device
            self._user_vectors = torch.cat([self.teacher.user_vectors(torch.arange(s, min(s + ROWS, n), device=dev))
                                            for s in range(0, n, ROWS)])
        h = self._user_vectors[b.users]  # (batch, dim)
        if b.windows is None:
            return h
        valid = b.windows[1]  # (batch, L): one row per valid position, as the student's hidden states
        return h.unsqueeze(1).expand(-1, valid.shape[1], -1)[valid]

    @torch.no_grad()
    def teacher_item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """The teacher's item representations of ``items (m,)``, without the biases: ``(m, teacher dim)``."""
        return self.teacher.item_vectors(items)[0]

    @torch.no_grad()
    def _hidden(self, b: Batch) -> torch.Tensor:
        """The teacher's hidden state at the batch's target positions (per-step mode): ``(n, dim)``."""
        if b.windows is not None:
            seq, valid = b.windows
            return self.teacher.encode(seq)[valid]
        return self.teacher.user_vectors(b.users, self.prefixes[b.idx])

    @torch.no_grad()
    def _top_of(self, hidden: torch.Tensor, k: int) -> TopK:
        e, bias = self.teacher.item_vectors(None)
        return top_k_blocked(hidden, e, bias, k, self.temperature, max(k, CHUNK_BYTES // (4 * max(len(hidden), 1))))

    @torch.no_grad()
    def window_logits(self, users: torch.Tensor, seq: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Soft-label logits at the valid positions of windows ``seq``: ``(n_valid, n_items)``."""
        if self.mode == "per-step":
            return self.teacher.eval().forward_all(seq)[valid]
        rows = self.logits(users)  # (batch, n_items)
        return rows.unsqueeze(1).expand(-1, seq.shape[1], -1)[valid]

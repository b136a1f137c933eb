"""Teacher -> soft labels -> student.

The soft label of a training example is the frozen teacher's output for the *same user tensor*
the student is scored on in that batch (``SoftLabels.logits(users)``), so a label from another
user, split or order cannot reach the loss. Teacher logits are computed once per user and cached
when they fit in ``cache_bytes``; otherwise they are computed per batch.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from distill_core.config import DistillConfig, ModelSpec, TrainConfig
from distill_core.data.dataset import Split
from distill_core.errors import ConfigError
from distill_core.losses import KDLossOutput, kd_loss
from distill_core.metrics import evaluate_ranking
from distill_core.models import Recommender, build_model
from distill_core.models.base import Batch, Examples
from distill_core.trainer import Callback, FitResult, TrainerControl, fit, seeded

log = logging.getLogger(__name__)

CACHE_BYTES = 512 * 2**20
EVAL_MAX_K = 20  # the largest K that evaluate() reports by default (HR/NDCG/Recall@10 and @20)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available (use auto or cpu)")
    return torch.device(name)


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

    ``current``: one row per user, the teacher's output after the user's whole *training* sequence
    (computed once and cached when it fits in ``cache_bytes``). ``per-step``: the teacher's output for
    the example's own prefix (the items before its target), computed per batch. Either way the rows
    are looked up with the very ``users`` / ``idx`` / window tensors the student is trained on in that
    batch, and the teacher only ever reads training items.
    """

    def __init__(self, teacher: Recommender, split: Split, mode: str = "current",
                 cache_bytes: int | None = None, temperature: float | None = None) -> None:
        cache_bytes = CACHE_BYTES if cache_bytes is None else cache_bytes
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.mode = mode
        device = next(teacher.parameters()).device
        teacher.set_context(*split.context("train"))
        self.prefixes = (torch.as_tensor(split.train_prefixes(teacher.max_len), device=device)
                         if mode == "per-step" else None)
        self.temperature = temperature
        self.cache: torch.Tensor | None = None  # raw logits (n_users, n_items), kept when no T is given
        self.cache_log_p: torch.Tensor | None = None  # log_softmax(t / T) (n_users, n_items)
        if mode == "current" and split.n_users * teacher.n_items * 4 <= cache_bytes:
            # one table filled a block of users at a time: no second full-size copy (raw logits, t / T)
            # ever exists; with T given it holds log_softmax(t / T), computed once per user instead of
            # once per batch (the teacher is frozen)
            table = torch.empty((split.n_users, teacher.n_items), device=device)
            for s in range(0, split.n_users, 1024):
                rows = teacher.score_all(torch.arange(s, min(s + 1024, split.n_users), device=device))
                table[s:s + len(rows)] = rows if temperature is None else torch.log_softmax(rows / temperature, -1)
            if temperature is None:
                self.cache = table
            else:
                self.cache_log_p = table

    def log_p(self, users: torch.Tensor) -> torch.Tensor | None:
        """Cached ``log_softmax(t / T)`` rows of ``users`` in ``current`` mode, else None."""
        return self.cache_log_p[users] if self.cache_log_p is not None else None

    def logits(self, users: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Soft-label logits of training pairs ``idx`` (users ``users``): ``(batch, n_items)``."""
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
        return self.teacher.score_all(users)

    def for_batch(self, b: Batch) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(teacher logits, cached log_softmax(t / T))`` at the batch's target positions; one is None."""
        if b.windows is not None:
            return self.window_logits(b.users, *b.windows), None
        log_p = self.log_p(b.users)
        return (self.logits(b.users, b.idx) if log_p is None else None), log_p

    @torch.no_grad()
    def window_logits(self, users: torch.Tensor, seq: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Soft-label logits at the valid positions of windows ``seq``: ``(n_valid, n_items)``."""
        if self.mode == "per-step":
            return self.teacher.eval().forward_all(seq)[valid]
        rows = self.logits(users)  # (batch, n_items)
        return rows.unsqueeze(1).expand(-1, seq.shape[1], -1)[valid]


@dataclass
class TrainedModel:
    """A trained model with what the reports need."""

    model: Recommender
    role: str  # "teacher" | "student_kd" | "student_plain"
    spec: ModelSpec
    train: TrainConfig
    distill: DistillConfig | None
    fit: FitResult
    test: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"params": self.model.n_params(), "bytes": self.model.n_bytes(), "metrics": self.test,
                "train_seconds": self.fit.seconds, "best_epoch": self.fit.best_epoch,
                "score_ms_per_1k_users": scoring_ms_per_1k(self.model)}


def evaluate(model: Recommender, split: Split, part: str, ks: tuple[int, ...] = (10, 20),
             chunk: int = 512) -> dict[str, float]:
    """Full-ranking metrics of ``model`` on ``part`` ("valid" or "test")."""
    device = next(model.parameters()).device
    model.set_context(*split.context(part))
    try:
        return evaluate_ranking(model.score_all, split.eval_users(part), split.held_out(part),
                                split.seen(part), split.n_items, ks=ks, chunk=chunk, device=device,
                                name=f"the {model.family} model")
    finally:
        model.set_context(*split.context("train"))


def scoring_ms_per_1k(model: Recommender, batch: int = 256, repeats: int = 3) -> float:
    """Median wall time to score 1,000 users against every item, in ms."""
    device = next(model.parameters()).device
    users = torch.arange(1000, device=device) % model.n_users
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in range(0, 1000, batch):
            model.score_all(users[s:s + batch])
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def train_model(split: Split, spec: ModelSpec, train: TrainConfig, *, role: str = "teacher",
                teacher: Recommender | TrainedModel | None = None, distill: DistillConfig | None = None,
                callbacks: Sequence[Callback] = (), control: TrainerControl | None = None,
                init: Recommender | None = None, soft_split: Split | None = None,
                validate: bool = True) -> TrainedModel:
    """Train one model on ``split``; with ``teacher`` and ``distill``, by the KD loss.

    ``init``: start from a copy of this model's weights (a refresh) instead of a fresh model.
    ``soft_split``: read the teacher's soft labels from this split's training data (default ``split``).
    ``validate=False``: no validation split (all of it was trained on): every epoch runs, the last is kept.
    ``teacher`` may be the model or the ``TrainedModel`` this function returned; it needs ``distill``.
    """
    device = resolve_device(train.device)
    if isinstance(teacher, TrainedModel):
        teacher = teacher.model
    if teacher is not None and distill is None:
        raise ConfigError("a teacher was given without a distillation config: pass distill=DistillConfig(...) "
                          "(alpha=1 trains on the hard labels alone), or no teacher for a plain model")
    if split.n_items < EVAL_MAX_K:  # refuse before training rather than fail in the first evaluation
        raise ConfigError(f"K={EVAL_MAX_K} of the ranking metrics (HR/NDCG/Recall@K) is larger than the catalogue "
                          f"of {split.n_items} items; the dataset needs at least {EVAL_MAX_K} items")
    if teacher is not None and (teacher.n_users, teacher.n_items) != (split.n_users, split.n_items):
        raise ConfigError(f"the teacher was trained on a dataset with {teacher.n_users} users and "
                          f"{teacher.n_items} items, not on this one ({split.n_users} users, "
                          f"{split.n_items} items); train a teacher on this dataset first")

    def fresh() -> Recommender:
        with seeded(train.seed):
            m = build_model(spec, split).to(device)
        if init is not None:
            m.load_state_dict(init.state_dict())
        return m

    model = fresh()
    cfg = distill if teacher is not None else DistillConfig(alpha=1.0)
    soft = None
    if teacher is not None and cfg.alpha < 1:
        teacher = teacher.to(device)
        mode = soft_label_mode(teacher, model, cfg.soft_labels)
        if soft_split is not None and mode != "current":
            raise ConfigError("soft labels from another split exist only in 'current' mode (one row per user); "
                              f"got soft_labels={mode!r}")
        soft = SoftLabels(teacher, soft_split or split, mode, temperature=cfg.temperature)
    ex = model.examples(split, device)
    n_examples, make_loss = len(ex), _loss_maker(ex)

    def validation(m: Recommender) -> Callable[[], dict[str, float]]:
        def run() -> dict[str, float]:
            out = evaluate(m, split, "valid", ks=(10,))
            return {"ndcg@10": out["ndcg@10"], "hr@10": out["hr@10"]}
        return run

    fit_cfg = replace(train, batch_size=model.examples_per_batch(train.batch_size))
    selection = "direct"
    if (validate and soft is not None and soft.mode == "current" and soft_split is None and teacher.sequential
            and cfg.selection != "direct" and len(split.valid_items)):
        # honest selection (DistillConfig.selection): choose the epoch on soft labels that did not forecast
        # the validation item, then train again on the full soft labels for exactly that many epochs
        selection = "lagged"
        lagged = SoftLabels(teacher, split.lagged(), "current", temperature=cfg.temperature)
        sel = fit(model, n_examples, make_loss(model, lagged, cfg), validation(model), fit_cfg, callbacks, control,
                  device=device)
        del lagged
        res = sel
        if not sel.cancelled:
            teacher.set_context(*split.context("train"))
            model = fresh()
            done = len(sel.history)
            refit_epochs = max(sel.best_epoch, 1)
            final = fit(model, n_examples, make_loss(model, soft, cfg), None,
                        replace(fit_cfg, epochs=refit_epochs, patience=0),
                        [_After(cb, done, done + refit_epochs) for cb in callbacks], control, device=device)
            res = replace(sel, cancelled=final.cancelled, seconds=sel.seconds + final.seconds,
                          history=sel.history + [r | {"epoch": r["epoch"] + done} for r in final.history])
    else:
        res = fit(model, n_examples, make_loss(model, soft, cfg), validation(model) if validate else None, fit_cfg,
                  callbacks, control, device=device)
    used = replace(cfg, soft_labels=soft.mode, selection=selection) if soft is not None else None
    out = TrainedModel(model=model, role=role, spec=spec, train=train, distill=used, fit=res)
    if not res.cancelled:
        out.test = evaluate(model, split, "test")
    return out


class _After:
    """Callback wrapper for the refit of a lagged selection: its epochs continue the selection's numbering
    (``done + 1 ..``, of ``total``), so live progress and stored curves read as one run."""

    def __init__(self, cb: Callback, done: int, total: int) -> None:
        self.cb, self.done, self.total = cb, done, total

    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "train_start":
            payload = payload | {"epochs": self.total}
        elif name == "step_end":
            payload = payload | {"epoch": payload["epoch"] + self.done}
        elif name == "epoch_end":
            payload = payload | {"epoch": payload["epoch"] + self.done, "epochs": self.total,
                                 "metrics": payload["metrics"] | {"epoch": payload["metrics"]["epoch"] + self.done}}
        self.cb.on_event(name, payload)


def _loss_maker(ex: Examples) -> Callable[[Recommender, SoftLabels | None, DistillConfig], Callable[[torch.Tensor], KDLossOutput]]:
    """``make_loss(model, soft, cfg)``: the per-batch loss ``idx -> KDLossOutput`` of ``model`` on examples
    ``ex``; the model says what its logits and targets are (``Recommender.batch``), the soft labels what
    the teacher says at the same positions (``SoftLabels.for_batch``)."""
    def make_loss(m: Recommender, soft: SoftLabels | None, cfg: DistillConfig) -> Callable[[torch.Tensor], KDLossOutput]:
        def loss_fn(idx: torch.Tensor) -> KDLossOutput:
            b = m.batch(ex, idx)
            t, log_p = soft.for_batch(b) if soft is not None else (None, None)
            return kd_loss(b.logits, b.targets, t, cfg, teacher_log_p=log_p)
        return loss_fn
    return make_loss


"""Teacher -> soft labels -> student.

The soft label of a training example is the frozen teacher's output for the *same user tensor*
the student is scored on in that batch (``distill_core.soft_labels``), so a label from another
user, split or order cannot reach the loss. Each model trains on the path its catalogue calls for
(``distill_core.catalogue``): the full softmax and dense soft labels on small catalogues, the sampled
softmax and top-K soft labels on large ones (``distill_core.sampled``).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from distill_core import catalogue, distillers
from distill_core.catalogue import CACHE_BYTES, TrainPath
from distill_core.config import DistillConfig, ModelSpec, TrainConfig
from distill_core.data.dataset import Split
from distill_core.errors import ConfigError
from distill_core.losses import KDLossOutput, kd_loss
from distill_core.metrics import evaluate_ranking
from distill_core.models import Recommender, build_model
from distill_core.models.base import Examples
from distill_core.sampled import NegativeSampler, large_kd_loss
from distill_core.soft_labels import SoftLabels, soft_label_mode
from distill_core.trainer import Callback, FitResult, TrainerControl, fit, seeded

log = logging.getLogger(__name__)

__all__ = ["CACHE_BYTES", "SoftLabels", "TrainedModel", "evaluate", "resolve_device", "soft_label_mode",
           "train_model"]
EVAL_MAX_K = 20  # the largest K that evaluate() reports by default (HR/NDCG/Recall@10 and @20)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available (use auto or cpu)")
    return torch.device(name)


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
    path: TrainPath | None = None  # how it was trained (full / sampled, the soft labels' K)

    def summary(self) -> dict[str, Any]:
        return {"params": self.model.n_params(), "bytes": self.model.n_bytes(), "metrics": self.test,
                "train_seconds": self.fit.seconds, "best_epoch": self.fit.best_epoch,
                "epochs_run": len(self.fit.history), "stopped": self.fit.stop_reason,
                "score_ms_per_1k_users": scoring_ms_per_1k(self.model),
                "soft_labels": self.distill.soft_labels if self.distill is not None else None,
                "selection": self.distill.selection if self.distill is not None else None,
                "path": asdict(self.path) if self.path is not None else None,
                "path_text": self.path.describe() if self.path is not None else None}


def evaluate(model: Recommender, split: Split, part: str, ks: tuple[int, ...] = (10, 20),
             chunk: int | None = None, users: np.ndarray | None = None, mrr: bool = True) -> dict[str, float]:
    """Full-ranking metrics of ``model`` on ``part`` ("valid" or "test"), exact over the whole catalogue, in
    chunks of users (``chunk``; default: as many as keep one ``(chunk, n_items)`` block within
    ``catalogue.EVAL_CHUNK_BYTES``, at most 512).
    ``users``: rank only these (default: every user with a held-out item)."""
    chunk = chunk or catalogue.rows_per_chunk(split.n_items, 4, catalogue.EVAL_CHUNK_BYTES, most=512)
    device = next(model.parameters()).device
    model.set_context(*split.context(part))
    try:
        return evaluate_ranking(model.score_all, split.eval_users(part) if users is None else users,
                                split.held_out(part), split.seen(part), split.n_items, ks=ks, chunk=chunk,
                                device=device, name=f"the {model.family} model", mrr=mrr)
    finally:
        model.set_context(*split.context("train"))


def scoring_ms_per_1k(model: Recommender, batch: int = 256, repeats: int = 3) -> float:
    """Median wall time to score 1,000 users against every item, in ms."""
    device = next(model.parameters()).device
    batch = min(batch, catalogue.rows_per_chunk(model.n_items, 4))
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

    cfg = distill if teacher is not None else DistillConfig(alpha=1.0)
    path = catalogue.resolve(train, cfg if teacher is not None else None, split.n_users, split.n_items)

    def fresh() -> Recommender:
        with seeded(train.seed):
            m = build_model(spec, split).to(device)
        if init is not None:
            m.load_state_dict(init.state_dict())
        m.set_sparse(path.sparse_tables)
        return m
    if teacher is not None and cfg.alpha < 1:
        distillers.check(cfg, teacher, split.n_items, path.top_k)  # K and the teacher against the method
    lagged_sel = (validate and teacher is not None and cfg.alpha < 1 and soft_split is None and teacher.sequential
                  and cfg.selection != "direct" and len(split.valid_items) > 0)
    catalogue.check_memory(catalogue.estimate_bytes(spec, train, path, split, lagged=lagged_sel,
                                                    teacher_spec=teacher.spec if teacher is not None else None),
                           f"training the {role} ({spec.family}, dim {spec.dim}) on {split.n_items} items")
    model = fresh()
    soft = None
    if teacher is not None and cfg.alpha < 1:
        what = (f"the teacher's soft labels ({catalogue.labels_text(path.top_k, split.n_items)}) "
                f"for {split.n_users:,} users")
        for cb in callbacks:  # the soft labels of a large catalogue take a while: say what is happening
            cb.on_event("preparing", {"what": what})
        teacher = teacher.to(device)
        mode = soft_label_mode(teacher, model, cfg.soft_labels)
        if soft_split is not None and mode != "current":
            raise ConfigError("soft labels from another split exist only in 'current' mode (one row per user); "
                              f"got soft_labels={mode!r}")
        soft = SoftLabels(teacher, soft_split or split, mode, temperature=cfg.temperature, top_k=path.top_k)
    ex = model.examples(split, device)
    n_examples = len(ex)
    counts = np.bincount(split.train_items, minlength=split.n_items)
    make_loss = _loss_maker(ex, path, counts, train.seed, device)

    valid_users = catalogue.validation_users(split.eval_users("valid"), split.n_items)

    def validation(m: Recommender) -> Callable[[], dict[str, float]]:
        def run() -> dict[str, float]:
            out = evaluate(m, split, "valid", ks=(10,), users=valid_users, mrr=False)
            return {"ndcg@10": out["ndcg@10"], "hr@10": out["hr@10"]}
        return run

    fit_cfg = replace(train, batch_size=model.examples_per_batch(train.batch_size))
    selection = "direct"
    if soft is not None and soft.mode == "current" and lagged_sel:
        # honest selection (DistillConfig.selection): choose the epoch on soft labels that did not forecast
        # the validation item, then train again on the full soft labels for exactly that many epochs
        selection = "lagged"
        lagged = SoftLabels(teacher, split.lagged(), "current", temperature=cfg.temperature, top_k=path.top_k)
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
                        replace(fit_cfg, epochs=refit_epochs, patience=0, time_budget_s=0.0),
                        [_After(cb, done, done + refit_epochs) for cb in callbacks], control, device=device)
            res = replace(sel, cancelled=final.cancelled, seconds=sel.seconds + final.seconds,
                          history=sel.history + [r | {"epoch": r["epoch"] + done} for r in final.history])
    else:
        res = fit(model, n_examples, make_loss(model, soft, cfg), validation(model) if validate else None, fit_cfg,
                  callbacks, control, device=device)
    used = replace(cfg, soft_labels=soft.mode, selection=selection) if soft is not None else None
    model.set_sparse(False)  # what is returned (and refreshed, exported) takes dense gradients again
    out = TrainedModel(model=model, role=role, spec=spec, train=train, distill=used, fit=res, path=path)
    if not res.cancelled:
        out.test = evaluate(model, split, "test")
    return out


class _After:
    """Callback wrapper for the refit of a lagged selection: its epochs continue the selection's numbering
    (``done + 1 ..``, of ``total``), so live progress and stored curves read as one run; its ``train_start``
    says ``refit: True`` (the same model's second fit, not the next model)."""

    def __init__(self, cb: Callback, done: int, total: int) -> None:
        self.cb, self.done, self.total = cb, done, total

    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "train_start":
            payload = payload | {"epochs": self.total, "refit": True}
        elif name == "step_end":
            payload = payload | {"epoch": payload["epoch"] + self.done}
        elif name == "epoch_end":
            payload = payload | {"epoch": payload["epoch"] + self.done, "epochs": self.total,
                                 "metrics": payload["metrics"] | {"epoch": payload["metrics"]["epoch"] + self.done}}
        self.cb.on_event(name, payload)


def _loss_maker(ex: Examples, path: TrainPath, counts: np.ndarray, seed: int, device: torch.device
                ) -> Callable[[Recommender, SoftLabels | None, DistillConfig], Callable[[torch.Tensor], KDLossOutput]]:
    """``make_loss(model, soft, cfg)``: the per-batch loss ``idx -> KDLossOutput`` of ``model`` on examples
    ``ex`` by ``path``; the model says what its hidden states and targets are (``Recommender.batch``), the
    soft labels what the teacher says at the same positions (``SoftLabels.for_batch`` / ``top_for_batch``).
    Each call draws its negatives from a sampler seeded anew, so a refit draws what the selection run drew.
    A method other than Hinton KD (``cfg.method``) goes through ``distillers``: built (seeded) per call, its own
    weights (DE's experts) listed in ``loss_fn.parameters`` for the trainer to optimise with the model's."""
    def make_loss(m: Recommender, soft: SoftLabels | None, cfg: DistillConfig) -> Callable[[torch.Tensor], KDLossOutput]:
        sampler = NegativeSampler(counts, path.negatives, path.negative_beta, seed, device) if path.loss == "sampled" else None
        dense = sampler is None and (soft is None or soft.k is None)
        method = None
        if soft is not None and cfg.method != "logits":
            with seeded(seed):
                method = distillers.build(cfg.method, cfg, (m.spec.dim, soft.teacher.spec.dim)).to(device)
        gen = torch.Generator().manual_seed(seed)  # what a method samples (RRD's items, DE's Gumbel noise)

        def loss_fn(idx: torch.Tensor) -> KDLossOutput:
            b = m.batch(ex, idx)
            if method is not None:
                view = distillers.View(b, soft, cfg, sampler.draw() if sampler is not None else None, gen)
                return distillers.batch_loss(method, view)
            if dense:  # the exact path of small catalogues: full softmax, the teacher's whole distribution
                t, log_p = soft.for_batch(b) if soft is not None else (None, None)
                return kd_loss(b.logits(), b.targets, t, cfg, teacher_log_p=log_p)
            labels = soft.top_for_batch(b) if soft is not None and cfg.alpha < 1 else None
            ce, kl, total = large_kd_loss(b, labels, cfg.alpha, cfg.temperature, cfg.t_squared, sampler)
            return KDLossOutput(ce=ce, kl=kl, total=total)
        loss_fn.parameters = tuple(method.parameters()) if method is not None else ()  # type: ignore[attr-defined]
        return loss_fn
    return make_loss

"""What a dataset will cost before anything trains: the path each model takes (full or sampled softmax, the K of
the soft labels, the history a sequence model reads), the memory it needs, and its epoch time estimated from a
few timed training steps and a timed slice of validation (the Data page; ``bench/scale.py`` measures the rest).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from distill_core import catalogue, sizing
from distill_core.config import ModelSpec, RunConfig, TrainConfig
from distill_core.data.dataset import Dataset, Split, split_dataset
from distill_core.distill import _loss_maker, evaluate, resolve_device, train_model
from distill_core.models import build_model
from distill_core.models.base import Batch
from distill_core.sampled import TopK
from distill_core.soft_labels import soft_label_mode
from distill_core.trainer import TrainerControl, fit, seeded


@dataclass(frozen=True)
class ModelPlan:
    role: str
    family: str
    path: str  # catalogue.TrainPath.describe()
    memory_bytes: int
    steps_per_epoch: int | None = None
    step_seconds: float | None = None
    validation_seconds: float | None = None

    @property
    def epoch_seconds(self) -> float | None:
        if self.step_seconds is None or self.steps_per_epoch is None:
            return None
        return self.step_seconds * self.steps_per_epoch + (self.validation_seconds or 0.0)


def configured(ds: Dataset, cfg: RunConfig = RunConfig()) -> RunConfig:
    """``cfg`` with the history length of its sequence models set from ``ds`` (``sizing.auto_max_len``)."""
    n = sizing.auto_max_len(ds)
    return replace(cfg, teacher=replace(cfg.teacher, max_len=n), student=replace(cfg.student, max_len=n))


def plan(ds: Dataset, cfg: RunConfig | None = None, split: Split | None = None) -> list[ModelPlan]:
    """The teacher's, the distilled student's and the plain student's path and memory on ``ds`` (nothing trains)."""
    cfg = configured(ds) if cfg is None else cfg
    split = split or split_dataset(ds, cfg.split)
    out = []
    for role, spec, train, distill in (("teacher", cfg.teacher, cfg.teacher_train, None),
                                       ("student_kd", cfg.student, cfg.student_train, cfg.distill),
                                       ("student_plain", cfg.student, cfg.student_train, None)):
        path = catalogue.resolve(train, distill, split.n_users, split.n_items)
        est = catalogue.estimate_bytes(spec, train, path, split, teacher_spec=cfg.teacher if distill else None,
                                       lagged=distill is not None)
        out.append(ModelPlan(role, spec.family, path.describe(), sum(est.values())))
    return out


class _StopAfter:
    def __init__(self, n: int, control: TrainerControl) -> None:
        self.n, self.control, self.times, self.steps_per_epoch = n, control, [], 0

    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "train_start":
            self.steps_per_epoch = payload["steps_per_epoch"]
        elif name == "step_end":
            self.times.append(time.perf_counter())
            if len(self.times) > self.n:
                self.control.should_stop = True


def timed(ds: Dataset, cfg: RunConfig | None = None, steps: int = 5, users: int = 256) -> list[ModelPlan]:
    """``plan`` with each model's step time (median of ``steps`` timed steps after a warm-up step) and its
    validation time (a timed slice of ``users`` validation users, scaled to all that validation ranks).

    On top-K soft labels (large catalogues, Hinton KD, one label row per user) the distilled student's steps run
    on stand-in labels of the teacher's shape (``_StandInLabels``): a step reads and differentiates through K
    items a row whatever they are, while the real labels take a pass of the teacher over every user first
    (at 53,000 items the distilled step is 2.5x the plain one's, 57 vs 23 ms). Elsewhere (the teacher's whole
    distribution on small catalogues, other methods, per-step labels) it is timed without labels."""
    cfg = configured(ds) if cfg is None else cfg
    split = split_dataset(ds, cfg.split)
    out = []
    for p, spec, train in zip(plan(ds, cfg, split), (cfg.teacher, cfg.student, cfg.student),
                              (cfg.teacher_train, cfg.student_train, cfg.student_train)):
        control = TrainerControl()
        stop = _StopAfter(steps, control)
        if p.role == "student_kd" and _stand_in_fits(cfg, split):
            _time_on_stand_in(split, spec, replace(train, epochs=1), cfg, stop, control)
        else:
            train_model(split, spec, replace(train, epochs=1), role=p.role, callbacks=[stop], control=control)
        step = float(np.median(np.diff(stop.times))) if len(stop.times) > 1 else None
        valid = catalogue.validation_users(split.eval_users("valid"), split.n_items)
        model = build_model(spec, split)
        t0 = time.perf_counter()
        evaluate(model, split, "valid", ks=(10,), users=valid[:users], mrr=False)
        v = (time.perf_counter() - t0) * len(valid) / max(min(users, len(valid)), 1)
        out.append(replace(p, steps_per_epoch=stop.steps_per_epoch, step_seconds=step, validation_seconds=v))
    return out


class _StandInLabels:
    """Top-K soft labels of the teacher's shape for timing only: ``n_users x K`` random items and sorted logits,
    what ``SoftLabels.top_for_batch`` hands the loss in ``current`` mode (the same tensors, sizes and lookups)."""

    def __init__(self, n_users: int, n_items: int, k: int, temperature: float, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        g = torch.Generator().manual_seed(seed)
        self.k = k
        logits = torch.randn(n_users, k, generator=g).sort(1, descending=True).values
        lse = torch.logsumexp(logits / temperature, 1) + 1.0  # the K hold 1/e of the mass, the rest 1 - 1/e
        rest = torch.full_like(lse, float(np.log1p(-np.exp(-1.0))))
        items = torch.randint(0, n_items, (n_users, k), generator=g).int()
        self.table = TopK(items.to(device), logits.to(device), lse.to(device), rest.to(device))

    def top_for_batch(self, b: Batch) -> TopK:
        rows = self.table[b.users]
        return TopK(rows.items.long(), rows.logits, rows.lse, rows.log_rest)


def _stand_in_fits(cfg: RunConfig, split: Split) -> bool:
    """Whether the distilled student's step can be timed on ``_StandInLabels``: top-K labels below the
    catalogue, Hinton KD, one label row per user (an id-only student, or labels across families)."""
    path = catalogue.resolve(cfg.student_train, cfg.distill, split.n_users, split.n_items)
    if not (0 < path.top_k < split.n_items and cfg.distill.method == "logits" and cfg.distill.alpha < 1):
        return False
    teacher, student = build_model(cfg.teacher, split), build_model(cfg.student, split)
    return soft_label_mode(teacher, student, cfg.distill.soft_labels) == "current"


def _time_on_stand_in(split: Split, spec: ModelSpec, train: TrainConfig, cfg: RunConfig, stop: "_StopAfter",
                      control: TrainerControl) -> None:
    """A few of the distilled student's steps as ``train_model`` runs them (its path, row updates, loss), on
    stand-in top-K labels."""
    device = resolve_device(train.device)
    path = catalogue.resolve(train, cfg.distill, split.n_users, split.n_items)
    with seeded(train.seed):
        model = build_model(spec, split).to(device)
    model.set_sparse(path.sparse_tables)
    soft = _StandInLabels(split.n_users, split.n_items, path.top_k, cfg.distill.temperature, train.seed, device)
    ex = model.examples(split, device)
    counts = np.bincount(split.train_items, minlength=split.n_items)
    loss_fn = _loss_maker(ex, path, counts, train.seed, device)(model, soft, cfg.distill)  # type: ignore[arg-type]
    fit(model, len(ex), loss_fn, None, replace(train, batch_size=model.examples_per_batch(train.batch_size)),
        [stop], control, device=device)
    model.set_sparse(False)


ROLE_NAMES = {"teacher": "Teacher", "student_kd": "Distilled student", "student_plain": "Plain student"}


def frame(plans: list[ModelPlan]) -> "Any":
    """The plans as a table (model, family, path, memory, step and epoch time where timed)."""
    import pandas as pd

    return pd.DataFrame([{"model": ROLE_NAMES.get(p.role, p.role), "family": p.family, "training path": p.path,
                          "memory (GiB, estimate)": round(p.memory_bytes / 2**30, 2),
                          "steps per epoch": p.steps_per_epoch,
                          "s per step": None if p.step_seconds is None else round(p.step_seconds, 4),
                          "validation (s)": None if p.validation_seconds is None else round(p.validation_seconds, 1),
                          "epoch (s, estimate)": None if p.epoch_seconds is None else round(p.epoch_seconds, 1)}
                         for p in plans])

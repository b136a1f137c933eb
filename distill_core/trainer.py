"""The small training loop shared by teachers and students.

It fires events to callbacks (``on_event(name, payload)``) and steers only through a
``TrainerControl``: the dashboard's Stop button sets ``should_stop`` and the loop returns at the
next batch boundary. Early stopping keeps the weights of the best validation NDCG@10.
"""
from __future__ import annotations

import copy
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from distill_core import distributed
from distill_core.config import TrainConfig
from distill_core.errors import RecDistillError
from distill_core.losses import KDLossOutput
from distill_core.rowadam import RowAdam

log = logging.getLogger(__name__)

_SEED_LOCK = threading.Lock()  # torch's global RNG is shared by every thread
_WARM_LOCK = threading.Lock()
_warm_thread: threading.Thread | None = None


class TrainingError(RecDistillError):
    """Training cannot go on (e.g. the loss became NaN)."""


def set_seed(seed: int) -> None:
    """Seed Python, numpy and torch (call under ``seeded()`` when other threads may train)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class seeded:
    """Context manager: hold the seed lock and seed everything, so model init is reproducible
    even while other jobs are initialising models in other threads."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        _SEED_LOCK.acquire()
        set_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        _SEED_LOCK.release()


def warm_up() -> None:
    """Do, once per process and in a background thread, the one-time work of the first optimizer:
    building one imports ``torch._dynamo`` (1-4 s on a busy CPU, measured by bench/live.py), which
    would otherwise delay the first loss of the first job. Returns at once; idempotent."""
    global _warm_thread
    with _WARM_LOCK:
        if _warm_thread is not None:
            return
        _warm_thread = threading.Thread(target=_warm, name="recdistill-warm-up")  # not a daemon: never
        _warm_thread.start()  # cut off inside an import at exit


def _warm() -> None:
    try:
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.Adam([p], fused=True)
        p.sum().backward()
        opt.step()
    except Exception:  # a failed warm-up only loses the head start
        log.debug("warm-up failed", exc_info=True)


@dataclass
class TrainerControl:
    """How the outside world steers a running loop (cf. Hugging Face ``TrainerControl``)."""

    should_stop: bool = False


class Callback(Protocol):
    def on_event(self, name: str, payload: dict[str, Any]) -> None: ...


LossFn = Callable[[torch.Tensor], KDLossOutput]  # (batch,) example indices -> loss terms
Validate = Callable[[], dict[str, float]]  # metrics on the validation split


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    best_epoch: int = 0
    best_metric: float = float("-inf")
    cancelled: bool = False
    early_stopped: bool = False
    seconds: float = 0.0
    # why it stopped: "patience" (no better validation for `patience` epochs), "epoch cap" (ran every epoch:
    # with validation still improving near the end it may not have converged), "time budget", "cancelled"
    stop_reason: str = ""


def fit(model: torch.nn.Module, n: int, loss_fn: LossFn, validate: Validate | None, cfg: TrainConfig,
        callbacks: Sequence[Callback] = (), control: TrainerControl | None = None, monitor: str = "ndcg@10",
        device: torch.device | str = "cpu") -> FitResult:
    """Train ``model`` on ``n`` examples; ``loss_fn(idx)`` computes the loss of the examples ``idx``."""
    control = control or TrainerControl()
    # a loss with weights of its own (the experts of distillers.de) lists them in loss_fn.parameters
    params = [*model.parameters(), *getattr(loss_fn, "parameters", ())]
    dist = distributed.current()  # under torchrun: DDP on this rank's shard of each batch, rank 0 validates
    if dist is not None:
        loss_fn, validate = dist.wrap(model, loss_fn), dist.validate(validate)
    # tables set to row updates (Recommender.set_sparse, catalogue.sparse_tables) step by rowadam.RowAdam: only
    # the rows a batch touched; everything else by fused Adam: one kernel per step over all parameters instead
    # of ~8 passes (on the 3.4M-weight item table of a 53k-item sasrec teacher 3 ms instead of 24 ms, issue 16)
    accs = model.row_grads() if hasattr(model, "row_grads") else []
    if accs and (dist is not None or cfg.weight_decay):
        raise ValueError("row updates of the tables need weight_decay 0 and one process (catalogue.sparse_tables)")
    row_params = {id(a.weight) for a in accs}
    opts: list[Any] = [torch.optim.Adam([p for p in params if id(p) not in row_params], lr=cfg.lr,
                                        weight_decay=cfg.weight_decay, fused=True)]
    if accs:
        opts.append(RowAdam(accs, lr=cfg.lr))
    gen = torch.Generator().manual_seed(cfg.seed)
    steps = max(1, math.ceil(n / cfg.batch_size))
    patience = max(cfg.patience, math.ceil(cfg.patience_steps / steps)) if cfg.patience else 0  # TrainConfig
    res = FitResult()
    best_state: dict[str, torch.Tensor] | None = None
    t0 = time.perf_counter()

    def fire(name: str, **payload: Any) -> None:
        for cb in callbacks:
            cb.on_event(name, payload)

    fire("train_start", epochs=cfg.epochs, steps_per_epoch=steps, examples=n)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        sums = torch.zeros(3, dtype=torch.float64)
        for step in range(steps):
            if control.should_stop:
                res.cancelled = True
                break
            idx = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            out = loss_fn(idx)
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            out.total.backward()
            if accs and any(a.weight.grad is not None for a in accs):
                raise TrainingError("a table set to row updates got a dense gradient (a lookup outside "
                                    "models.base.rows); it would not train")
            for opt in opts:
                opt.step()
            vals = torch.stack([out.ce.detach(), out.kl.detach(), out.total.detach()]).double().cpu()
            if not torch.isfinite(vals).all():
                raise TrainingError(f"the loss became {vals[2].item()} at epoch {epoch}, step {step + 1}; "
                                    "training stopped. Lower the learning rate or the temperature.")
            sums += vals * len(idx)
            ce, kl, total = vals.tolist()
            fire("step_end", epoch=epoch, step=step + 1, steps_per_epoch=steps, ce=ce, kl=kl, total=total)
        if res.cancelled:
            break
        row = {"epoch": float(epoch), "ce": float(sums[0]) / n, "kl": float(sums[1]) / n,
               "total": float(sums[2]) / n, "seconds": time.perf_counter() - t0}
        if validate is not None:
            row.update({f"val_{k}": v for k, v in validate().items()})
        res.history.append(row)
        # without validation (a refresh on new data) every epoch counts as the best so far: the last is kept
        score = row[f"val_{monitor}"] if validate is not None else float(epoch)
        if score > res.best_metric:
            res.best_metric, res.best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        fire("epoch_end", epoch=epoch, epochs=cfg.epochs, metrics=row)
        if patience and epoch - res.best_epoch >= patience:
            res.early_stopped, res.stop_reason = True, "patience"
            break
        # rank 0's clock under torchrun (distributed.agree): every rank stops at the same epoch
        if (cfg.time_budget_s and distributed.agree(time.perf_counter() - t0 >= cfg.time_budget_s)
                and epoch < cfg.epochs):
            res.stop_reason = "time budget"
            break
    if res.cancelled:
        res.stop_reason = "cancelled"
    elif not res.stop_reason:
        res.stop_reason = "epoch cap"
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    res.seconds = time.perf_counter() - t0
    fire("train_end", cancelled=res.cancelled, best_epoch=res.best_epoch, seconds=res.seconds,
         stop_reason=res.stop_reason)
    return res

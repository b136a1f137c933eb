"""Training under torchrun: DistributedDataParallel over the examples of each batch, one process per rank.

``torchrun --standalone --nproc_per_node N -m distill_core run ...`` starts N copies of the command; each reads
RANK, WORLD_SIZE and LOCAL_RANK (``init_from_env``) and joins one process group (gloo on CPU, nccl on GPU, one GPU
per local rank). A single process (no WORLD_SIZE, or 1) never comes here: ``current()`` is None and ``trainer.fit``
runs as it always did.

Under torchrun ``fit`` asks this module for three things:

* ``wrap(model, loss_fn)``: the model inside ``torch.nn.parallel.DistributedDataParallel``. Every rank draws the
  same shuffled order (the seed is the config's) and so the same *global* batch of ``batch_size`` examples; rank r
  computes the loss of its shard of it, positions r, r + N, r + 2N, ... (``batch[r::N]``; with a batch size that
  N divides, over an epoch that is the shard ``perm[r::N]``, DistributedSampler's). The forward goes through the
  DDP wrapper (a small module whose ``forward(idx)`` is the model's batch loss, since models score through their
  own methods, ``Recommender.batch``, not ``forward``), so DDP's hooks average the gradients over the ranks during
  ``backward``. Each rank's loss is scaled by ``N * k_r / k`` (``k_r`` its examples, ``k`` the global batch's),
  so the averaged gradient is that of the global batch's mean loss, exactly, also for a last batch that N does
  not divide: with the same global batch, N processes take the optimiser steps one process would, up to float
  summation order, for a loss that is a mean over the batch's examples (mf and two_tower with Hinton KD or the
  sampled softmax). The same in distribution only: what is drawn per batch is drawn per shard (sasrec's dropout
  masks, RRD's items, DE's Gumbel noise), and sasrec's loss is a mean over a window's valid positions, which the
  weights by examples approximate. A method's own weights
  (``loss_fn.parameters``: DE's experts) sit in the DDP module beside the model's, so they are averaged too. The loss
  values ``fit`` logs and checks for NaN are the global batch's (their sums all-reduced), so every rank logs the
  same curve and a NaN stops every rank at once.
* ``validate(fn)``: rank 0 validates and broadcasts the metrics, so every rank sees the same validation curve and
  early stopping (patience) stops them at the same epoch.
* ``agree(flag)``: rank 0's decision, broadcast, for a stop that each rank could judge differently (the wall-clock
  time budget).

Every rank counts the examples it trained on (``shares``), so the report shows the split, and a run that merely
started N independent copies, each on all examples, cannot pass for a distributed one.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as tdist

from distill_core.errors import ConfigError
from distill_core.losses import KDLossOutput

log = logging.getLogger(__name__)
LossFn = Callable[[torch.Tensor], KDLossOutput]  # (batch,) example indices -> loss terms (trainer.LossFn)

_current: Distributed | None = None


@dataclass
class Distributed:
    """This process's place in the group, and the examples it trained on in each ``fit``."""

    rank: int
    world_size: int
    local_rank: int
    backend: str  # gloo | nccl
    device: torch.device  # where collectives' tensors live (cuda:LOCAL_RANK for nccl)
    fits: list[int] = field(default_factory=list)  # examples trained on by this rank, one entry per fit

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module, loss_fn: LossFn) -> LossFn:
        """``loss_fn`` of the global batch ``idx`` computed as this rank's shard through DDP (see the module)."""
        from torch.nn.parallel import DistributedDataParallel

        extra = tuple(getattr(loss_fn, "parameters", ()))  # a method's own weights (DE's experts): synced too
        # buffers are built from the same data on every rank: no broadcast per forward. A method's weights may sit
        # out a batch (DE's gate with one expert), so DDP then looks for unused parameters.
        ddp = DistributedDataParallel(_BatchLoss(model, loss_fn, extra), forward_sync_buffers=False,
                                      find_unused_parameters=bool(extra),
                                      device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.fits.append(0)
        fit_no, w, r = len(self.fits) - 1, self.world_size, self.rank

        def step(idx: torch.Tensor) -> KDLossOutput:  # idx: (k,) the global batch, the same on every rank
            k = len(idx)
            mine = idx[r::w]
            k_r = len(mine)
            # a last batch smaller than the group leaves some ranks without an example: they still take part
            # (DDP's all-reduce needs every rank) with one example of weight 0
            ce, kl, total = ddp(mine if k_r else idx[:1])
            sums = torch.stack([ce.detach(), kl.detach(), total.detach()]).to(self.device, torch.float64) * k_r
            tdist.all_reduce(sums)  # (3,) the global batch's loss sums
            mean = (sums / k).to(total.device, total.dtype)
            scaled = total * (w * k_r / k)
            self.fits[fit_no] += k_r
            # the value is the global batch's mean loss, the gradient that of this rank's scaled share
            return KDLossOutput(ce=mean[0], kl=mean[1], total=scaled + (mean[2] - scaled).detach())
        return step

    def validate(self, validate: Callable[[], dict[str, float]] | None) -> Callable[[], dict[str, float]] | None:
        """``validate`` run by rank 0 only, its metrics broadcast to every rank."""
        if validate is None:
            return None

        def run() -> dict[str, float]:
            box = [validate() if self.is_main else None]
            tdist.broadcast_object_list(box, src=0)
            return box[0]
        return run

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank."""
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        tdist.broadcast(t, src=0)
        return bool(t.item())

    def shares(self) -> list[list[int]]:
        """For each fit, the examples each rank trained on: ``[[rank 0, rank 1, ...], ...]`` (a collective)."""
        every: list[Any] = [None] * self.world_size
        tdist.all_gather_object(every, self.fits)
        return [list(per_fit) for per_fit in zip(*every)]


class _BatchLoss(torch.nn.Module):
    """The module DDP wraps: its parameters are the model's and the loss's own (``extra``), its forward the
    model's batch loss."""

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn, extra: tuple[torch.nn.Parameter, ...] = ()) -> None:
        super().__init__()
        self.model = model
        self.extra = torch.nn.ParameterList(extra)  # registers the very tensors the optimiser steps
        self.loss_fn = loss_fn

    def forward(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.loss_fn(idx)
        return out.ce, out.kl, out.total


def current() -> Distributed | None:
    """This process's group under torchrun (after ``init_from_env``), else None."""
    return _current


def agree(flag: bool) -> bool:
    """``flag`` in a single process; rank 0's ``flag`` on every rank under torchrun (a collective: every rank
    must call it at the same point)."""
    return _current.agree(flag) if _current is not None else bool(flag)


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise ConfigError(f"environment variable {name}={os.environ[name]!r} is not an integer "
                          f"(torchrun sets it)") from None


def init_from_env(device: str = "auto") -> Distributed | None:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); None
    without WORLD_SIZE or with WORLD_SIZE=1 (a single process). ``device`` is the run's: nccl when it resolves
    to CUDA (this rank's GPU: cuda:LOCAL_RANK), gloo otherwise."""
    global _current
    if "WORLD_SIZE" not in os.environ or _env_int("WORLD_SIZE") <= 1:
        return None
    missing = [v for v in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE is set but {', '.join(missing)} is not: start the command with torchrun")
    world, rank, local = _env_int("WORLD_SIZE"), _env_int("RANK"), _env_int("LOCAL_RANK")
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available (use auto or cpu)")
        torch.cuda.set_device(local)  # "cuda" now means this rank's GPU for every tensor the run makes
    backend = "nccl" if cuda else "gloo"
    tdist.init_process_group(backend, init_method="env://", world_size=world, rank=rank)
    _current = Distributed(rank, world, local, backend, torch.device("cuda", local) if cuda else torch.device("cpu"))
    log.info("rank %d of %d (%s)", rank, world, backend)
    return _current


def shutdown() -> None:
    global _current
    if _current is not None:
        # DDP sits in a reference cycle: a fit's wrapper lives on after the fit until the cyclic GC runs. Freed
        # after the group (or at the interpreter's exit) its teardown can abort the process ("terminate called
        # without an active exception", exit -6: tests/test_distributed.py saw it 2 runs in 100), so collect first.
        gc.collect()
        tdist.destroy_process_group()
        _current = None


@contextlib.contextmanager
def launched(device: str = "auto") -> Iterator[Distributed | None]:
    """The group of ``init_from_env`` for the block, left at its end. Ranks other than 0 are quiet on stderr
    (their progress lines would repeat rank 0's); their warnings (logging) and errors still show."""
    dist = init_from_env(device)
    try:
        with contextlib.ExitStack() as stack:
            if dist is not None and not dist.is_main:
                stack.enter_context(contextlib.redirect_stderr(stack.enter_context(open(os.devnull, "w"))))
            yield dist
    finally:
        shutdown()


def annotate(report: dict[str, Any], dist: Distributed | None) -> dict[str, Any]:
    """``report`` with ``config.world_size`` and, under torchrun, ``distributed``: the backend and the examples
    each rank trained on, per model (one row per fit: teacher, distilled student (two fits with a lagged
    selection), plain student) and in all. A collective under torchrun: every rank calls it."""
    out = report | {"config": report["config"] | {"world_size": dist.world_size if dist is not None else 1}}
    if dist is None:
        return out
    per_fit = dist.shares()
    per_rank = [sum(col) for col in zip(*per_fit)]
    out["distributed"] = {"backend": dist.backend, "world_size": dist.world_size, "examples_per_rank": per_rank,
                          "share_per_rank": [c / max(sum(per_rank), 1) for c in per_rank], "per_fit": per_fit}
    return out

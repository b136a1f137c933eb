"""The large-catalogue flags of ``run`` and ``sweep``: the loss (full or sampled softmax), its negatives, the
soft labels' K and a time budget; checked before any data is read, and against the catalogue once it is."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from distill_core import catalogue
from distill_core.config import LOSSES, DistillConfig, RunConfig
from distill_core.errors import RecDistillError


def add_scale_args(p: argparse.ArgumentParser, d: RunConfig) -> None:
    t = d.student_train
    p.add_argument("--loss", default=t.loss, choices=LOSSES,
                   help=f"softmax over the whole catalogue (full), over sampled negatives with logQ correction "
                        f"(sampled), or auto: full up to {catalogue.FULL_MAX_ITEMS:,} items, sampled above")
    p.add_argument("--negatives", type=int, default=t.negatives,
                   help="sampled negatives per batch, shared by its rows (sampled loss)")
    p.add_argument("--negative-beta", type=float, default=t.negative_beta,
                   help="proposal q ∝ (count + 1)^beta of the negatives: 0 uniform, 1 popularity")
    p.add_argument("--soft-top-k", type=int, default=None,
                   help=f"keep the teacher's soft labels as its top-K items per row plus the mass of the rest "
                        f"(default: the whole distribution where it fits, else {catalogue.DEFAULT_TOP_K})")
    p.add_argument("--time-budget", type=float, default=None,
                   help="minutes of training per model; a model stops after the epoch that crosses it")


def scale_train(a: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields of the flags (checked here, with the flag's name)."""
    if a.negatives < 1:
        raise RecDistillError(f"--negatives must be at least 1 (got {a.negatives})")
    if a.negative_beta < 0:
        raise RecDistillError(f"--negative-beta must be >= 0 (got {a.negative_beta:g})")
    if a.soft_top_k is not None and a.soft_top_k < 1:
        raise RecDistillError(f"--soft-top-k must be at least 1 (got {a.soft_top_k})")
    if a.time_budget is not None and not a.time_budget > 0:
        raise RecDistillError(f"--time-budget must be a positive number of minutes (got {a.time_budget:g})")
    return {"loss": a.loss, "negatives": a.negatives, "negative_beta": a.negative_beta,
            "time_budget_s": 60.0 * a.time_budget if a.time_budget else 0.0}


def soft_top_k(a: argparse.Namespace) -> int:
    return a.soft_top_k or 0  # 0: auto


def check_scale(a: argparse.Namespace, ds: Any) -> None:
    """The flags against the catalogue; says on stderr which path the models take."""
    loss = catalogue.loss_for(a.loss, ds.n_items)
    if loss == "sampled" and a.negatives >= ds.n_items:
        raise RecDistillError(f"--negatives must be below the catalogue of {ds.n_items} items (got {a.negatives})")
    if soft_top_k(a) > ds.n_items:
        raise RecDistillError(f"--soft-top-k must be at most the catalogue of {ds.n_items} items (got {a.soft_top_k})")
    k = catalogue.resolve_top_k(DistillConfig(soft_top_k=soft_top_k(a)), loss, ds.n_users, ds.n_items)
    neg = f", {a.negatives} negatives, beta {a.negative_beta:g}" if loss == "sampled" else ""
    print(f"loss: {loss} softmax{neg}{' (auto)' if a.loss == 'auto' else ''}; "
          f"soft labels: {catalogue.labels_text(k, ds.n_items)}",
          file=sys.stderr)

"""The distillation-method flags of ``run``: ``--method`` and its knobs (``DistillConfig``), checked with the
config's own messages before any data is read, and against the catalogue once it is."""
from __future__ import annotations

import argparse
from typing import Any

from distill_core import catalogue, distillers
from distill_core.config import METHODS, DistillConfig, RunConfig, TrainConfig

# flag -> (DistillConfig field, type, help)
KNOBS: dict[str, tuple[str, type, str]] = {
    "--rank-k": ("rank_k", int, "rd: the teacher's top-K items taken as extra positives; rrd: the K interesting items"),
    "--rd-lambda": ("rd_lambda", float, "rd: position weight w_r ∝ exp(-r / lambda)"),
    "--rd-mu": ("rd_mu", float, "rd: dynamic weight tanh(max(mu (student rank - teacher rank), 0)); 0: position only"),
    "--rrd-pool": ("rrd_pool", int, "rrd: the interesting items are drawn from the teacher's top rrd-pool"),
    "--rrd-l": ("rrd_l", int, "rrd: uninteresting items per batch, drawn uniformly from outside the pool"),
    "--rrd-t": ("rrd_t", float, "rrd: the interesting items are drawn with p(rank r) ∝ exp(-r / T)"),
    "--de-experts": ("de_experts", int, "de: experts per side (users, items), chosen by a Gumbel-softmax gate"),
    "--de-tau": ("de_tau", float, "de: the Gumbel-softmax temperature"),
    "--combo-weight": ("combo_weight", float, "logits+rrd, de+rrd: the weight of RRD's term"),
}


def add_method_args(p: argparse.ArgumentParser, d: RunConfig, method_help: str | None = None) -> None:
    p.add_argument("--method", default=d.distill.method,
                   help=method_help or f"distillation method: {' | '.join(METHODS)} (distill_core/distillers/; the "
                                       "KD term beside alpha x the hard CE)")
    for flag, (name, kind, text) in KNOBS.items():
        p.add_argument(flag, type=kind, default=getattr(d.distill, name), help=f"{text} (default %(default)s)")


def method_fields(a: argparse.Namespace) -> dict[str, Any]:
    """The DistillConfig fields of the flags (DistillConfig checks them, naming the field)."""
    return {"method": a.method} | {name: getattr(a, name) for name, _, _ in KNOBS.values()}


def check_method(cfg: RunConfig, ds: Any) -> None:
    """The method against the catalogue (K, the pool, the teacher's top-K lists), before anything trains."""
    check_distill(cfg.student_train, cfg.distill, ds)


def check_distill(train: TrainConfig, distill: DistillConfig, ds: Any) -> None:
    """One student's method settings against the catalogue on the path ``train`` resolves to (run, sweep cells)."""
    if distill.method == "logits" or distill.alpha == 1:
        return
    path = catalogue.resolve(train, distill, ds.n_users, ds.n_items)
    distillers.check(distill, None, ds.n_items, path.top_k)

"""Distillation methods, one per file, behind one contract (``base.Distiller.term(view) -> ()``):

* ``logits``: Hinton KD on the softened distribution (Hinton et al., 2015): ``logits.py``;
* ``rd``: Ranking Distillation, the teacher's top-K as weighted extra positives (Tang & Wang, KDD 2018): ``rd.py``;
* ``rrd``: Relaxed Ranking Distillation, a listwise Plackett-Luce loss over the teacher's top items against
  sampled uninteresting ones (Kang et al., CIKM 2020): ``rrd.py``;
* ``de``: Distillation Experts, the student's user/item representations mapped onto the teacher's (same paper):
  ``de.py``;
* ``logits+rrd``, ``de+rrd``: the first term plus ``combo_weight`` x RRD's (``base.Combo``).

For all of them ``total = alpha * CE + (1 - alpha) * scale * term`` (``base.batch_loss``). RD and RRD read the
teacher's top-K lists, so they run on the large-catalogue path as Hinton KD does; DE reads the teacher's user and
item representations. ``check`` refuses, before anything trains, what a catalogue or a teacher cannot serve.
A new method is a new file, one line in ``_REGISTRY`` and its name in ``config.METHODS``.
"""
from __future__ import annotations

from collections.abc import Callable

from distill_core.config import METHODS, DistillConfig
from distill_core.distillers.base import Combo, Distiller, View, batch_loss
from distill_core.distillers.de import DE
from distill_core.distillers.logits import LogitsKD
from distill_core.distillers.rd import RD
from distill_core.distillers.rrd import RRD
from distill_core.errors import ConfigError
from distill_core.models.base import Recommender

__all__ = ["METHODS", "TERM_NAMES", "Combo", "Distiller", "View", "batch_loss", "build", "check", "parts"]

Dims = tuple[int, int]  # (student's representation width, teacher's)
_REGISTRY: dict[str, Callable[[DistillConfig, Dims | None], Distiller]] = {
    "logits": lambda cfg, dims: LogitsKD(cfg),
    "rd": lambda cfg, dims: RD(cfg),
    "rrd": lambda cfg, dims: RRD(cfg),
    "de": lambda cfg, dims: DE(*_need(dims), cfg.de_experts, cfg.de_tau),
}
# what the live view calls each method's term (KDLossOutput.kl)
TERM_NAMES: dict[str, str] = {"logits": "KL", "rd": "RD", "rrd": "RRD", "de": "DE", "logits+rrd": "KL + w RRD",
                              "de+rrd": "DE + w RRD"}


def _need(dims: Dims | None) -> Dims:
    if dims is None:
        raise ValueError("method 'de' needs the student's and the teacher's representation widths (dims)")
    return dims


def parts(method: str) -> list[str]:
    """The single methods of ``method``: ``"de+rrd" -> ["de", "rrd"]``."""
    return method.split("+")


def build(method: str, cfg: DistillConfig, dims: Dims | None = None) -> Distiller:
    """The distiller of ``method`` with ``cfg``'s knobs; ``dims`` = (student width, teacher width) for DE."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)} (got {method!r})")
    ds = [_REGISTRY[p](cfg, dims) for p in parts(method)]
    return ds[0] if len(ds) == 1 else Combo(ds[0], ds[1], cfg.combo_weight)


def _has(model: Recommender, name: str) -> bool:
    return getattr(type(model), name, None) is not getattr(Recommender, name)


def check(cfg: DistillConfig, teacher: Recommender | None, n_items: int, top_k: int) -> None:
    """Refuse a method the catalogue or the teacher cannot serve, naming the field (``ConfigError``).

    ``top_k``: the K of the teacher's soft labels on this path (``catalogue.resolve``; ``n_items``: whole rows).
    ``teacher`` None (the CLI, before the teacher exists): the catalogue only."""
    ps = parts(cfg.method)
    ranked = "rrd" in ps or "rd" in ps
    if ranked and cfg.rank_k > n_items:
        raise ConfigError(f"rank_k must be at most the catalogue of {n_items} items (got {cfg.rank_k})")
    if "rrd" in ps and cfg.rrd_pool >= n_items:
        raise ConfigError(f"rrd_pool must be below the catalogue of {n_items} items: RRD draws its uninteresting "
                          f"items from outside the teacher's top rrd_pool (got {cfg.rrd_pool})")
    need = max(cfg.rank_k if "rd" in ps else 0, cfg.rrd_pool if "rrd" in ps else 0)
    if ranked and top_k < n_items and need > top_k:
        field = "rrd_pool" if "rrd" in ps and cfg.rrd_pool == need else "rank_k"
        raise ConfigError(f"{field} must be at most soft_top_k, the {top_k} items the teacher's top-K lists hold "
                          f"on this catalogue (got {need}); raise soft_top_k or lower {field}")
    if "de" in ps and teacher is not None and not (_has(teacher, "user_vectors") and _has(teacher, "item_vectors")):
        raise ConfigError(f"method {cfg.method!r} needs the teacher's user and item representations (user_vectors, "
                          f"item_vectors), which the {teacher.family or type(teacher).__name__} teacher does not "
                          "provide; the families mf, two_tower, sasrec and text do")

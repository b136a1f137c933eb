"""Model families behind one contract (``Recommender``): ``(batch,) users -> (batch, n_items)`` logits."""
from __future__ import annotations

from distill_core.config import ModelSpec
from distill_core.data.dataset import Split
from distill_core.models.base import Recommender
from distill_core.models.mf import MF
from distill_core.models.sasrec import SASRec
from distill_core.models.two_tower import TwoTower

__all__ = ["MF", "Recommender", "SASRec", "TwoTower", "build_model"]

_FAMILIES: dict[str, type[Recommender]] = {"mf": MF, "two_tower": TwoTower, "sasrec": SASRec}


def build_model(spec: ModelSpec, split: Split) -> Recommender:
    """A fresh model of ``spec`` sized for ``split``'s users and items, its context set to training."""
    model = _FAMILIES[spec.family](spec, split.n_users, split.n_items)
    model.set_context(*split.context("train"))
    return model

"""Model families behind one contract (``Recommender``): ``(batch,) users -> (batch, n_items)`` logits."""
from __future__ import annotations

import torch

from distill_core import text_embed
from distill_core.config import ModelSpec
from distill_core.data.dataset import Split
from distill_core.errors import ConfigError
from distill_core.models.base import Recommender
from distill_core.models.mf import MF
from distill_core.models.sasrec import SASRec
from distill_core.models.text import TextMF, TextSASRec, build_text_model
from distill_core.models.two_tower import TwoTower

__all__ = ["MF", "Recommender", "SASRec", "TextMF", "TextSASRec", "TwoTower", "build_model"]

_FAMILIES: dict[str, type[Recommender]] = {"mf": MF, "two_tower": TwoTower, "sasrec": SASRec}


def build_model(spec: ModelSpec, split: Split, on_progress: text_embed.ProgressFn | None = None) -> Recommender:
    """A fresh model of ``spec`` sized for ``split``'s users and items, its context set to training.

    A ``text`` model first needs the frozen text embeddings of ``split``'s items: read from the cache, or
    computed once (``on_progress(done, total)`` after each batch of texts).
    """
    if spec.family == "text":
        model = build_text_model(spec, split.n_users, split.n_items, _item_text(split, on_progress))
    else:
        model = _FAMILIES[spec.family](spec, split.n_users, split.n_items)
    model.set_context(*split.context("train"))
    return model


def _item_text(split: Split, on_progress: text_embed.ProgressFn | None) -> torch.Tensor:
    text_embed.require()
    if split.titles is None or split.genres is None:
        raise ConfigError("model family 'text' needs the items' titles and genres, and this split carries "
                          "none (make it with split_dataset from a Dataset)")
    return text_embed.embed_items(split.titles, split.genres, on_progress=on_progress)  # (n_items, 384)

"""Loading, validating and splitting interaction data."""
from __future__ import annotations

import os
from pathlib import Path

from distill_core.config import DataOptions
from distill_core.data.dataset import Dataset, Split, build_dataset, split_dataset
from distill_core.data.loaders import RawData, detect_format, load_raw

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"

__all__ = ["SAMPLE_DIR", "Dataset", "RawData", "Split", "build_dataset", "detect_format", "load_dataset",
           "load_raw", "load_sample", "split_dataset"]


def load_dataset(path: str | os.PathLike[str], format: str = "auto", options: DataOptions = DataOptions(),
                 name: str | None = None, **loader_kwargs: object) -> Dataset:
    """Load ``path`` (a file or a folder) in ``format`` and index it (see ``load_raw``)."""
    return build_dataset(load_raw(path, format, **loader_kwargs), options, name=name)  # type: ignore[arg-type]


def load_sample(options: DataOptions = DataOptions()) -> Dataset:
    """The bundled sample dataset (``sample_data/``)."""
    return load_dataset(SAMPLE_DIR, "ml-latest", options, name="sample")

"""Loading, validating and splitting interaction data.

``columns`` (the standard frames, column recognition, cell checks) <- ``tables`` (CSV/Parquet files) <- one
reader per format (``movielens``, ``recbole``; ``sequences`` decides the headerless layout) <- ``loaders``
(detection and dispatch); ``dataset`` indexes and splits what they return.
"""
from __future__ import annotations

from pathlib import Path

from distill_core.config import DataOptions
from distill_core.data.columns import RawData
from distill_core.data.dataset import Dataset, Split, build_dataset, split_dataset
from distill_core.data.loaders import detect_format, load_dataset, load_raw

# sample_data/ sits at the top of a checkout (an editable install reads it there); a wheel installs it inside the
# package as distill_core/sample_data (pyproject.toml's package-dir).
_INSTALLED = Path(__file__).resolve().parents[1] / "sample_data"
SAMPLE_DIR = _INSTALLED if _INSTALLED.is_dir() else _INSTALLED.parents[1] / "sample_data"

__all__ = ["SAMPLE_DIR", "Dataset", "RawData", "Split", "build_dataset", "detect_format", "load_dataset",
           "load_raw", "load_sample", "split_dataset"]


def load_sample(options: DataOptions = DataOptions()) -> Dataset:
    """The bundled sample dataset (``sample_data/``)."""
    return load_dataset(SAMPLE_DIR, "ml-latest", options, name="sample")

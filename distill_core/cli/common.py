"""What the ``run`` and ``sweep`` commands share: the data flags and loading, sizing the student, the progress
lines and JSON without NaN."""
from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from distill_core import sizing
from distill_core.config import DataOptions, ModelSpec, RunConfig
from distill_core.errors import RecDistillError

RATIO_HELP = ("size budget instead of --student-dim: the largest student dim whose parameters are at most this "
              "share of the teacher's on this dataset (0 < ratio <= 1, e.g. 0.1)")
FORMATS = ["auto", "csv", "sequences", "parquet", "movielens", "ml-100k", "ml-1m", "ml-latest", "recbole"]


def add_data_args(p: argparse.ArgumentParser) -> None:
    """--data, --format, --no-header, --rating-threshold, --kcore."""
    p.add_argument("--data", help="dataset file or folder (default: the bundled sample)")
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--no-header", action="store_true",
                   help="csv/sequences: the first line is data, not a header (else told by its content)")
    p.add_argument("--rating-threshold", type=float, default=None, help="keep ratings >= this as positives")
    p.add_argument("--kcore", type=int, default=0)


def data_options(a: argparse.Namespace) -> DataOptions:
    return DataOptions(rating_threshold=a.rating_threshold, kcore=a.kcore)


def load_data(a: argparse.Namespace, opts: DataOptions) -> Any:
    """The dataset of --data (the bundled sample without it), announced on stderr."""
    from distill_core.data import load_dataset, load_sample  # looked up at call time: tests replace them

    ds = load_dataset(a.data, a.format, opts, no_header=a.no_header) if a.data else load_sample(opts)
    print(f"dataset {ds.name}: {ds.n_users} users, {ds.n_items} items, {ds.n_interactions} interactions",
          file=sys.stderr)
    return ds


def student(a: argparse.Namespace, d: RunConfig) -> ModelSpec:
    """The student of --student and --student-dim (checked with --student-ratio before any data is read)."""
    if a.student_ratio is not None:
        sizing.check_ratio(a.student_ratio, "--student-ratio")
        if a.student_dim is not None:
            raise RecDistillError("give --student-dim or --student-ratio, not both")
    return ModelSpec(a.student, d.student.dim if a.student_dim is None else a.student_dim)


def sized(a: argparse.Namespace, student: ModelSpec, teacher: ModelSpec, ds: Any) -> ModelSpec:
    """The student within --student-ratio of the teacher on ``ds`` (as given without it); says its share."""
    if a.student_ratio is not None:
        student = sizing.student_for_ratio(student, sizing.n_params(teacher, ds.n_users, ds.n_items),
                                           a.student_ratio, ds.n_users, ds.n_items, "--student-ratio")
    print(f"student {sizing.size_line(student, teacher, ds.n_users, ds.n_items)}"
          + (f"; the largest within --student-ratio {a.student_ratio:g}" if a.student_ratio is not None else ""),
          file=sys.stderr)
    return student


def val(m: dict[str, Any]) -> str:
    # an epoch trained again for a number of epochs chosen before has no validation score
    return f"  val ndcg@10 {m['val_ndcg@10']:.4f}" if "val_ndcg@10" in m else ""


def clean(x: Any) -> Any:
    """JSON without NaN/inf (they become null)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    return x

"""RecDistill's engine: data, models, the KD loss, metrics, training, background jobs, run store.

This face holds what a script needs to train a teacher, distil a student and compare it with the same student
trained plainly (see the README's "Use it from Python"): the data (``load_sample``, ``load_dataset``,
``split_dataset``), the configs, ``train_model`` / ``run_pipeline`` / ``evaluate``, ``refresh_student``, the KD
loss, the run store and the errors. Everything else is imported from its submodule: model families from
``distill_core.models``, the other losses from ``losses``, metrics from ``metrics``, the fit loop from ``trainer``,
background jobs from ``workflows`` and ``runner``, run lookups and page views from ``runs`` and ``views``, exports from
``export``. The dashboard (``app.py``, ``app_pages/``, ``ui/``) and the CLI (``python -m distill_core``) do so.
"""
from __future__ import annotations

import logging

from distill_core.config import DataOptions, DistillConfig, ModelSpec, RunConfig, SplitOptions, TrainConfig
from distill_core.data import Dataset, Split, load_dataset, load_sample, split_dataset
from distill_core.distill import TrainedModel, evaluate, train_model
from distill_core.errors import ConfigError, DataError, RecDistillError
from distill_core.losses import kd_loss
from distill_core.refresh import refresh_student
from distill_core.store import RunStore
from distill_core.workflows import run_pipeline

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    # data
    "Dataset", "Split", "load_dataset", "load_sample", "split_dataset",
    # configs
    "DataOptions", "DistillConfig", "ModelSpec", "RunConfig", "SplitOptions", "TrainConfig",
    # training and evaluation
    "TrainedModel", "evaluate", "kd_loss", "refresh_student", "run_pipeline", "train_model",
    # the run store and the errors
    "ConfigError", "DataError", "RecDistillError", "RunStore",
]

"""RecDistill's engine: data, models, the KD loss, metrics, training, background jobs, run store.

The dashboard (``app.py``, ``pages/``) and the CLI (``python -m distill_core``) use only what is
exported here.
"""
from __future__ import annotations

import logging

from distill_core.config import (DataOptions, DistillConfig, ModelSpec, RunConfig, SplitOptions,
                                 TrainConfig, MODEL_FAMILIES, SOFT_LABEL_MODES, STUDENT_FAMILIES)
from distill_core.data import (SAMPLE_DIR, Dataset, Split, build_dataset, detect_format, load_dataset,
                               load_raw, load_sample, split_dataset)
from distill_core.distill import (PipelineResult, SoftLabels, TrainedModel, evaluate, resolve_device,
                                  run_pipeline, scoring_ms_per_1k, train_model)
from distill_core.errors import ConfigError, DataError, JobError, RecDistillError, StoreError
from distill_core.export import (Exported, RankingCheck, check_ranking, export_onnx, export_torchscript,
                                 load_torchscript, onnx_available, serving_meta)
from distill_core.history import bundle_json, curves_frame, delete_run, filter_runs, run_bundle, runs_frame
from distill_core.jobs import demo_job, distill_job, ladder_job, load_model, teacher_job
from distill_core.refresh import refresh_student
from distill_core.losses import (KDLossOutput, LossBreakdown, distribution_loss, hard_ce, kd_kl, kd_loss,
                                 logits_loss, soft_targets, softmax_t)
from distill_core.losslab import (LabResult, NormalisationCheck, grad_norms, loglog_slope, loss_lab,
                                  normalisation_check, parse_vector, per_class_frame, softened_frame)
from distill_core.metrics import agreement, evaluate_ranking
from distill_core.models import MF, Recommender, SASRec, TwoTower, build_model
from distill_core.runner import JobRunner, ProgressSnapshot
from distill_core.store import RunRecord, RunStore, default_home, load_state_dict_file
from distill_core.trainer import TrainerControl, TrainingError, fit, set_seed

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "MF", "MODEL_FAMILIES", "STUDENT_FAMILIES", "SOFT_LABEL_MODES", "SASRec", "SAMPLE_DIR", "ConfigError", "DataError", "DataOptions", "Dataset", "DistillConfig",
    "JobError", "JobRunner", "KDLossOutput", "LossBreakdown", "ModelSpec", "PipelineResult", "ProgressSnapshot",
    "RecDistillError", "Recommender", "RunConfig", "RunRecord", "RunStore", "SoftLabels", "Split", "SplitOptions",
    "StoreError", "TrainConfig", "TrainedModel", "TrainerControl", "TrainingError", "TwoTower", "agreement",
    "build_dataset", "build_model", "default_home", "demo_job", "detect_format", "distill_job",
    "distribution_loss", "evaluate", "evaluate_ranking", "fit", "hard_ce", "kd_kl", "kd_loss", "load_dataset",
    "load_model", "load_raw", "load_sample", "load_state_dict_file", "logits_loss", "resolve_device",
    "run_pipeline", "scoring_ms_per_1k", "set_seed", "soft_targets", "softmax_t", "split_dataset",
    "teacher_job", "train_model", "ladder_job", "refresh_student",
    # Loss lab
    "LabResult", "NormalisationCheck", "grad_norms", "loglog_slope", "loss_lab", "normalisation_check",
    "parse_vector", "per_class_frame", "softened_frame",
    # run history and export
    "Exported", "RankingCheck", "bundle_json", "check_ranking", "curves_frame", "delete_run", "export_onnx",
    "export_torchscript", "filter_runs", "load_torchscript", "onnx_available", "run_bundle", "runs_frame",
    "serving_meta",
]

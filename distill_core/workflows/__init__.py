"""Workflows: a teacher, then a student distilled from it, then the same student trained plainly.

The story is told once (``steps``) and run two ways: as background jobs that record every model in the run
store (``jobs``: ``teacher_job``, ``distill_job``, ``demo_job``, ``ladder_job``; ``sweep.sweep_job`` reuses its
recording), or in memory by ``run_pipeline`` (``pipeline``). ``record`` holds what a job writes to the store and
reads back: ``train_and_record``, ``run_config``, ``plain_run``, ``load_model`` and the one same-dataset check.
"""
from __future__ import annotations

from distill_core.workflows.jobs import JobFn, Runs, demo_job, distill_job, ladder_job, teacher_job
from distill_core.workflows.pipeline import PipelineResult, run_pipeline
from distill_core.workflows.record import (check_same_dataset, load_model, plain_run, run_config, run_info,
                                           same_dataset, train_and_record)

__all__ = ["JobFn", "PipelineResult", "Runs", "check_same_dataset", "demo_job", "distill_job", "ladder_job",
           "load_model", "plain_run", "run_config", "run_info", "run_pipeline", "same_dataset", "teacher_job",
           "train_and_record"]

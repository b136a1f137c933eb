"""The workflows the dashboard and the CLI start as background jobs, recorded in the run store.

* ``teacher_job``: train a teacher.
* ``distill_job``: distil a student from a stored teacher, and train the same student without
  distillation (reused from the store when an identical plain run exists), so every view can
  show both.
* ``demo_job``: both of the above with one ``RunConfig``.
* ``ladder_job``: ``distill_job`` for one student size after another.

Each builds its job function at once, so a bad setting (a missing device, a teacher of another dataset) is
refused before anything starts; the function then runs in the runner's thread (``runner.JobRunner.submit``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from distill_core.config import DistillConfig, ModelSpec, RunConfig, SplitOptions, TrainConfig
from distill_core.data.dataset import Dataset, Split, split_dataset
from distill_core.distill import resolve_device
from distill_core.errors import ConfigError
from distill_core.runner import JobContext
from distill_core.store import RunStore
from distill_core.workflows.record import (check_same_dataset, load_model, plain_run, run_config,
                                           train_and_record)
from distill_core.workflows.steps import students, teacher_and_students

T = TypeVar("T")
JobFn = Callable[[JobContext], T]  # a job function; its return value is the job's result
Runs = dict[str, str]  # role ("teacher", "student_kd", "student_plain") -> run id


@dataclass
class StoreSteps:
    """The story's steps in a background job: each model is a run of the store (its handle the run id), the
    job's progress names the step, and an identical stored plain student is reused."""

    ctx: JobContext
    store: RunStore
    ds: Dataset
    split_opts: SplitOptions
    split: Split

    @property
    def cancelled(self) -> bool:
        return self.ctx.cancelled

    def phase(self, name: str, index: int, n_phases: int) -> None:
        self.ctx.set_phase(name, index, n_phases)

    def train(self, role: str, spec: ModelSpec, train: TrainConfig, *, teacher: str | None = None,
              distill: DistillConfig | None = None) -> str:
        config = run_config(self.split_opts, spec, train, distill)
        if teacher is not None:
            config |= {"teacher": teacher}
        model = load_model(self.store, teacher, self.ds) if teacher is not None else None
        return train_and_record(self.ctx, self.store, self.ds, self.split, role, spec, train, config,
                                teacher=model, distill=distill, parent=teacher)

    def stored_plain(self, spec: ModelSpec, train: TrainConfig) -> str | None:
        return plain_run(self.store, self.ds, run_config(self.split_opts, spec, train, None))

    def add_run(self, role: str, model: str) -> None:
        self.ctx.add_run(role, model)


def _steps(ctx: JobContext, store: RunStore, ds: Dataset, split_opts: SplitOptions) -> StoreSteps:
    return StoreSteps(ctx, store, ds, split_opts, split_dataset(ds, split_opts))


def teacher_job(ds: Dataset, spec: ModelSpec, train: TrainConfig, store: RunStore,
                split_opts: SplitOptions = SplitOptions()) -> JobFn[str]:
    """A job function training a teacher; its result is the teacher's run id."""
    resolve_device(train.device)  # refuse an impossible device before the job starts

    def fn(ctx: JobContext) -> str:
        steps = _steps(ctx, store, ds, split_opts)
        steps.phase("teacher", 0, 1)
        return steps.train("teacher", spec, train)
    return fn


def distill_job(ds: Dataset, teacher_run: str, spec: ModelSpec, train: TrainConfig, distill: DistillConfig,
                store: RunStore, *, with_plain: bool = True, reuse_plain: bool = True) -> JobFn[Runs]:
    """A job function distilling ``spec`` from the stored teacher, plus the plain baseline.

    Its result is ``{"student_kd": run id, "student_plain": run id}``.
    """
    rec = store.get(teacher_run)
    check_same_dataset(rec, ds, "the teacher")
    split_opts = SplitOptions(**rec.config["split"])
    resolve_device(train.device)

    def fn(ctx: JobContext) -> Runs:
        return students(_steps(ctx, store, ds, split_opts), teacher_run, spec, train, distill,
                        with_plain=with_plain, reuse_plain=reuse_plain)
    return fn


def demo_job(ds: Dataset, store: RunStore, cfg: RunConfig = RunConfig()) -> JobFn[Runs]:
    """A job function training the teacher of ``cfg``, then its distilled and plain students (see
    ``config.DEMO`` for the Overview's); its result is ``{"teacher", "student_kd", "student_plain"}`` run ids."""
    resolve_device(cfg.teacher_train.device)

    def fn(ctx: JobContext) -> Runs:
        return teacher_and_students(_steps(ctx, store, ds, cfg.split), cfg)
    return fn


def ladder_job(ds: Dataset, teacher_run: str, family: str, dims: tuple[int, ...], train: TrainConfig,
               distill: DistillConfig, store: RunStore) -> JobFn[dict[int, Runs]]:
    """A job function distilling one student per size in ``dims`` from the stored teacher, each with its
    plain twin (reused when stored), smallest first, so the Compare page fills in as each finishes.

    Its result is ``{dim: {"student_kd": run id, "student_plain": run id}}`` for the sizes that finished.
    """
    if not dims:
        raise ConfigError("size ladder: choose at least one student dim")
    steps = [distill_job(ds, teacher_run, ModelSpec(family, int(d)), train, distill, store)
             for d in sorted(set(dims))]  # each validates its settings now, before the job starts

    def fn(ctx: JobContext) -> dict[int, Runs]:
        out = {}
        for d, step in zip(sorted(set(dims)), steps):
            if ctx.cancelled:
                break
            out[d] = step(ctx)
        return out
    return fn

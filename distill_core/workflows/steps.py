"""The one story: a teacher, then a student distilled from it, then the same student trained plainly.

It is told once here, over :class:`Steps`, which says where each model is trained and kept: in the run store by
a background job (``jobs.StoreSteps``: handles are run ids, progress goes to the job, an identical stored plain
student is reused, a Stop ends the story early) or in memory by ``run_pipeline`` (handles are ``TrainedModel``s).
The demo tells all of it, a distillation job its second half (from a stored teacher).
"""
from __future__ import annotations

from typing import Protocol, TypeVar

from distill_core.config import DistillConfig, ModelSpec, RunConfig, TrainConfig

H = TypeVar("H")


class Steps(Protocol[H]):
    """Where the story's models are trained; ``H`` is what stands for a trained model (a run id, a model)."""

    @property
    def cancelled(self) -> bool:
        """Whether Stop was pressed: the story then ends after the model in training."""
        ...

    def phase(self, name: str, index: int, n_phases: int) -> None:
        """Step ``index`` of ``n_phases`` starts (the progress bar names it)."""
        ...

    def train(self, role: str, spec: ModelSpec, train: TrainConfig, *, teacher: H | None = None,
              distill: DistillConfig | None = None) -> H:
        """Train one model (distilled from ``teacher`` with ``distill`` when given)."""
        ...

    def stored_plain(self, spec: ModelSpec, train: TrainConfig) -> H | None:
        """An identical plain student trained before, to reuse instead of training it again."""
        ...

    def add_run(self, role: str, model: H) -> None:
        """Show ``model`` among the story's results as ``role`` (a reused one was not trained here)."""
        ...


def students(steps: Steps[H], teacher: H, spec: ModelSpec, train: TrainConfig, distill: DistillConfig, *,
             with_plain: bool = True, reuse_plain: bool = True, first_phase: int = 0,
             n_phases: int | None = None) -> dict[str, H]:
    """The student ``spec`` distilled from ``teacher``, then (``with_plain``) the same student without
    distillation, reused when an identical one is stored (``reuse_plain``); ``{"student_kd", "student_plain"}``.

    Phases are numbered from ``first_phase`` of ``n_phases`` (default: the steps this call trains)."""
    plain = steps.stored_plain(spec, train) if with_plain and reuse_plain else None
    n = n_phases if n_phases is not None else (2 if with_plain and plain is None else 1)
    steps.phase("student_kd", first_phase, n)
    out = {"student_kd": steps.train("student_kd", spec, train, teacher=teacher, distill=distill)}
    if with_plain and not steps.cancelled:
        if plain is None:
            steps.phase("student_plain", first_phase + 1, n)
            plain = steps.train("student_plain", spec, train)
        steps.add_run("student_plain", plain)
        out["student_plain"] = plain
    return out


def teacher_and_students(steps: Steps[H], cfg: RunConfig) -> dict[str, H]:
    """The teacher of ``cfg``, then its distilled and plain students: ``{"teacher", "student_kd",
    "student_plain"}`` (only the models trained before a Stop)."""
    steps.phase("teacher", 0, 3)
    out = {"teacher": steps.train("teacher", cfg.teacher, cfg.teacher_train)}
    if steps.cancelled:
        return out
    return out | students(steps, out["teacher"], cfg.student, cfg.student_train, cfg.distill, first_phase=1,
                          n_phases=3)

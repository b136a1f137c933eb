"""Refreshing a distilled student when new interactions arrive.

A student distilled in ``current`` mode learns, for each user, the teacher's next-item distribution
*after that user's latest training interaction*. Those soft labels go stale the moment the user does
something new: the teacher, which reads sequences, would now predict something else, but the student
keeps being pulled towards the old prediction. So a refresh first recomputes the soft labels from the
teacher on the new data and only then fine-tunes the student on them, in one call
(:func:`refresh_student`). ``bench/quality.py`` measures what this is worth: the student refreshed with
recomputed soft labels against the same refresh with the stale ones, and against the plain student
refreshed on the new hard labels alone.
"""
from __future__ import annotations

from collections.abc import Sequence

from distill_core.config import DistillConfig, ModelSpec, TrainConfig
from distill_core.data.dataset import Split
from distill_core.distill import TrainedModel, train_model
from distill_core.errors import ConfigError
from distill_core.models import Recommender
from distill_core.trainer import Callback, TrainerControl

#: A refresh fine-tunes; a few epochs at the student's learning rate are enough (bench/quality.py).
REFRESH_EPOCHS = 3


def _spec(model: Recommender) -> ModelSpec:
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise ConfigError(f"the {model.family} model carries no ModelSpec; rebuild it with build_model")
    return spec


def refresh_student(student: Recommender, split: Split, train: TrainConfig, *, teacher: Recommender | None = None,
                    distill: DistillConfig | None = None, callbacks: Sequence[Callback] = (),
                    control: TrainerControl | None = None, stale_split: Split | None = None) -> TrainedModel:
    """Fine-tune a copy of ``student`` on ``split``, which holds the new interactions in its training part.

    With ``teacher`` and ``distill``, the teacher's soft labels are recomputed from ``split`` first (the
    point of this function); ``stale_split`` instead keeps the soft labels of an older split, which is
    only useful to measure what recomputing them is worth. Without a teacher it is the plain refresh.
    ``split`` has no validation data after :meth:`Split.advance`, so every one of ``train.epochs``
    epochs runs and the last one is kept. ``student`` itself is left unchanged.
    """
    if (student.n_users, student.n_items) != (split.n_users, split.n_items):
        raise ConfigError(f"the student knows {student.n_users} users and {student.n_items} items, the new data "
                          f"has {split.n_users} and {split.n_items}; a refresh keeps the catalogue and the users")
    if stale_split is not None and teacher is None:
        raise ConfigError("stale_split needs a teacher")
    has_valid = len(split.valid_items) > 0
    return train_model(split, _spec(student), train, role="student_kd" if teacher is not None else "student_plain",
                       teacher=teacher, distill=distill, callbacks=callbacks, control=control, init=student,
                       soft_split=stale_split, validate=has_valid)

"""``run_pipeline``: the story of ``steps`` in memory, in the calling thread, for scripts and ``python -m
distill_core run``; nothing is stored."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distill_core.config import DistillConfig, ModelSpec, RunConfig, TrainConfig
from distill_core.data.dataset import Dataset, Split, split_dataset
from distill_core.distill import TrainedModel, train_model
from distill_core.diversity import diversity_space
from distill_core.segments import model_segments
from distill_core.trainer import Callback, TrainerControl
from distill_core.workflows.steps import teacher_and_students


@dataclass
class PipelineResult:
    dataset: Dataset
    split: Split
    config: RunConfig
    teacher: TrainedModel
    student_kd: TrainedModel
    student_plain: TrainedModel

    def report(self) -> dict[str, Any]:
        """The JSON report of ``python -m distill_core run``."""
        keys = ("hr@10", "ndcg@10", "recall@20", "mrr")
        out: dict[str, Any] = {"dataset": {"name": self.dataset.name, "users": self.dataset.n_users,
                                           "items": self.dataset.n_items,
                                           "interactions": self.dataset.n_interactions,
                                           "order": self.dataset.order_source},
                               "config": self.config.to_dict()}
        for tm in (self.teacher, self.student_kd, self.student_plain):
            s = tm.summary()
            s["metrics"] = {k: s["metrics"].get(k, float("nan")) for k in keys} | {
                k: v for k, v in s["metrics"].items() if k not in keys}
            out[tm.role] = s
        t, kd, pl = (out[r]["metrics"]["ndcg@10"] for r in ("teacher", "student_kd", "student_plain"))
        out["summary"] = {"param_ratio": out["student_kd"]["params"] / out["teacher"]["params"],
                          "retention_ndcg@10": kd / t if t else float("nan"),
                          "gain_ndcg@10": kd / pl if pl else float("nan")}
        space = diversity_space(self.split)  # one for the three models, so that their diversity compares
        out["segments"] = {tm.role: model_segments(tm.model, self.split, space=space).summary
                           for tm in (self.teacher, self.student_kd, self.student_plain)}
        return out


@dataclass
class _MemorySteps:
    """The story's steps in memory: each model is a ``TrainedModel``; nothing is reused."""

    split: Split
    callbacks: Sequence[Callback]
    control: TrainerControl | None
    # every model is trained, even after a stop (each remaining fit then stops at its first batch), so that
    # the result always holds all three
    cancelled: bool = False

    def phase(self, name: str, index: int, n_phases: int) -> None:
        pass  # the callbacks see each model's train_start

    def train(self, role: str, spec: ModelSpec, train: TrainConfig, *, teacher: TrainedModel | None = None,
              distill: DistillConfig | None = None) -> TrainedModel:
        return train_model(self.split, spec, train, role=role, teacher=teacher, distill=distill,
                           callbacks=self.callbacks, control=self.control)

    def stored_plain(self, spec: ModelSpec, train: TrainConfig) -> TrainedModel | None:
        return None

    def add_run(self, role: str, model: TrainedModel) -> None:
        pass


def run_pipeline(ds: Dataset, cfg: RunConfig, callbacks: Sequence[Callback] = (),
                 control: TrainerControl | None = None) -> PipelineResult:
    """Teacher, then the distilled student, then the same student without distillation."""
    split = split_dataset(ds, cfg.split)
    out = teacher_and_students(_MemorySteps(split, callbacks, control), cfg)
    return PipelineResult(ds, split, cfg, out["teacher"], out["student_kd"], out["student_plain"])

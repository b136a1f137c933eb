"""The configs (distill_core.config) and the checks behind them: every setting out of range is refused
with a ConfigError that names its field and quotes the value; K larger than the catalogue is refused
before anything trains.
"""
from __future__ import annotations

import pytest
import torch

from distill_core import (ConfigError, DataOptions, DistillConfig, ModelSpec, RunStore, SplitOptions, TrainConfig,
                          split_dataset, train_model)
from distill_core import views
from distill_core.metrics import evaluate_ranking
from distill_core.runner import JobRunner
from distill_core.workflows import teacher_job

from _helpers import tiny_catalogue_dataset


FAST = TrainConfig(epochs=1, batch_size=256, device="cpu")


@pytest.mark.parametrize("make, field", [
    (lambda: DistillConfig(alpha=-0.01), "alpha"), (lambda: DistillConfig(alpha=1.01), "alpha"),
    (lambda: DistillConfig(alpha=float("nan")), "alpha"), (lambda: DistillConfig(alpha=float("inf")), "alpha"),
    (lambda: DistillConfig(temperature=0.0), "temperature"), (lambda: DistillConfig(temperature=-1.0), "temperature"),
    (lambda: DistillConfig(temperature=float("nan")), "temperature"),
    (lambda: DistillConfig(temperature=float("inf")), "temperature"),
    (lambda: DistillConfig(soft_labels="sometimes"), "soft_labels"),
    (lambda: ModelSpec("mf", 0), "dim"), (lambda: ModelSpec("mf", -4), "dim"), (lambda: ModelSpec("mf", 2.5), "dim"),
    (lambda: ModelSpec("sasrec", 64, layers=0), "layers"), (lambda: ModelSpec("sasrec", 7, heads=2), "heads"),
    (lambda: ModelSpec("gpt", 8), "model family"),
    (lambda: TrainConfig(epochs=0), "epochs"), (lambda: TrainConfig(epochs=-3), "epochs"),
    (lambda: TrainConfig(lr=0.0), "learning rate"), (lambda: TrainConfig(lr=float("nan")), "learning rate"),
    (lambda: TrainConfig(batch_size=0), "batch_size"), (lambda: TrainConfig(device="tpu"), "device"),
    (lambda: DataOptions(kcore=-1), "kcore"), (lambda: DataOptions(rating_threshold=float("nan")), "rating_threshold"),
    (lambda: SplitOptions(min_interactions=2), "min_interactions"),
])
def test_every_setting_out_of_range_is_refused_naming_its_field(make, field):
    with pytest.raises(ConfigError) as info:
        make()
    assert str(info.value).startswith(field), str(info.value)
    assert "got" in str(info.value)  # the refused value is quoted back


def test_k_larger_than_the_catalogue_is_refused_naming_k(tmp_path):
    ds = tiny_catalogue_dataset(tmp_path, 8)
    sp = split_dataset(ds)
    assert ds.n_items == 8
    with pytest.raises(ConfigError, match=r"K=20 .*larger than the catalogue of 8 items"):
        train_model(sp, ModelSpec("mf", 4), FAST)  # before any training: nothing is wasted
    runner, store = JobRunner(), RunStore()
    snap = runner.wait(runner.submit("teacher", teacher_job(ds, ModelSpec("mf", 4), FAST, store)), 30)
    assert snap.status == "failed" and "K=20" in snap.error and snap.step == 0
    assert "K=20" in store.get(snap.runs["teacher"]).error
    with pytest.raises(ValueError, match="K=9 is larger than the catalogue"):
        evaluate_ranking(lambda u: torch.zeros(len(u), 8), sp.eval_users("test"), sp.held_out("test"),
                         sp.seen("test"), 8, ks=(9,))
    with pytest.raises(ConfigError, match=r"K must be between 1 and 8 \(got 9\)"):
        views.top_k_lists({}, ds, sp, 0, 9)
    with pytest.raises(ConfigError, match=r"got 0"):
        views.top_k_lists({}, ds, sp, 0, 0)

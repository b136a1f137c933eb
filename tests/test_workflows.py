"""The workflows (distill_core.workflows): jobs that train and record the teacher, the distilled and the plain
student in the run store, and what they refuse before starting."""
from __future__ import annotations

import pytest

from distill_core import split_dataset, train_model
from distill_core.config import DistillConfig, ModelSpec, TrainConfig
from distill_core.errors import ConfigError
from distill_core.runner import JobRunner
from distill_core.store import RunStore
from distill_core.workflows import distill_job, load_model, teacher_job

from _helpers import tiny_catalogue_dataset

TINY_TRAIN = TrainConfig(epochs=2, batch_size=128, device="cpu")
FAST = TrainConfig(epochs=1, batch_size=256, device="cpu")


def test_distill_job_stores_both_students_and_reuses_plain(tiny_ds):
    runner, store = JobRunner(), RunStore()
    t = runner.wait(runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("mf", 16), TINY_TRAIN, store)), 60)
    tid = t.result
    job = distill_job(tiny_ds, tid, ModelSpec("mf", 4), TINY_TRAIN, DistillConfig(0.5, 2.0), store)
    s1 = runner.wait(runner.submit("distill", job), 60)
    assert s1.status == "done", s1.error
    kd, plain = store.get(s1.result["student_kd"]), store.get(s1.result["student_plain"])
    assert kd.parent == tid and kd.config["distill"]["alpha"] == 0.5 and kd.metrics["ndcg@10"] >= 0
    assert plain.config["distill"] is None and plain.info["params"] == kd.info["params"]
    s2 = runner.wait(runner.submit("distill", job), 60)
    assert s2.result["student_plain"] == plain.id and s2.result["student_kd"] != kd.id
    # a stored model reloads with the same test metrics
    model = load_model(store, kd.id, tiny_ds)
    from distill_core.data import split_dataset
    from distill_core.distill import evaluate
    assert evaluate(model, split_dataset(tiny_ds), "test")["ndcg@10"] == pytest.approx(kd.metrics["ndcg@10"])


def test_student_on_another_dataset_is_refused(tiny_ds, tmp_path):
    store = RunStore(tmp_path)
    rid = store.create_run("teacher", "another-fingerprint", "other", {"split": {}, "model": {}})
    with pytest.raises(ConfigError, match="not on the active dataset"):
        distill_job(tiny_ds, rid, ModelSpec("mf", 4), TINY_TRAIN, DistillConfig(), store)


def test_a_student_for_a_dataset_its_teacher_was_not_trained_on_is_refused(tiny_ds, tmp_path):
    store, runner = RunStore(tmp_path), JobRunner()
    tid = runner.wait(runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("mf", 8), FAST, store)), 30).result
    other = tiny_catalogue_dataset(tmp_path, 24)  # another dataset (another fingerprint and shape)
    with pytest.raises(ConfigError, match="was trained on dataset 'tiny', not on the active dataset 'few.csv'"):
        distill_job(other, tid, ModelSpec("mf", 4), FAST, DistillConfig(), store)
    with pytest.raises(ConfigError, match="not on the active dataset"):
        load_model(store, tid, other)
    teacher = load_model(store, tid, tiny_ds)
    with pytest.raises(ConfigError, match=r"teacher was trained on a dataset with 80 users and 120 items"):
        train_model(split_dataset(other), ModelSpec("mf", 4), FAST, teacher=teacher, distill=DistillConfig())
    assert runner.alive_threads() == 0 and [r.id for r in store.runs()] == [tid]  # nothing started

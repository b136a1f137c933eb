"""Background jobs (distill_core.runner): a job returns at once and reports progress, keeps its error,
stops within one batch, and a fault in the model or a non-finite loss ends it failed with the message
stored.
"""
from __future__ import annotations

import math
import threading
import time

import pytest

from distill_core import ModelSpec, RunStore, TrainConfig
from distill_core.runner import JobRunner
from distill_core.workflows import teacher_job


FAST = TrainConfig(epochs=1, batch_size=256, device="cpu")
TINY_TRAIN = TrainConfig(epochs=2, batch_size=128, device="cpu")


def test_job_returns_at_once_and_reports_progress():
    runner = JobRunner()
    gate = threading.Event()

    def fn(ctx):
        ctx.set_phase("work", 0, 1)
        ctx.callback.on_event("train_start", {"epochs": 2, "steps_per_epoch": 2, "examples": 4})
        ctx.callback.on_event("step_end", {"epoch": 1, "step": 1, "steps_per_epoch": 2, "ce": 1.0, "kl": 0.5, "total": 1.5})
        gate.wait(5)
        return 42

    t0 = time.perf_counter()
    jid = runner.submit("test", fn)
    assert time.perf_counter() - t0 < 0.5
    for _ in range(100):
        snap = runner.snapshot(jid)
        if snap.latest:
            break
        time.sleep(0.01)
    assert snap.status == "running" and snap.latest["kl"] == 0.5 and snap.fraction == pytest.approx(0.25)
    gate.set()
    done = runner.wait(jid, 5)
    assert done.status == "done" and done.result == 42 and not done.active


def test_job_error_is_kept():
    runner = JobRunner()

    def boom(ctx):
        raise ValueError("the model exploded")

    snap = runner.wait(runner.submit("bad", boom), 5)
    assert snap.status == "failed" and "the model exploded" in snap.error


def test_cancel_within_one_batch_and_threads_joined(tiny_ds):
    runner = JobRunner()
    store = RunStore()
    jid = runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("mf", 16), TrainConfig(epochs=500, batch_size=16), store))
    while not runner.snapshot(jid).latest:
        time.sleep(0.01)
    runner.cancel(jid)
    at_cancel = runner.snapshot(jid)  # the batch running now may still finish, no other may start
    snap = runner.wait(jid, 10)
    assert snap.status == "cancelled"
    assert runner.alive_threads() == 0
    rec = store.get(snap.runs["teacher"])
    assert rec.status == "cancelled" and rec.weights is None
    def steps_done(s):  # steps run since the start, over epochs
        return (s.epoch - 1) * s.steps_per_epoch + s.step
    assert 0 <= steps_done(snap) - steps_done(at_cancel) <= 1


def test_two_jobs_at_once_keep_separate_progress(tiny_ds):
    runner, store = JobRunner(), RunStore()
    a = runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("mf", 8), TINY_TRAIN, store))
    b = runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("two_tower", 8), TINY_TRAIN, store))
    sa, sb = runner.wait(a, 60), runner.wait(b, 60)
    assert sa.status == sb.status == "done"
    assert sa.runs["teacher"] != sb.runs["teacher"]
    ra, rb = store.get(sa.runs["teacher"]), store.get(sb.runs["teacher"])
    assert ra.config["model"]["family"] == "mf" and rb.config["model"]["family"] == "two_tower"
    assert len(ra.history) == len(rb.history) == 2
    assert [r["val_ndcg@10"] for r in sa.epochs_log] == [r["val_ndcg@10"] for r in ra.history]


def test_a_job_whose_model_raises_ends_failed_with_its_message_stored(tiny_ds, monkeypatch):
    import distill_core.distill as distill

    real = distill.build_model

    def failing(spec, split):
        model = real(spec, split)

        def forward(*args, **kwargs):
            raise RuntimeError("injected fault: the model's forward failed")
        model.forward = forward
        return model
    monkeypatch.setattr(distill, "build_model", failing)
    runner, store = JobRunner(), RunStore()
    snap = runner.wait(runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("mf", 8), FAST, store)), 30)
    assert snap.status == "failed" and snap.error == "RuntimeError: injected fault: the model's forward failed"
    rec = store.get(snap.runs["teacher"])
    assert rec.status == "failed" and rec.error == snap.error and rec.weights is None and rec.ended is not None
    assert runner.alive_threads() == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_the_job_at_that_step_with_a_clear_message(tiny_ds, monkeypatch, bad):
    import distill_core.distill as distill

    real, calls = distill.kd_loss, []

    def poisoned(*args, **kwargs):  # the 3rd batch's loss becomes non-finite
        out = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            out = type(out)(ce=out.ce * bad, kl=out.kl, total=out.total * bad)
        return out
    monkeypatch.setattr(distill, "kd_loss", poisoned)
    runner, store = JobRunner(), RunStore()
    job = teacher_job(tiny_ds, ModelSpec("mf", 8), TrainConfig(epochs=50, batch_size=64, device="cpu"), store)
    snap = runner.wait(runner.submit("teacher", job), 30)
    word = "nan" if math.isnan(bad) else "inf"
    assert snap.status == "failed" and snap.error.startswith(f"TrainingError: the loss became {word} at epoch 1, step 3")
    assert "training stopped" in snap.error and "learning rate" in snap.error  # what to do about it
    assert len(calls) == 3 and snap.step == 2  # no batch after the bad one; its step was never reported
    rec = store.get(snap.runs["teacher"])
    assert rec.status == "failed" and rec.error == snap.error and rec.weights is None

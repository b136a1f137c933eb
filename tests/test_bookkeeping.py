"""Run bookkeeping (issue 14, point 6): whatever moment Stop, a full disk or a crash strikes, the job and
the run store tell the same story, and nothing else stored is lost.

* Stop: a job is "cancelled" only if Stop took effect (the trainer or the job saw it and stopped short);
  a Stop after the last check comes too late, and job and run both say "done" (the job notes it).
* Weights that cannot be written: the run is "failed" with the reason, no weight file is left, the run
  can be deleted, the other runs keep their weights.

Whether a "running" run's process is still alive (pid and start time) is tested in test_store_liveness.py.
"""
from __future__ import annotations

import pytest
import torch

from distill_core import history
from distill_core.config import DistillConfig, ModelSpec, TrainConfig
from distill_core.errors import StoreError
from distill_core.runner import JobRunner
from distill_core.store import RunStore
from distill_core.workflows import record as record_module
from distill_core.workflows import distill_job, teacher_job


TRAIN = TrainConfig(epochs=2, batch_size=128, patience=0, device="cpu")
DISK_FULL = OSError(28, "No space left on device")


def teed(fn, on_event):
    """The job ``fn`` with ``on_event(ctx, name, payload)`` called after the job's own progress callback."""
    def job(ctx):
        real = ctx.callback

        class Tee:
            def on_event(self, name: str, payload: dict) -> None:
                real.on_event(name, payload)
                on_event(ctx, name, payload)
        ctx.callback = Tee()
        return fn(ctx)
    return job


def stop_at_step(which):
    """A tee pressing Stop (what ``JobRunner.cancel`` does) at the step ``which(step, steps)`` picks
    of the last epoch, i.e. after the trainer's check for that step: during the batch in flight."""
    def on_event(ctx, name, p):
        if name == "step_end" and p["epoch"] == TRAIN.epochs and which(p["step"], p["steps_per_epoch"]):
            ctx.control.should_stop = True
    return on_event


def stop_after_epoch_1(ctx, name, p):
    if name == "epoch_end" and p["epoch"] == 1:
        ctx.control.should_stop = True


def _wrap_train_model(monkeypatch):
    """Stop pressed after fit() returned, before the job records the run."""
    real = record_module.train_model

    def train_then_stop(*args, **kw):
        tm = real(*args, **kw)
        kw["control"].should_stop = True
        return tm
    monkeypatch.setattr(record_module, "train_model", train_then_stop)


def _wrap_weight_writer(monkeypatch):
    """Stop pressed while the finished run's weights are being written."""
    real = RunStore._write_weights
    controls = []

    def write_then_stop(self, rid, state_dict):
        name = real(self, rid, state_dict)
        controls[0].should_stop = True
        return name
    monkeypatch.setattr(RunStore, "_write_weights", write_then_stop)
    return controls


# (label, where Stop is pressed, the status both the job and the run must end with)
STOPS = [
    ("during the last batch", "last", "done"),
    ("after training, before the run is recorded", "after_fit", "done"),
    ("while the weights are written", "writing", "done"),
    ("during the second-to-last batch", "second_last", "cancelled"),
    ("at the end of the first epoch", "epoch_end", "cancelled"),
]


@pytest.mark.parametrize("label, when, expected", STOPS, ids=[s[0] for s in STOPS])
def test_stop_at_any_moment_leaves_the_job_and_the_run_agreeing(tiny_ds, tmp_path, monkeypatch, label, when, expected):
    store, runner = RunStore(tmp_path), JobRunner()
    job = teacher_job(tiny_ds, ModelSpec("mf", 8), TRAIN, store)
    if when == "last":
        job = teed(job, stop_at_step(lambda step, steps: step == steps))
    elif when == "second_last":
        job = teed(job, stop_at_step(lambda step, steps: step == steps - 1))
    elif when == "epoch_end":
        job = teed(job, stop_after_epoch_1)
    elif when == "after_fit":
        _wrap_train_model(monkeypatch)
    elif when == "writing":
        controls = _wrap_weight_writer(monkeypatch)
        inner = job

        def job(ctx):
            controls.append(ctx.control)
            return inner(ctx)
    snap = runner.wait(runner.submit("teacher", job), 60)
    rec = store.get(snap.runs["teacher"])
    assert (snap.status, rec.status) == (expected, expected), label
    if expected == "done":  # Stop came too late: the finished run is kept whole, and the job says why
        assert snap.result == rec.id and rec.weights and store.load_weights(rec.id)
        assert len(rec.history) == TRAIN.epochs and "Stop came after the last training step" in snap.note
    else:
        assert rec.weights is None and snap.note is None and len(rec.history) < TRAIN.epochs


def test_a_job_that_never_saw_stop_is_done_and_one_that_did_is_cancelled(tiny_ds, tmp_path):
    """Two-run job: Stop in the plain student's last batch is too late (both runs done, job done); Stop in
    the distilled student's last batch is seen before the plain student starts (job cancelled, kd done,
    no plain run left "running")."""
    store, runner = RunStore(tmp_path), JobRunner()
    teacher = runner.wait(runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("mf", 8), TRAIN, store)), 60)

    def stop_in_last_batch_of(run_index):
        starts = []

        def on_event(ctx, name, p):
            if name == "train_start":
                starts.append(1)
            elif len(starts) == run_index and name == "step_end" and p["epoch"] == TRAIN.epochs \
                    and p["step"] == p["steps_per_epoch"]:
                ctx.control.should_stop = True
        return on_event

    job = distill_job(tiny_ds, teacher.result, ModelSpec("mf", 4), TRAIN, DistillConfig(0.5, 2.0), store)
    late = runner.wait(runner.submit("distill", teed(job, stop_in_last_batch_of(2))), 60)
    assert late.status == "done" and set(late.result) == {"student_kd", "student_plain"}
    assert [store.get(late.result[r]).status for r in ("student_kd", "student_plain")] == ["done", "done"]

    job = distill_job(tiny_ds, teacher.result, ModelSpec("mf", 4), TRAIN, DistillConfig(0.9, 2.0), store,
                      reuse_plain=False)
    seen = runner.wait(runner.submit("distill", teed(job, stop_in_last_batch_of(1))), 60)
    assert seen.status == "cancelled" and set(seen.result) == {"student_kd"}
    assert store.get(seen.result["student_kd"]).status == "done"
    assert not store.runs(status="running") and len(store.runs()) == 4


# ============================================================================= weights that cannot be written
def _torch_save_fails(monkeypatch):
    def save(obj, f, *args, **kwargs):
        f.write(b"half a weight file")  # the disk fills up part-way
        raise DISK_FULL
    monkeypatch.setattr("distill_core.store.torch.save", save)


def _rename_fails(monkeypatch):
    def replace(src, dst):
        raise DISK_FULL
    monkeypatch.setattr("distill_core.store.os.replace", replace)


def _writer_fails(monkeypatch):
    def write(self, rid, state_dict):  # the store's writer itself, raising an unwrapped OSError
        raise DISK_FULL
    monkeypatch.setattr(RunStore, "_write_weights", write)


def _row_update_fails(monkeypatch):
    """The weight file is written, then the row cannot be updated once (e.g. the database's disk is full)."""
    real_write, real_tx, armed = RunStore._write_weights, RunStore._tx, []

    def write(self, rid, state_dict):
        name = real_write(self, rid, state_dict)
        armed.append(name)
        return name

    def tx(self):
        if armed:
            armed.clear()
            raise StoreError(f"run store {self.path}: database or disk is full")
        return real_tx(self)
    monkeypatch.setattr(RunStore, "_write_weights", write)
    monkeypatch.setattr(RunStore, "_tx", tx)


FAULTS = {"torch.save": (_torch_save_fails, "No space left on device"),
          "rename": (_rename_fails, "No space left on device"),
          "weight writer": (_writer_fails, "No space left on device"),
          "row update": (_row_update_fails, "database or disk is full")}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_full_disk_while_writing_weights_fails_the_run_deletably_and_keeps_the_rest(tiny_ds, tmp_path,
                                                                                     monkeypatch, fault):
    store, runner = RunStore(tmp_path), JobRunner()
    kept = runner.wait(runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("mf", 8), TRAIN, store)), 60)
    kept_rec, kept_weights = store.get(kept.result), store.load_weights(kept.result)
    inject, message = FAULTS[fault]
    inject(monkeypatch)

    snap = runner.wait(runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("mf", 8), TRAIN, store)), 60)
    monkeypatch.undo()
    rec = store.get(snap.runs["teacher"])
    assert snap.status == "failed" and message in snap.error
    assert rec.status == "failed" and rec.error == snap.error and rec.weights is None and rec.ended is not None
    assert len(rec.history) == TRAIN.epochs  # the epochs it trained are still there to look at
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == [kept_rec.weights]  # no partial file
    assert history.delete_run(store, rec.id) == [rec.id]
    assert [r.id for r in store.runs()] == [kept_rec.id] and store.get(kept_rec.id) == kept_rec
    assert all(torch.equal(v, kept_weights[k]) for k, v in store.load_weights(kept_rec.id).items())


def test_finish_run_marks_the_run_failed_when_its_weights_cannot_be_written(tmp_path, monkeypatch):
    """The store on its own (no job around it): the failure is recorded before the error is raised."""
    store = RunStore(tmp_path)
    rid = store.create_run("teacher", "fp", "ds", {})
    _torch_save_fails(monkeypatch)
    with pytest.raises(StoreError, match="cannot write weight file .*No space left on device"):
        store.finish_run(rid, "done", history=[{"epoch": 1.0}], state_dict={"w": torch.ones(3)})
    rec = store.get(rid)
    assert rec.status == "failed" and "No space left on device" in rec.error and rec.history == [{"epoch": 1.0}]
    assert list((tmp_path / "weights").iterdir()) == []

"""Run bookkeeping (issue 14, point 6): whatever moment Stop, a full disk or a crash strikes, the job and
the run store tell the same story, and nothing else stored is lost.

* Stop: a job is "cancelled" only if Stop took effect (the trainer or the job saw it and stopped short);
  a Stop after the last check comes too late, and job and run both say "done" (the job notes it).
* Weights that cannot be written: the run is "failed" with the reason, no weight file is left, the run
  can be deleted, the other runs keep their weights.
* Liveness: a "running" run belongs to a process known by pid and start time; a dead pid, a zombie or a
  pid now held by another process means the run was interrupted.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from distill_core import history
from distill_core import jobs as jobs_module
from distill_core.config import DistillConfig, ModelSpec, TrainConfig
from distill_core.errors import StoreError
from distill_core.jobs import distill_job, teacher_job
from distill_core.runner import JobRunner
from distill_core.store import RunStore, process_start

from conftest import ROOT

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
    real = jobs_module.train_model

    def train_then_stop(*args, **kw):
        tm = real(*args, **kw)
        kw["control"].should_stop = True
        return tm
    monkeypatch.setattr(jobs_module, "train_model", train_then_stop)


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


# ============================================================================= is the run's process alive?
def _set(store: RunStore, rid: str, **cols) -> None:
    with sqlite3.connect(store.path) as db:
        db.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in cols)} WHERE id = ?", (*cols.values(), rid))


def _dead_pid() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                       check=True)
    return int(p.stdout)


@pytest.fixture
def other_process(tmp_path):
    """A live process that opened the store at ``tmp_path`` and started a run in it: (Popen, run id)."""
    code = ("import sys; sys.path.insert(0, %r); from distill_core.store import RunStore; "
            "print(RunStore(%r).create_run('teacher', 'fp', 'ds', {}), flush=True); sys.stdin.read()"
            ) % (str(ROOT), str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rid = proc.stdout.readline().strip()
    yield proc, rid
    proc.stdin.close()
    proc.wait(30)


def test_a_run_of_a_live_process_stays_running_and_one_of_a_dead_pid_is_interrupted(tmp_path, other_process):
    proc, live = other_process
    store = RunStore(tmp_path)
    mine = store.create_run("teacher", "fp", "ds", {})
    dead = store.create_run("teacher", "fp", "ds", {})
    _set(store, dead, pid=_dead_pid())
    reopened = RunStore(tmp_path)
    assert reopened.interrupted == [dead]
    assert {r.id: r.status for r in reopened.runs()} == {live: "running", mine: "running", dead: "interrupted"}
    assert "ended before it finished" in reopened.get(dead).error
    assert RunStore(tmp_path).interrupted == [] and proc.poll() is None


def test_a_pid_now_held_by_another_process_does_not_keep_a_run_running(tmp_path, other_process):
    """The crashed process's pid reused: the pid is alive but was started at another time. Also for this
    very process's pid (a restarted container gets the same small pid again)."""
    proc, other = other_process
    store = RunStore(tmp_path)
    mine, reused_mine = store.create_run("teacher", "fp", "ds", {}), store.create_run("teacher", "fp", "ds", {})
    assert store.get(other).status == "running" and process_start(proc.pid) is not None
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT pid, pid_start FROM runs WHERE id = ?", (other,)).fetchone() == \
            (proc.pid, process_start(proc.pid))
    _set(store, other, pid_start=process_start(proc.pid) - 1)
    _set(store, reused_mine, pid_start=process_start(os.getpid()) + 1)
    reopened = RunStore(tmp_path)
    assert sorted(reopened.interrupted) == sorted([other, reused_mine])
    assert {r.id: r.status for r in reopened.runs()} == {other: "interrupted", reused_mine: "interrupted",
                                                         mine: "running"}
    assert proc.poll() is None  # the process holding the pid was never touched


def test_a_run_of_a_zombie_process_is_interrupted(tmp_path):
    store = RunStore(tmp_path)
    rid = store.create_run("teacher", "fp", "ds", {})
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":  # exited, not reaped
            assert time.monotonic() < deadline
            time.sleep(0.02)
        _set(store, rid, pid=proc.pid, pid_start=process_start(proc.pid))
        assert RunStore(tmp_path).interrupted == [rid]
    finally:
        proc.wait(30)


def test_a_process_of_another_user_counts_as_alive(tmp_path, other_process, monkeypatch):
    """``kill(pid, 0)`` on another user's process raises PermissionError: it exists, so its run runs."""
    proc, rid = other_process
    real_kill = os.kill

    def kill(pid, sig):
        if pid == proc.pid and sig == 0:
            raise PermissionError(1, "Operation not permitted")
        return real_kill(pid, sig)
    monkeypatch.setattr("distill_core.store.os.kill", kill)
    store = RunStore(tmp_path)
    assert store.interrupted == [] and store.get(rid).status == "running"


OLD_SCHEMA = """CREATE TABLE runs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, dataset TEXT NOT NULL,
    dataset_name TEXT NOT NULL, parent TEXT, config TEXT NOT NULL, status TEXT NOT NULL, pid INTEGER,
    started REAL NOT NULL, ended REAL, history TEXT NOT NULL DEFAULT '[]', metrics TEXT NOT NULL DEFAULT '{}',
    info TEXT NOT NULL DEFAULT '{}', weights TEXT, error TEXT)"""


def test_a_store_from_before_start_times_opens_and_judges_its_runs_by_pid(tmp_path, other_process):
    proc, _ = other_process
    home = tmp_path / "old"
    home.mkdir()
    with sqlite3.connect(home / "runs.sqlite") as db:
        db.execute(OLD_SCHEMA)
        for rid, pid in (("live", proc.pid), ("dead", _dead_pid()), ("mine", os.getpid())):
            db.execute("INSERT INTO runs (id, kind, dataset, dataset_name, config, status, pid, started) "
                       "VALUES (?, 'teacher', 'fp', 'ds', '{}', 'running', ?, ?)", (rid, pid, time.time()))
    store = RunStore(home)
    assert store.interrupted == ["dead"]
    assert {r.id: r.status for r in store.runs()} == {"live": "running", "mine": "running", "dead": "interrupted"}
    rid = store.create_run("teacher", "fp", "ds", {})  # new runs record their start time
    store.finish_run(rid, "done", state_dict={"w": torch.ones(2)})
    assert torch.equal(RunStore(home).load_weights(rid)["w"], torch.ones(2))

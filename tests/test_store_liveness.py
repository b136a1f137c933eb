"""Which runs are still running when a store opens (distill_core.store): a run of a killed process, a
dead pid, a zombie or a pid now held by another process is marked interrupted, once; everything else
stored is kept.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from distill_core import ModelSpec, RunStore, SplitOptions, TrainConfig, load_dataset, split_dataset
from distill_core.runner import JobRunner
from distill_core.store import process_start
from distill_core.workflows import load_model, teacher_job

from conftest import ROOT


FAST = TrainConfig(epochs=1, batch_size=256, device="cpu")


def test_run_of_a_dead_process_is_marked_interrupted(tmp_path):
    store = RunStore(tmp_path)
    done = store.create_run("teacher", "fp", "ds", {})
    store.finish_run(done, "done", state_dict={"w": torch.ones(2)})
    code = ("import os, sys; sys.path.insert(0, %r); from distill_core.store import RunStore; "
            "RunStore(%r).create_run('teacher', 'fp', 'ds', {}); os._exit(0)") % (str(ROOT), str(tmp_path))
    subprocess.run([sys.executable, "-c", code], check=True)
    reopened = RunStore(tmp_path)
    assert len(reopened.interrupted) == 1
    recs = {r.id: r for r in reopened.runs()}
    assert recs[reopened.interrupted[0]].status == "interrupted"
    assert recs[done].status == "done" and torch.equal(reopened.load_weights(done)["w"], torch.ones(2))


def test_sigkill_during_training_leaves_a_store_that_opens_marks_the_run_and_keeps_the_rest(tiny_dir, tmp_path):
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "_kill_target.py"), str(home), str(tiny_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        done_line = proc.stdout.readline().split()
        training_line = proc.stdout.readline().split()
        assert done_line[:1] == ["DONE"] and training_line[:1] == ["TRAINING"], (done_line, proc.stderr.read())
        time.sleep(0.3)  # in the middle of a batch of epoch 2
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    done_id, done_sum, killed_id = done_line[1], float(done_line[2]), training_line[1]

    store = RunStore(home)  # the next start
    assert store.interrupted == [killed_id]
    killed = store.get(killed_id)
    assert killed.status == "interrupted" and "ended before it finished" in killed.error and killed.weights is None
    assert len(killed.history) >= 1 and killed.history[0]["epoch"] == 1.0  # epoch 1 as it was stored
    done = store.get(done_id)
    assert done.status == "done" and done.metrics["ndcg@10"] >= 0
    weights = store.load_weights(done_id)
    assert sum(float(v.double().sum()) for v in weights.values()) == done_sum  # bit for bit
    with sqlite3.connect(home / "runs.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [p.name for p in (home / "weights").iterdir() if p.suffix == ".pt"] == [done.weights]
    assert RunStore(home).interrupted == []  # marked once, not on every start

    ds = load_dataset(tiny_dir)  # a new run can start and finish in the same store
    runner = JobRunner()
    snap = runner.wait(runner.submit("teacher", teacher_job(ds, ModelSpec("mf", 8), FAST, store)), 60)
    assert snap.status == "done" and store.get(snap.result).status == "done"
    from distill_core import evaluate
    for rid in (snap.result, done_id):  # each reloads as the model it stored: it scores its stored test metrics
        split = split_dataset(ds, SplitOptions(**store.get(rid).config["split"]))
        assert evaluate(load_model(store, rid, ds), split, "test") == pytest.approx(store.get(rid).metrics)


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

"""Background jobs, the run store and the headless CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import torch

from distill_core.config import DistillConfig, ModelSpec, TrainConfig
from distill_core.errors import ConfigError, StoreError
from distill_core.jobs import distill_job, load_model, teacher_job
from distill_core.runner import JobRunner
from distill_core.store import RunStore, load_state_dict_file

from conftest import ROOT

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


def test_store_roundtrip_delete_and_refusals(tmp_path):
    store = RunStore(tmp_path)
    rid = store.create_run("teacher", "fp", "ds", {"a": 1})
    sd = {"w": torch.arange(4.0)}
    store.finish_run(rid, "done", metrics={"ndcg@10": 0.1}, state_dict=sd)
    assert torch.equal(store.load_weights(rid)["w"], sd["w"])
    assert not list((tmp_path / "weights").glob("*.tmp"))
    weights = tmp_path / "weights" / store.get(rid).weights
    store.delete(rid)
    assert not weights.exists() and store.runs() == []
    with pytest.raises(StoreError, match="no run"):
        store.get(rid)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file at all")
    with pytest.raises(StoreError, match="cannot be loaded"):
        load_state_dict_file(bad)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(StoreError, match="not a state dict"):
        load_state_dict_file(tmp_path / "list.pt")


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


def test_student_on_another_dataset_is_refused(tiny_ds, tmp_path):
    store = RunStore(tmp_path)
    rid = store.create_run("teacher", "another-fingerprint", "other", {"split": {}, "model": {}})
    with pytest.raises(ConfigError, match="not on the active dataset"):
        distill_job(tiny_ds, rid, ModelSpec("mf", 4), TINY_TRAIN, DistillConfig(), store)


def test_cli_run_writes_the_report(tiny_dir, tmp_path):
    out = tmp_path / "report.json"
    env = {**os.environ, "RECDISTILL_HOME": str(tmp_path / "home")}
    p = subprocess.run([sys.executable, "-m", "distill_core", "run", "--data", str(tiny_dir), "--epochs", "2",
                        "--teacher-dim", "16", "--student-dim", "2", "--patience", "7", "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "epoch" in p.stderr and "teacher" in p.stderr
    rep = json.loads(out.read_text())
    assert rep["dataset"]["users"] == 80 and rep["dataset"]["interactions"] > 0
    for role in ("teacher", "student_kd", "student_plain"):
        m = rep[role]
        assert set(m["metrics"]) >= {"hr@10", "ndcg@10", "recall@20", "mrr"}
        assert m["params"] > 0 and m["bytes"] >= 4 * m["params"] and m["score_ms_per_1k_users"] > 0
    assert rep["student_kd"]["params"] == rep["student_plain"]["params"] < rep["teacher"]["params"]
    assert rep["config"]["distill"]["alpha"] == pytest.approx(0.5)
    assert rep["config"]["teacher_train"]["patience"] == rep["config"]["student_train"]["patience"] == 7


def test_cli_bad_input_exits_2(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    p = subprocess.run([sys.executable, "-m", "distill_core", "run", "--data", str(empty), "--out",
                        str(tmp_path / "r.json")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2 and "empty.csv" in p.stderr
    p = subprocess.run([sys.executable, "-m", "distill_core", "run", "--alpha", "2", "--out", str(tmp_path / "r.json")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2 and "alpha" in p.stderr

"""Sweeps on Ray (distill_core.sweep_ray): a 2 x 2 grid on a local Ray (``ray.init(num_cpus=2)``, one session for
the module: Ray takes seconds to start) has exactly the local sweep's cell metrics; the driver writes what the
tasks return into the run store (weights included), a second sweep reuses every cell, a Stop leaves no cell
"running"; the CLI's ``--backend ray`` and, without the extra, the message saying what to install.

The tests that start Ray skip when the optional extra (requirements-dist.txt) is missing, except in CI
(``CI=true``, set by .ci/run), where they fail: CI installs the extra.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from distill_core import ModelSpec, RunStore, TrainConfig, sweep, sweep_ray, sweep_results
from distill_core.cli import main
from distill_core.data import split_dataset
from distill_core.distill import evaluate
from distill_core.runner import JobRunner
from distill_core.workflows import load_model, teacher_job

SPEC = sweep.SweepSpec((0.0, 0.5), (1.0, 2.0), ModelSpec("mf", 4), TrainConfig(epochs=2))
NUMBERS = ["val_ndcg@10", "ndcg@10", "hr@10", "final_kl"]


@pytest.fixture(scope="module")
def ray_local():
    if not sweep_ray.available():
        if os.environ.get("CI"):
            pytest.fail("CI installs requirements-dist.txt: Ray must be importable here")
        pytest.skip("the optional extra requirements-dist.txt (Ray) is not installed")
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _run(job) -> dict:
    runner = JobRunner()
    snap = runner.wait(runner.submit("sweep", job))
    assert snap.status == "done", snap.error
    return snap.result


@pytest.fixture
def two_stores(tiny_ds, tmp_path: Path) -> tuple[RunStore, RunStore, str]:
    """Two stores holding the same teacher run (the second a copy of the first), so that both backends train
    every cell with the same teacher id in the cells' configs."""
    a = RunStore(tmp_path / "a")
    runner = JobRunner()
    snap = runner.wait(runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("mf", 16), TrainConfig(epochs=2), a)))
    assert snap.status == "done", snap.error
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    return a, RunStore(tmp_path / "b"), snap.result


def test_a_grid_on_ray_has_the_local_sweeps_cell_metrics_and_stores_what_the_tasks_return(
        ray_local, tiny_ds, two_stores):
    local_store, ray_store, teacher = two_stores
    local = _run(sweep.sweep_job(tiny_ds, teacher, SPEC, local_store))
    on_ray = _run(sweep_ray.ray_sweep_job(tiny_ds, teacher, SPEC, ray_store, address="local"))
    assert len(local["trained"]) == len(on_ray["trained"]) == 8 and on_ray["failed"] == {}
    assert on_ray["backend"] == "ray" and on_ray["max_concurrent"] == 2

    for frame in (sweep_results.grid_frame, sweep_results.plain_frame):
        a, b = frame(local_store, tiny_ds, teacher, SPEC), frame(ray_store, tiny_ds, teacher, SPEC)
        assert (a["status"] == "done").all() and (b["status"] == "done").all()
        cols = [c for c in NUMBERS if c in a.columns]
        pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)  # identical, not close: same seeds
        assert a[cols].notna().all().all() and a["ndcg@10"].nunique() > 1  # real, different numbers
    # every epoch of every cell, not only the summary
    by_config = {json.dumps(r.config, sort_keys=True): r for r in local_store.runs() if r.kind != "teacher"}
    workers = set()
    for rec in ray_store.runs():
        if rec.kind == "teacher":
            continue
        twin = by_config[json.dumps(rec.config, sort_keys=True)]
        assert [{k: v for k, v in row.items() if k != "seconds"} for row in rec.history] == \
               [{k: v for k, v in row.items() if k != "seconds"} for row in twin.history]
        assert rec.metrics == twin.metrics and rec.parent == twin.parent
        workers.add(rec.info["worker"])
    assert all(int(w.rsplit(":", 1)[1]) != os.getpid() for w in workers)  # trained in Ray's worker processes
    # the weights the driver stored are the trained model: evaluated again here, they give the stored metric
    rid = on_ray["trained"][-1]
    split = split_dataset(tiny_ds)
    assert evaluate(load_model(ray_store, rid, tiny_ds), split, "test")["ndcg@10"] == pytest.approx(
        ray_store.get(rid).metrics["ndcg@10"], abs=1e-12)

    again = _run(sweep_ray.ray_sweep_job(tiny_ds, teacher, SPEC, ray_store, address="local"))
    assert again["trained"] == [] and sorted(again["reused"]) == sorted(on_ray["trained"])


def test_a_stopped_ray_sweep_leaves_no_cell_running_and_resumes(ray_local, tiny_ds, store, teacher):
    spec = sweep.SweepSpec((0.0, 0.5), (1.0,), ModelSpec("mf", 4), TrainConfig(epochs=400, patience=0))
    runner = JobRunner()
    job = runner.submit("sweep", sweep_ray.ray_sweep_job(tiny_ds, teacher, spec, store, max_concurrent=1))
    deadline = time.monotonic() + 60
    while not any(r.status == "running" for r in store.runs(kind="student_plain")):
        assert time.monotonic() < deadline, "no cell was submitted"
        time.sleep(0.05)
    runner.cancel(job)
    snap = runner.wait(job)
    assert snap.status == "cancelled"
    statuses = [r.status for r in store.runs() if r.kind != "teacher"]
    assert "running" not in statuses and "cancelled" in statuses and len(statuses) == 1  # one at a time
    fast = sweep.SweepSpec(spec.alphas, spec.temperatures, spec.student, TrainConfig(epochs=1))
    done = _run(sweep_ray.ray_sweep_job(tiny_ds, teacher, fast, store))
    assert len(done["trained"]) == 4


def test_the_cli_sends_a_sweep_to_ray(ray_local, tiny_dir: Path, tmp_path: Path, store, teacher, capsys):
    out = tmp_path / "sweep.json"
    assert main(["sweep", "--data", str(tiny_dir), "--alpha", "0.5", "--temperature", "2", "--student-dim", "4",
                 "--epochs", "1", "--teacher-run", teacher, "--backend", "ray", "--address", "local",
                 "--max-concurrent", "2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "on Ray (local" in err
    recs = [r for r in store.runs() if r.kind != "teacher"]
    assert len(recs) == 2 and all(r.status == "done" and r.info["backend"] == "ray" for r in recs)


def test_bad_ray_settings_and_a_missing_extra_exit_2_naming_what_to_do(tiny_dir: Path, tmp_path: Path, monkeypatch,
                                                                      capsys):
    base = ["sweep", "--data", str(tiny_dir), "--alpha", "0.5", "--temperature", "2", "--out", str(tmp_path / "s.json"),
            "--backend", "ray"]
    for extra, words in [(["--address", "nowhere"], "--address: 'nowhere' is not a Ray address"),
                         (["--address", "host:99999"], "--address"),
                         (["--max-concurrent", "0"], "--max-concurrent must be an integer >= 1")]:
        assert main(base + extra) == 2
        assert words in capsys.readouterr().err
    monkeypatch.setattr(sweep_ray, "available", lambda: False)
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "--backend ray needs Ray, which is not installed: pip install -r requirements-dist.txt" in err
    assert main(base[:-2] + ["--address", "local"]) == 2  # --address without --backend ray
    assert "--address and --max-concurrent need --backend ray" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()  # nothing was trained or written


# ----------------------------------------------------------------------------- the Sweep page
def _page(tiny_ds, address: str | None):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT
    from ui import registry, session

    registry.datasets().put(tiny_ds)
    at = AppTest.from_file(str(ROOT / "app_pages/sweep.py"), default_timeout=60)
    at.session_state[session.DATASET_KEY] = tiny_ds.fingerprint
    if address is not None:
        at.session_state[session.RAY_ADDRESS_KEY] = address
    at.run()
    for key, value in [("sweep_alphas", "0, 0.5"), ("sweep_temperatures", "1"), ("sweep_dim", 4), ("sweep_epochs", 2)]:
        (at.text_input if isinstance(value, str) else at.number_input)(key=key).set_value(value).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_sweep_page_sends_its_grid_to_the_sidebars_ray_address_and_fills_the_heatmap(ray_local, tiny_ds,
                                                                                          teacher):
    from ui import registry

    at = _page(tiny_ds, "local")
    assert any("Cells are sent to Ray at **local**" in c.value for c in at.caption)
    at.button(key="sweep_start").click().run()
    try:
        deadline = time.monotonic() + 90
        while {m.label: m.value for m in at.metric}.get("Cells finished") != "2 / 2":
            assert time.monotonic() < deadline, "the Ray sweep did not fill the heatmap"
            time.sleep(0.3)
            at.run()
            assert not at.exception, [e.value for e in at.exception]
    finally:
        registry.runner().shutdown()
    recs = [r for r in RunStore().runs() if r.kind != "teacher"]
    assert len(recs) == 4 and all(r.status == "done" and r.info["backend"] == "ray" for r in recs)


def test_the_sweep_page_says_what_to_install_when_an_address_is_set_without_ray(tiny_ds, teacher, monkeypatch):
    monkeypatch.setattr(sweep_ray, "available", lambda: False)
    at = _page(tiny_ds, "local")
    assert "Ray is not installed: pip install -r requirements-dist.txt" in at.warning[0].value
    assert at.button(key="sweep_start").disabled
    off = _page(tiny_ds, None)  # the default: no address, the cells train here
    assert not off.warning and not off.button(key="sweep_start").disabled

"""Comparing model sizes: the frame of stored models, the Pareto frontier, the size ladder, the page."""
from __future__ import annotations

import base64
import itertools
import json
import os

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from distill_core import DistillConfig, ModelSpec, RunStore, TrainConfig, compare, load_sample
from distill_core.workflows import ladder_job, teacher_job
from distill_core.runner import JobRunner
from ui import registry

from conftest import ROOT

ONE = TrainConfig(epochs=1, lr=5e-3)


def test_pareto_mask_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.integers(1, 6, 12).astype(float)  # ties in both coordinates on purpose
        q = rng.integers(0, 5, 12).astype(float)
        got = compare.pareto_mask(p, q)
        want = [not any((p[j] <= p[i] and q[j] >= q[i] and (p[j] < p[i] or q[j] > q[i])) for j in range(12))
                for i in range(12)]
        assert got.tolist() == want
    # the frontier of a staircase is the whole staircase; a dominated point is off it
    assert compare.pareto_mask([1, 2, 3, 3], [0.1, 0.2, 0.3, 0.25]).tolist() == [True, True, True, False]
    assert compare.pareto_mask([1, np.nan], [0.5, 0.9]).tolist() == [True, False]


def _values(arr) -> np.ndarray:
    """A plotly array from the figure's JSON: a list, or (plotly 6+) typed base64 ``{dtype, bdata}``."""
    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=arr["dtype"])
    return np.asarray(arr)


def _run_job(fn) -> object:
    runner = JobRunner()
    try:
        job = runner.submit("test", fn)
        snap = runner.wait(job, timeout=300)
    finally:
        runner.shutdown()
    assert snap.status == "done", snap.error
    return snap


def test_ladder_trains_each_size_with_its_plain_twin_and_reuses_plains(tiny_ds) -> None:
    store = RunStore(os.environ["RECDISTILL_HOME"])
    t_snap = _run_job(teacher_job(tiny_ds, ModelSpec("mf", 16), ONE, store))
    teacher = t_snap.result
    snap = _run_job(ladder_job(tiny_ds, teacher, "mf", (4, 2), ONE, DistillConfig(0.5, 2.0), store))
    assert sorted(snap.result) == [2, 4]
    kd = store.runs(kind="student_kd", status="done")
    plain = store.runs(kind="student_plain", status="done")
    assert sorted(r.config["model"]["dim"] for r in kd) == [2, 4]
    assert sorted(r.config["model"]["dim"] for r in plain) == [2, 4]
    assert all(r.parent == teacher for r in kd)
    # a second ladder with other distillation settings trains new students but reuses both plains
    _run_job(ladder_job(tiny_ds, teacher, "mf", (2, 4), ONE, DistillConfig(0.2, 4.0), store))
    assert len(store.runs(kind="student_kd", status="done")) == 4
    assert len(store.runs(kind="student_plain", status="done")) == 2
    with pytest.raises(Exception, match="dim"):
        ladder_job(tiny_ds, teacher, "mf", (), ONE, DistillConfig(), store)

    frame = compare.models_frame(store, tiny_ds.fingerprint)
    assert len(frame) == 7 and set(frame["role"]) == {"teacher", "distilled student", "plain student"}
    t_rec = store.get(teacher)
    for _, row in frame.iterrows():
        rec = store.get(row["run"])
        assert row["params"] == rec.info["params"]
        assert row["bytes"] == (store.weights_dir / rec.weights).stat().st_size
        assert row["NDCG@10"] == pytest.approx(rec.metrics["ndcg@10"])
        if rec.kind == "teacher":
            assert row["retention NDCG@10 %"] is None or np.isnan(row["retention NDCG@10 %"])
        else:
            assert row["retention NDCG@10 %"] == pytest.approx(100 * rec.metrics["ndcg@10"] / t_rec.metrics["ndcg@10"])
    # parameters of mf: (users + items) * dim + one bias per item, counted by hand
    for _, row in frame[frame["family"] == "mf"].iterrows():
        dim = row["dim"]
        assert row["params"] == (tiny_ds.n_users + tiny_ds.n_items) * dim + tiny_ds.n_items


def test_measure_latency_and_update_info(tiny_ds, tiny_split) -> None:
    from distill_core.models import build_model
    m = compare.measure_latency(build_model(ModelSpec("mf", 8), tiny_split), repeats=3)
    assert m["ms_per_1k_users"] > 0 and m["device"].startswith("cpu")
    store = RunStore(os.environ["RECDISTILL_HOME"])
    rid = store.create_run("teacher", tiny_ds.fingerprint, "tiny", {"model": {}})
    store.finish_run(rid, "done", info={"params": 5})
    store.update_info(rid, {"score_ms_per_1k_users": 1.5})
    assert store.get(rid).info == {"params": 5, "score_ms_per_1k_users": 1.5}


def test_compare_page_ladder_fills_the_chart() -> None:
    ds = load_sample()
    store = RunStore(os.environ["RECDISTILL_HOME"])
    _run_job(teacher_job(ds, ModelSpec("mf", 16), ONE, store))

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/compare.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.multiselect(key="ladder_dims").set_value([2, 4])
    at.number_input(key="ladder_epochs").set_value(1)
    at.button(key="ladder_train").click()
    at.run()
    try:
        for _ in itertools.count():
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            snap = registry.runner().snapshots()
            if snap and not any(s.active for s in snap):
                break
            assert _ < 400, "the ladder did not finish"
            import time
            time.sleep(0.3)
        at.run()
        charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        points = sum(sum(v is not None for v in _values(tr["x"])) for tr in charts[0]["data"]
                     if tr.get("mode") != "lines")  # legend-only entries have x = [None]
        assert len(charts) == 1, [c["layout"]["title"] for c in charts]
        assert points == 5  # the teacher, two distilled students, two plain students
        assert any(b.proto.label == "Download CSV" for b in at.get("download_button"))
        table = at.dataframe[0].value
        assert sorted(table["role"].tolist()) == sorted(["teacher"] + ["distilled student"] * 2 + ["plain student"] * 2)
        before = {r.id: r.info["score_ms_per_1k_users"] for r in store.runs()}
        at.button(key="compare_latency").click()
        at.run()
        after = {r.id: r.info for r in store.runs()}
        assert all(after[k]["latency_repeats"] == 7 and after[k]["score_ms_per_1k_users"] > 0 for k in before)
    finally:
        registry.runner().shutdown()

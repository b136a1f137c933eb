"""Run history (distill_core.history): the JSON bundle, deletion without orphan files, filters and curves."""
from __future__ import annotations

import io
import json

import pytest
import torch

from distill_core import RunStore, SplitOptions, export, history, split_dataset
from distill_core.errors import StoreError
from distill_core.runs import distillations
from distill_core.store import RunRecord
from distill_core.workflows import load_model

from _helpers import files, make_runs

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def test_bundle_holds_config_history_metrics_and_info(tiny_ds):
    store = RunStore()
    ids = make_runs(tiny_ds, store)
    rec = store.get(ids["student_kd"])
    b = json.loads(history.bundle_json(rec))
    assert b["format"] == "recdistill-run/1" and b["id"] == rec.id and b["kind"] == "student_kd"
    assert b["teacher"] == ids["teacher"] and b["dataset"] == {"name": "tiny", "fingerprint": tiny_ds.fingerprint}
    assert b["config"]["distill"]["alpha"] == 0.5 and b["config"]["teacher"] == ids["teacher"]
    assert (b["config"]["model"]["family"], b["config"]["model"]["dim"]) == ("mf", 4)
    assert [h["epoch"] for h in b["history"]] == [1.0, 2.0] and b["history"] == rec.history
    assert b["metrics"] == rec.metrics and 0 <= b["metrics"]["ndcg@10"] <= 1
    assert b["info"]["params"] == (tiny_ds.n_users + tiny_ds.n_items) * 4 + tiny_ds.n_items
    assert b["started"] < b["ended"] and b["started"].endswith("+00:00")

    got = torch.load(io.BytesIO(history.weights_bytes(store, rec.id)), weights_only=True)
    want = store.load_weights(rec.id)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)


def test_bundle_is_strict_json_even_with_nan():
    rec = RunRecord(id="x", kind="teacher", dataset="f", dataset_name="d", parent=None, config={}, status="failed",
                    started=0.0, ended=None, history=[{"epoch": 1.0, "total": float("nan")}],
                    metrics={"ndcg@10": float("inf")}, info={}, weights=None, error="boom")
    b = json.loads(history.bundle_json(rec))
    assert b["history"] == [{"epoch": 1.0, "total": None}] and b["metrics"] == {"ndcg@10": None}
    with pytest.raises(StoreError, match="no run"):
        history.weights_bytes(RunStore(), "x")


def test_deletion_removes_weights_and_leaves_no_orphans(tiny_ds):
    store = RunStore()
    ids = make_runs(tiny_ds, store)
    w = {k: store.get(v).weights for k, v in ids.items()}
    assert files(store) == set(w.values())

    running = store.create_run("teacher", tiny_ds.fingerprint, "tiny", {})
    with pytest.raises(StoreError, match="still training"):
        history.delete_run(store, running)
    learning = store.create_run("student_kd", tiny_ds.fingerprint, "tiny", {}, parent=ids["teacher"])
    with pytest.raises(StoreError, match="being distilled from"):
        history.delete_run(store, ids["teacher"])
    assert store.find(running) is not None and store.find(ids["teacher"]) is not None
    store.finish_run(running, "cancelled")
    store.finish_run(learning, "cancelled")

    # the teacher alone: its distilled student stays, loads and exports, but is no longer a pair
    assert history.delete_run(store, ids["teacher"]) == [ids["teacher"]]
    assert files(store) == {w["student_kd"], w["student_plain"]}
    assert store.find(ids["teacher"]) is None and distillations(store, tiny_ds.fingerprint) == []
    kd = load_model(store, ids["student_kd"], tiny_ds)
    kd_split = split_dataset(tiny_ds, SplitOptions(**store.get(ids["student_kd"]).config["split"]))
    assert export.export_torchscript(kd, kd_split, {}, n_check=20).check.ok
    table = history.runs_frame(store.runs(), known={r.id for r in store.runs()})
    assert table.set_index("run").loc[ids["student_kd"], "teacher"] == f"{ids['teacher']} (deleted)"

    # a second teacher with its students, deleted together
    more = make_runs(tiny_ds, store, teacher_dim=8)
    before = files(store)
    gone = history.delete_run(store, more["teacher"], with_students=True)
    assert set(gone) == {more["teacher"], more["student_kd"]}  # the plain twin has no teacher
    assert before - files(store) == {f"{rid}.pt" for rid in gone}
    referenced = {r.weights for r in store.runs() if r.weights}
    assert files(store) == referenced  # every file on disk belongs to a run, and vice versa
    with pytest.raises(StoreError, match="no run"):
        history.delete_run(store, more["teacher"])


def test_filters_and_curves(tiny_ds):
    store = RunStore()
    ids = make_runs(tiny_ds, store)
    runs = store.runs()
    assert [r.id for r in history.filter_runs(runs, kinds=["teacher"])] == [ids["teacher"]]
    assert [r.id for r in history.filter_runs(runs, text="ALPHA 0.5")] == [ids["student_kd"]]
    assert history.filter_runs(runs, statuses=["failed"]) == []
    assert len(history.filter_runs(runs, datasets=[tiny_ds.fingerprint], statuses=["done"])) == 3
    assert history.filter_runs(runs, datasets=["0" * 16]) == []
    assert history.filter_runs(runs, text="mf dim 4 plain") == [store.get(ids["student_plain"])]

    curves = history.curves_frame([store.get(ids["teacher"]), store.get(ids["student_kd"])])
    for rid in (ids["teacher"], ids["student_kd"]):
        rec = store.get(rid)
        got = curves[(curves["run"] == rid) & (curves["series"] == "val_ndcg@10")]
        assert got["epoch"].tolist() == [1, 2] and got["value"].tolist() == [h["val_ndcg@10"] for h in rec.history]
    assert set(curves["series"]) == set(history.CURVE_COLUMNS)


def test_the_legend_and_the_config_summary_name_a_method_other_than_hinton_kd():
    def rec(kind: str, distill: dict | None) -> RunRecord:
        return RunRecord(id="run-abcdef123456", kind=kind, dataset="d", dataset_name="d", parent=None,
                         config={"model": {"family": "mf", "dim": 6}, "distill": distill,
                                 "train": {"epochs": 5, "lr": 0.005, "batch_size": 1024, "seed": 0}},
                         status="done", started=0.0, ended=1.0, history=[], metrics={}, info={}, weights=None,
                         error=None)
    rrd = rec("student_kd", {"method": "rrd", "alpha": 0.5, "temperature": 2.0, "soft_labels": "current"})
    old = rec("student_kd", {"alpha": 0.5, "temperature": 2.0, "soft_labels": "current"})  # stored before methods
    assert history.short_label(rrd) == "Distilled student · rrd · mf dim 6 · …123456"
    assert history.short_label(old) == "Distilled student · mf dim 6 · …123456"
    assert history.short_label(rec("student_plain", None)) == "Plain student · mf dim 6 · …123456"
    assert history.config_summary(rrd).startswith("rrd, alpha 0.5, soft labels current")  # no T: rrd does not read it
    assert history.config_summary(old).startswith("alpha 0.5, T 2, soft labels current")

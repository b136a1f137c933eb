"""The sweep (distill_core.sweep): the alpha x temperature grid and the plain student's as many lr x weight-decay
cells, resumption through the store (cells and teacher) and the grid's numbers. The CLI's sweep is tested in
test_cli.py, the page in test_page_sweep.py; the fixtures ``store``, ``teacher`` and ``train_calls`` are in
conftest.py.

Everything runs on the tiny generated dataset (80 users, 120 items) with an mf teacher of dim 16 and
students of dim 4 trained for 1-2 epochs.
"""
from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from distill_core import ConfigError, ModelSpec, RunStore, TrainConfig, sweep, sweep_results
from distill_core.config import DataOptions, SplitOptions
from distill_core.data import build_dataset
from distill_core.data.loaders import load_raw
from distill_core.runner import JobRunner
from distill_core.tuning import plain_ladder
from distill_core.workflows import load_model
from distill_core.workflows import record as record_module


STUDENT, EPOCHS = ModelSpec("mf", 4), TrainConfig(epochs=2)
LR = TrainConfig().lr  # 5e-3: the ladder's centre in these tests


def run_sweep(ds, teacher: str, spec: sweep.SweepSpec, store: RunStore) -> dict:
    runner = JobRunner()
    snap = runner.wait(runner.submit("sweep", sweep.sweep_job(ds, teacher, spec, store)))
    assert snap.status == "done", snap.error
    return snap.result


# ----------------------------------------------------------------------------- grids
def test_grids_are_parsed_sorted_and_refused_with_the_field_named():
    assert sweep.parse_grid("1, 0.25;0.5 0.25", "alpha") == (0.25, 0.5, 1.0)
    assert sweep.parse_grid([8, 1, 2], "temperature") == (1.0, 2.0, 8.0)
    for text, kind, words in [("0, 1.5", "alpha", "alpha grid: alpha 1.5 is outside [0, 1]"),
                              ("-0.1", "alpha", "outside [0, 1]"), ("1, 0", "temperature", "temperature 0 must be > 0"),
                              ("2, -1", "temperature", "must be > 0"), (" , ", "alpha", "alpha grid is empty"),
                              ("0.5, x", "alpha", "'x' is not a number"), ("nan", "temperature", "not a finite number")]:
        with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
            sweep.parse_grid(text, kind)
    with pytest.raises(ConfigError, match="--alpha"):
        sweep.parse_grid("2", "alpha", "--alpha")
    with pytest.raises(ConfigError, match="at most 100"):
        sweep.SweepSpec(tuple(np.linspace(0, 1, 11)), tuple(range(1, 11)))
    assert [(d.alpha, d.temperature) for d in sweep.SweepSpec((1, 0), (2,)).cells()] == [(0.0, 2.0), (1.0, 2.0)]


def test_the_plain_ladder_gives_as_many_distinct_well_spread_cells_starting_at_the_students_own():
    full = plain_ladder(16, 0.004)
    assert set(full) == {(lr, wd) for lr in (0.002, 0.004, 0.008, 0.016) for wd in (0.0, 1e-6, 1e-5, 1e-4)}
    assert plain_ladder(4, 0.004) == ((0.004, 0.0), (0.008, 1e-5), (0.004, 1e-5), (0.008, 0.0))
    assert plain_ladder(1, 0.004) == ((0.004, 0.0),) and plain_ladder(2, 0.004) == ((0.004, 0.0), (0.008, 0.0))
    assert plain_ladder(5, 0.004) == ((0.004, 0.0), (0.008, 1e-5), (0.002, 0.0), (0.004, 1e-5), (0.008, 0.0))
    assert plain_ladder(3, 0.004, weight_decay=1e-3)[0] == (0.004, 1e-3)  # the student's own settings first
    for n in range(1, 101):
        cells = plain_ladder(n, 5.0)  # a high rate: the ladder never leaves TrainConfig's (0, 10]
        rates, decays = sorted({lr for lr, _ in cells}), {wd for _, wd in cells}
        a = math.ceil(math.sqrt(n))
        assert len(cells) == len(set(cells)) == n and cells[0] == (5.0, 0.0) and max(rates) <= 10
        assert len(rates) == a and len(decays) == math.ceil(n / a)  # every rate and decay of the block is used
        per_rate = [sum(lr == r for lr, _ in cells) for r in rates]
        assert max(per_rate) - min(per_rate) <= 1  # and the rates evenly
        TrainConfig(lr=max(rates), weight_decay=max(decays))  # valid settings
    for bad in (0, 101, 2.0, True):
        with pytest.raises(ConfigError, match="plain cells"):
            plain_ladder(bad, 0.004)
    spec = sweep.SweepSpec((0.0, 0.5, 1.0), (1.0, 4.0), STUDENT, EPOCHS)
    assert [(t.lr, t.weight_decay) for t in spec.plain_cells()] == list(plain_ladder(6, LR))
    assert all(t.epochs == 2 and t.patience == EPOCHS.patience for t in spec.plain_cells())
    assert spec.budget() == ("distilled: 6 cells over alpha × T; plain: 6 cells over learning rate × weight decay; "
                             "both chosen on validation NDCG@10")


# ----------------------------------------------------------------------------- resumption
def test_a_sweep_run_twice_trains_nothing_and_a_grown_grid_trains_only_its_new_cells(tiny_ds, store, teacher,
                                                                                     train_calls):
    spec = sweep.SweepSpec((0.0, 0.5), (1.0, 2.0), STUDENT, EPOCHS)
    first = run_sweep(tiny_ds, teacher, spec, store)
    # as many plain cells as distilled ones (the ladder of 4 around lr 5e-3), trained alternately
    assert train_calls == [("student_plain", LR, 0.0), ("student_kd", 0.0, 1.0), ("student_plain", 2 * LR, 1e-5),
                           ("student_kd", 0.0, 2.0), ("student_plain", LR, 1e-5), ("student_kd", 0.5, 1.0),
                           ("student_plain", 2 * LR, 0.0), ("student_kd", 0.5, 2.0)]
    assert len(first["trained"]) == 8 and first["reused"] == [] and first["failed"] == {}
    kd_ids = {r.id for r in store.runs(kind="student_kd")}
    plain_ids = {r.id for r in store.runs(kind="student_plain")}
    assert len(kd_ids) == len(plain_ids) == 4 and set(first["trained"]) == kd_ids | plain_ids
    assert all(store.get(i).parent == teacher for i in kd_ids)
    assert first["student_plain"] == first["trained"][0]  # the student's own settings: every cell's twin
    assert store.get(first["student_plain"]).config["train"] == {**asdict(EPOCHS), "weight_decay": 0.0}

    train_calls.clear()
    again = run_sweep(tiny_ds, teacher, spec, store)
    assert train_calls == [] and again["trained"] == []  # neither a distilled nor a plain cell
    assert set(again["reused"]) == kd_ids | plain_ids and again["student_plain"] == first["student_plain"]
    assert len(store.runs()) == 1 + 4 + 4  # teacher, plain cells, distilled cells: no new run at all

    grown = sweep.SweepSpec((0.0, 0.5, 1.0), (1.0, 2.0, 4.0), STUDENT, EPOCHS)
    train_calls.clear()
    third = run_sweep(tiny_ds, teacher, grown, store)
    # 9 cells: lr x {1, 2, 1/2} x weight decay {0, 1e-5, 1e-6}, of which the 4 above are stored
    assert sorted(train_calls) == sorted([("student_kd", 0.0, 4.0), ("student_kd", 0.5, 4.0), ("student_kd", 1.0, 1.0),
                                          ("student_kd", 1.0, 2.0), ("student_kd", 1.0, 4.0),
                                          ("student_plain", LR / 2, 0.0), ("student_plain", LR / 2, 1e-6),
                                          ("student_plain", LR / 2, 1e-5), ("student_plain", LR, 1e-6),
                                          ("student_plain", 2 * LR, 1e-6)])
    assert set(third["reused"]) == kd_ids | plain_ids and len(third["trained"]) == 10
    assert set(sweep_results.grid_frame(store, tiny_ds, teacher, grown)["status"]) == {"done"}
    assert set(sweep_results.plain_frame(store, tiny_ds, teacher, grown)["status"]) == {"done"}

    other = sweep.SweepSpec((0.5,), (1.0,), STUDENT, TrainConfig(epochs=1))  # other settings: not the same cell
    train_calls.clear()
    run_sweep(tiny_ds, teacher, other, store)
    assert train_calls == [("student_plain", LR, 0.0), ("student_kd", 0.5, 1.0)]


def test_a_stopped_sweep_keeps_its_finished_cells_and_resumes_with_the_rest(tiny_ds, store, teacher, monkeypatch):
    calls, real = [], record_module.train_model

    def stop_at_third(split, spec, train, **kw):
        d = kw.get("distill")
        calls.append((d.alpha, d.temperature) if d else (train.lr, train.weight_decay))
        if len(calls) == 3:  # plain 1, cell 1, then Stop is pressed as plain cell 2 starts
            kw["control"].should_stop = True
        return real(split, spec, train, **kw)
    monkeypatch.setattr(record_module, "train_model", stop_at_third)
    spec = sweep.SweepSpec((0.0, 0.5), (2.0,), STUDENT, EPOCHS)
    runner = JobRunner()
    snap = runner.wait(runner.submit("sweep", sweep.sweep_job(tiny_ds, teacher, spec, store)))
    assert snap.status == "cancelled" and calls == [(LR, 0.0), (0.0, 2.0), (2 * LR, 0.0)]
    assert sweep_results.grid_frame(store, tiny_ds, teacher, spec)["status"].tolist() == ["done", sweep.NOT_TRAINED]
    assert sweep_results.plain_frame(store, tiny_ds, teacher, spec)["status"].tolist() == ["done", "cancelled"]

    calls.clear()
    resumed = run_sweep(tiny_ds, teacher, spec, store)
    assert calls == [(2 * LR, 0.0), (0.5, 2.0)]  # only the stopped plain cell and the one never started
    assert len(resumed["reused"]) == 2 and len(resumed["trained"]) == 2
    assert sweep_results.grid_frame(store, tiny_ds, teacher, spec)["status"].tolist() == ["done", "done"]
    assert sweep_results.plain_frame(store, tiny_ds, teacher, spec)["status"].tolist() == ["done", "done"]


# ----------------------------------------------------------------------------- the stored teacher
def test_a_stored_teacher_is_found_only_for_the_same_config_dataset_and_seed_with_its_weights(tiny_ds, tiny_dir,
                                                                                            store, teacher):
    spec, train = ModelSpec("mf", 16), TrainConfig(epochs=2)  # the teacher fixture's
    assert sweep.find_teacher(store, tiny_ds, spec, train) == teacher
    assert sweep.find_teacher(store, tiny_ds, ModelSpec("mf", 8), train) is None
    assert sweep.find_teacher(store, tiny_ds, spec, TrainConfig(epochs=2, seed=1)) is None
    assert sweep.find_teacher(store, tiny_ds, spec, TrainConfig(epochs=3)) is None
    assert sweep.find_teacher(store, tiny_ds, spec, train, SplitOptions(seed=1)) is None
    filtered = build_dataset(load_raw(tiny_dir), DataOptions(rating_threshold=3.0), name="tiny")  # other options
    assert filtered.fingerprint != tiny_ds.fingerprint
    assert sweep.find_teacher(store, filtered, spec, train) is None
    assert sweep.find_teacher(RunStore(store.home), tiny_ds, spec, train) == teacher  # another process, same store
    store.weights_path(teacher).unlink()  # a teacher without its weight file cannot be used
    assert sweep.find_teacher(store, tiny_ds, spec, train) is None


# ----------------------------------------------------------------------------- the grid's numbers
def ndcg10_by_hand(model, split) -> float:
    """Leave-one-out test NDCG@10 with numpy: rank of the held-out item among the user's unseen items."""
    tp, ti = split.held_out("test")
    sp, si = split.seen("test")
    users = split.eval_users("test")
    with torch.no_grad():
        scores = model.score_all(torch.as_tensor(users)).double().numpy()
    gains = []
    for row, u in zip(scores, users):
        row = row.copy()
        row[si[sp[u]:sp[u + 1]]] = -np.inf
        rank = 1 + int((row > row[ti[tp[u]]]).sum())
        gains.append(1 / np.log2(rank + 1) if rank <= 10 else 0.0)
    return float(np.mean(gains))


def test_the_grid_reports_each_cells_stored_run_and_its_numbers(tiny_ds, tiny_split, store, teacher):
    spec = sweep.SweepSpec((0.0, 1.0), (1.0, 4.0), STUDENT, EPOCHS)
    empty = sweep_results.grid_frame(store, tiny_ds, teacher, spec)
    assert empty["status"].tolist() == [sweep.NOT_TRAINED] * 4 and empty["val_ndcg@10"].isna().all()
    assert sweep_results.best_cell(empty) is None
    run_sweep(tiny_ds, teacher, spec, store)
    grid = sweep_results.grid_frame(store, tiny_ds, teacher, spec)
    assert list(grid.columns) == sweep.COLUMNS
    assert list(zip(grid["alpha"], grid["temperature"])) == [(0.0, 1.0), (0.0, 4.0), (1.0, 1.0), (1.0, 4.0)]
    for row in grid.to_dict("records"):
        rec = store.get(row["run"])
        assert rec.kind == "student_kd" and rec.status == "done" and rec.parent == teacher
        assert (rec.config["distill"]["alpha"], rec.config["distill"]["temperature"]) == (row["alpha"],
                                                                                         row["temperature"])
        assert row["val_ndcg@10"] == max(h["val_ndcg@10"] for h in rec.history)
        assert (row["ndcg@10"], row["hr@10"]) == (rec.metrics["ndcg@10"], rec.metrics["hr@10"])
        assert row["final_kl"] == rec.history[-1]["kl"]
    # the test NDCG@10 stored for a cell is that model's, recomputed here by hand from its weights
    cell = grid.iloc[0]
    assert cell["ndcg@10"] == pytest.approx(ndcg10_by_hand(load_model(store, cell["run"], tiny_ds), tiny_split),
                                            abs=1e-9)
    # alpha = 1 drops the KL term: those cells are the plain student, trained again (same seed, same numbers)
    plain = sweep_results.plain_record(store, tiny_ds, teacher, spec)
    for row in grid[grid["alpha"] == 1.0].to_dict("records"):
        assert row["ndcg@10"] == pytest.approx(plain.metrics["ndcg@10"], abs=1e-12) and row["final_kl"] == 0.0
    assert (grid.loc[grid["alpha"] == 0.0, "final_kl"] > 0).all()
    best = sweep_results.best_cell(grid)
    assert best["val_ndcg@10"] == grid["val_ndcg@10"].max()
    assert best["run"] == grid.loc[grid["val_ndcg@10"].idxmax(), "run"]

    # the plain side: as many cells, over lr x weight decay, each its own stored run
    pf = sweep_results.plain_frame(store, tiny_ds, teacher, spec)
    assert list(pf.columns) == sweep.PLAIN_COLUMNS and len(pf) == len(grid) == 4
    assert list(zip(pf["lr"], pf["weight_decay"])) == [(LR, 0.0), (2 * LR, 1e-5), (LR, 1e-5), (2 * LR, 0.0)]
    recs = [store.get(r) for r in pf["run"]]
    for row, rec in zip(pf.to_dict("records"), recs):
        assert rec.kind == "student_plain" and rec.status == "done" and rec.config["distill"] is None
        assert (rec.config["train"]["lr"], rec.config["train"]["weight_decay"]) == (row["lr"], row["weight_decay"])
        assert row["val_ndcg@10"] == max(h["val_ndcg@10"] for h in rec.history)
        assert (row["ndcg@10"], row["hr@10"]) == (rec.metrics["ndcg@10"], rec.metrics["hr@10"])
    assert recs[0].id == plain.id  # the first plain cell is the student's own settings
    # the tuned baseline is the validation argmax (first of equals), read here from the runs' histories
    vals = [max(h["val_ndcg@10"] for h in r.history) for r in recs]
    assert len(set(vals)) > 1, "every plain cell scored the same: the choice would not be tested"
    chosen = recs[max(range(len(recs)), key=lambda k: (vals[k], -k))]
    kd_vals = {r: max(h["val_ndcg@10"] for h in store.get(r).history) for r in grid["run"]}
    kd_chosen = store.get(max(kd_vals, key=kd_vals.get))
    cmp = sweep_results.comparison(grid, pf)
    assert cmp["best_plain"]["run"] == chosen.id and cmp["best"]["run"] == kd_chosen.id
    assert cmp["gain_ndcg@10"] == pytest.approx(kd_chosen.metrics["ndcg@10"] / chosen.metrics["ndcg@10"], rel=1e-12)
    assert cmp["finished"] == {"distilled": 4, "plain": 4, "of": 4}
    report = sweep_results.sweep_report(store, tiny_ds, teacher, spec)
    assert report["best_plain"]["run"] == chosen.id and len(report["plain_cells"]) == 4
    assert report["budget"] == ("distilled: 4 cells over alpha × T; plain: 4 cells over learning rate × weight "
                                "decay; both chosen on validation NDCG@10")


def test_a_teacher_of_another_kind_is_refused(tiny_ds, store, teacher):
    plain = run_sweep(tiny_ds, teacher, sweep.SweepSpec((0.5,), (2.0,), STUDENT, TrainConfig(epochs=1)), store)
    with pytest.raises(ConfigError, match="not a teacher"):
        sweep.sweep_job(tiny_ds, plain["student_plain"], sweep.SweepSpec((0.5,), (2.0,)), store)

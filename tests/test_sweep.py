"""The sweep: the alpha x temperature grid and the plain student's as many lr x weight-decay cells,
resumption through the store (cells and teacher), the grid's numbers, the CLI and the page.

Everything runs on the tiny generated dataset (80 users, 120 items) with an mf teacher of dim 16 and
students of dim 4 trained for 1-2 epochs.
"""
from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from distill_core import ConfigError, ModelSpec, RunStore, TrainConfig, sweep
from distill_core import cli
from distill_core.jobs import load_model, teacher_job
from distill_core.runner import JobRunner
from distill_core.data import build_dataset
from distill_core.data.loaders import load_raw
from distill_core.models import MF
from distill_core.config import DataOptions, SplitOptions
from distill_core.tuning import plain_ladder
from distill_core import jobs as jobs_module
from ui import state

from conftest import ROOT

STUDENT, EPOCHS = ModelSpec("mf", 4), TrainConfig(epochs=2)
LR = TrainConfig().lr  # 5e-3: the ladder's centre in these tests


@pytest.fixture
def store() -> RunStore:
    return RunStore()  # $RECDISTILL_HOME: a private folder per test (conftest)


@pytest.fixture
def teacher(tiny_ds, store) -> str:
    runner = JobRunner()
    snap = runner.wait(runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("mf", 16), TrainConfig(epochs=2),
                                                            store)))
    assert snap.status == "done", snap.error
    return snap.result


@pytest.fixture
def train_calls(monkeypatch) -> list[tuple]:
    """Every call of the trainer behind the sweep and the teacher job, as (role, alpha, T) for a distilled
    student and (role, lr, weight decay) otherwise; the real training still runs."""
    calls, real = [], jobs_module.train_model

    def counting(split, spec, train, *, role="teacher", distill=None, **kw):
        calls.append((role, distill.alpha, distill.temperature) if distill else (role, train.lr, train.weight_decay))
        return real(split, spec, train, role=role, distill=distill, **kw)
    monkeypatch.setattr(jobs_module, "train_model", counting)
    return calls


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
    assert set(sweep.grid_frame(store, tiny_ds, teacher, grown)["status"]) == {"done"}
    assert set(sweep.plain_frame(store, tiny_ds, teacher, grown)["status"]) == {"done"}

    other = sweep.SweepSpec((0.5,), (1.0,), STUDENT, TrainConfig(epochs=1))  # other settings: not the same cell
    train_calls.clear()
    run_sweep(tiny_ds, teacher, other, store)
    assert train_calls == [("student_plain", LR, 0.0), ("student_kd", 0.5, 1.0)]


def test_a_stopped_sweep_keeps_its_finished_cells_and_resumes_with_the_rest(tiny_ds, store, teacher, monkeypatch):
    calls, real = [], jobs_module.train_model

    def stop_at_third(split, spec, train, **kw):
        d = kw.get("distill")
        calls.append((d.alpha, d.temperature) if d else (train.lr, train.weight_decay))
        if len(calls) == 3:  # plain 1, cell 1, then Stop is pressed as plain cell 2 starts
            kw["control"].should_stop = True
        return real(split, spec, train, **kw)
    monkeypatch.setattr(jobs_module, "train_model", stop_at_third)
    spec = sweep.SweepSpec((0.0, 0.5), (2.0,), STUDENT, EPOCHS)
    runner = JobRunner()
    snap = runner.wait(runner.submit("sweep", sweep.sweep_job(tiny_ds, teacher, spec, store)))
    assert snap.status == "cancelled" and calls == [(LR, 0.0), (0.0, 2.0), (2 * LR, 0.0)]
    assert sweep.grid_frame(store, tiny_ds, teacher, spec)["status"].tolist() == ["done", sweep.NOT_TRAINED]
    assert sweep.plain_frame(store, tiny_ds, teacher, spec)["status"].tolist() == ["done", "cancelled"]

    calls.clear()
    resumed = run_sweep(tiny_ds, teacher, spec, store)
    assert calls == [(2 * LR, 0.0), (0.5, 2.0)]  # only the stopped plain cell and the one never started
    assert len(resumed["reused"]) == 2 and len(resumed["trained"]) == 2
    assert sweep.grid_frame(store, tiny_ds, teacher, spec)["status"].tolist() == ["done", "done"]
    assert sweep.plain_frame(store, tiny_ds, teacher, spec)["status"].tolist() == ["done", "done"]


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
    empty = sweep.grid_frame(store, tiny_ds, teacher, spec)
    assert empty["status"].tolist() == [sweep.NOT_TRAINED] * 4 and empty["val_ndcg@10"].isna().all()
    assert sweep.best_cell(empty) is None
    run_sweep(tiny_ds, teacher, spec, store)
    grid = sweep.grid_frame(store, tiny_ds, teacher, spec)
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
    plain = sweep.plain_record(store, tiny_ds, teacher, spec)
    for row in grid[grid["alpha"] == 1.0].to_dict("records"):
        assert row["ndcg@10"] == pytest.approx(plain.metrics["ndcg@10"], abs=1e-12) and row["final_kl"] == 0.0
    assert (grid.loc[grid["alpha"] == 0.0, "final_kl"] > 0).all()
    best = sweep.best_cell(grid)
    assert best["val_ndcg@10"] == grid["val_ndcg@10"].max()
    assert best["run"] == grid.loc[grid["val_ndcg@10"].idxmax(), "run"]

    # the plain side: as many cells, over lr x weight decay, each its own stored run
    pf = sweep.plain_frame(store, tiny_ds, teacher, spec)
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
    cmp = sweep.comparison(grid, pf)
    assert cmp["best_plain"]["run"] == chosen.id and cmp["best"]["run"] == kd_chosen.id
    assert cmp["gain_ndcg@10"] == pytest.approx(kd_chosen.metrics["ndcg@10"] / chosen.metrics["ndcg@10"], rel=1e-12)
    assert cmp["finished"] == {"distilled": 4, "plain": 4, "of": 4}
    report = sweep.sweep_report(store, tiny_ds, teacher, spec)
    assert report["best_plain"]["run"] == chosen.id and len(report["plain_cells"]) == 4
    assert report["budget"] == ("distilled: 4 cells over alpha × T; plain: 4 cells over learning rate × weight "
                                "decay; both chosen on validation NDCG@10")


def test_a_teacher_of_another_kind_is_refused(tiny_ds, store, teacher):
    plain = run_sweep(tiny_ds, teacher, sweep.SweepSpec((0.5,), (2.0,), STUDENT, TrainConfig(epochs=1)), store)
    with pytest.raises(ConfigError, match="not a teacher"):
        sweep.sweep_job(tiny_ds, plain["student_plain"], sweep.SweepSpec((0.5,), (2.0,)), store)


# ----------------------------------------------------------------------------- CLI
def test_cli_sweep_writes_json_and_csv_reuses_its_teacher_and_refuses_bad_input(tiny_dir: Path, tmp_path: Path,
                                                                                 tiny_ds, capsys, train_calls):
    out = tmp_path / "sweep.json"
    args = ["sweep", "--data", str(tiny_dir), "--alpha", "0,1", "--temperature", "2", "--student-ratio", "0.3",
            "--epochs", "1", "--patience", "0", "--out", str(out), "--teacher", "mf", "--teacher-epochs", "1"]
    assert cli.main(args + ["--teacher-dim", "16"]) == 0
    err = capsys.readouterr().err
    assert "training teacher" in err and "training alpha 0 · T 2" in err and "trained 4 run(s)" in err
    assert "reusing stored teacher" not in err and train_calls[0][0] == "teacher"
    report = json.loads(out.read_text())
    csv = pd.read_csv(tmp_path / "sweep.csv")
    assert report["alphas"] == [0.0, 1.0] and report["temperatures"] == [2.0] and report["trained"] == 4
    # the size budget: the largest mf student within 0.3 of the teacher's parameters on this dataset is dim 4
    users, items = tiny_ds.n_users, tiny_ds.n_items
    t_params = MF(ModelSpec("mf", 16), users, items).n_params()
    assert MF(ModelSpec("mf", 4), users, items).n_params() <= 0.3 * t_params < MF(ModelSpec("mf", 5), users,
                                                                                    items).n_params()
    assert report["student"]["dim"] == 4 and report["teacher"]["params"] == t_params
    assert report["param_ratio"] == MF(ModelSpec("mf", 4), users, items).n_params() / t_params
    assert f"mf dim 4: 920 parameters, {920 / t_params:.3f} of the teacher's {t_params:,}" in err
    # both sides in the CSV and the JSON, with the budget each got
    assert csv["side"].tolist() == ["distilled"] * 2 + ["plain"] * 2
    assert csv["run"].tolist() == [c["run"] for c in report["cells"] + report["plain_cells"]]
    assert list(zip(csv["lr"][2:], csv["weight_decay"][2:])) == [(LR, 0.0), (2 * LR, 0.0)]
    assert report["budget"] in err and report["best_plain"]["run"] in csv["run"].tolist()[2:]
    store = RunStore()
    for c in report["cells"] + report["plain_cells"]:
        rec = store.get(c["run"])
        assert c["ndcg@10"] == rec.metrics["ndcg@10"] and rec.config["train"]["patience"] == 0
        assert rec.config["model"]["dim"] == 4
    assert csv["ndcg@10"].tolist() == pytest.approx([c["ndcg@10"] for c in report["cells"] + report["plain_cells"]],
                                                    abs=1e-15)
    assert report["best"]["run"] in csv["run"].tolist() and report["teacher"]["model"]["family"] == "mf"
    assert report["gain_ndcg@10"] == pytest.approx(report["best"]["ndcg@10"] / report["best_plain"]["ndcg@10"])
    n_runs = len(store.runs())

    # the same command again: the stored teacher (same config, dataset, seed) and all its cells are reused
    train_calls.clear()
    assert cli.main(args + ["--teacher-dim", "16"]) == 0
    err = capsys.readouterr().err
    again = json.loads(out.read_text())
    assert train_calls == [] and len(store.runs()) == n_runs
    assert f"reusing stored teacher run {report['teacher']['run']}" in err and "training teacher" not in err
    assert (again["trained"], again["reused"]) == (0, 4) and again["cells"] == report["cells"]
    assert again["plain_cells"] == report["plain_cells"]

    # another teacher config is not the same teacher; its smaller size also shrinks the student
    train_calls.clear()
    assert cli.main(args + ["--teacher-dim", "8"]) == 0
    err = capsys.readouterr().err
    assert "reusing stored teacher" not in err and "training teacher" in err and train_calls[0][0] == "teacher"
    assert json.loads(out.read_text())["student"]["dim"] == 1  # 0.3 x 1,720 = 516 < 520 for dim 2

    # a stored teacher named by id
    assert cli.main(args + ["--teacher-run", report["teacher"]["run"]]) == 0
    assert (json.loads(out.read_text())["trained"], json.loads(out.read_text())["student"]["dim"]) == (0, 4)
    capsys.readouterr()

    for bad, flag in [(["--alpha", "0,1.5"], "--alpha"), (["--temperature", "0"], "--temperature"),
                      (["--alpha", ","], "--alpha is empty"), (["--temperature", "2,x"], "--temperature"),
                      (["--student-ratio", "0"], "--student-ratio must be in (0, 1]"),
                      (["--student-ratio", "1.5"], "--student-ratio must be in (0, 1]"),
                      (["--student-ratio", "nan"], "--student-ratio must be in (0, 1]"),
                      (["--student-ratio", "0.2", "--student-dim", "4"], "--student-dim or --student-ratio"),
                      (["--student-ratio", "0.0001"], "even the smallest mf student (dim 1)")]:
        bad_out = tmp_path / "bad.json"
        argv = ["sweep", "--data", str(tiny_dir), "--alpha", "0.5", "--temperature", "2", "--out", str(bad_out),
                "--teacher", "mf", "--teacher-dim", "16", "--student-ratio", "0.3"]
        i = argv.index(bad[0])
        argv[i + 1] = bad[1]
        argv += bad[2:]
        train_calls.clear()
        assert cli.main(argv) == 2
        assert flag in capsys.readouterr().err and not bad_out.exists() and train_calls == []


# ----------------------------------------------------------------------------- the page
@pytest.fixture
def page(tiny_ds):
    state._datasets().put(tiny_ds)  # the page's active dataset: the tiny one
    yield lambda path="app_pages/sweep.py": _open(path, tiny_ds)
    state.runner().shutdown()


def _open(path: str, ds) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=60)
    at.session_state[state.DATASET_KEY] = ds.fingerprint
    return at


def heatmap_z(at: AppTest) -> np.ndarray:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    z = spec["data"][0]["z"]
    if isinstance(z, dict):  # plotly 6+: a typed array
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(
            [int(s) for s in z["shape"].split(",")])
    return np.array(z, dtype=float)


def test_sweep_page_without_a_teacher_says_what_to_do(page):
    at = page()
    at.run()
    assert not at.exception and "Train one on the Teacher page" in at.info[0].value
    assert not at.get("plotly_chart")


def test_sweep_page_runs_a_sweep_live_and_selects_a_cell_for_the_other_pages(page, tiny_ds, teacher):
    at = page()
    at.run()
    for kind in ["button", "number_input", "selectbox", "text_input", "radio"]:
        for w in at.get(kind):
            assert w.help, f"{kind} {w.label!r} has no help"
    at.text_input(key="sweep_alphas").set_value("0, 2").run()
    assert "alpha grid: alpha 2 is outside [0, 1]" in at.error[0].value and not at.get("plotly_chart")
    at.text_input(key="sweep_alphas").set_value("0, 0.5").run()
    at.text_input(key="sweep_temperatures").set_value("1 4").run()
    at.number_input(key="sweep_dim").set_value(4).run()
    at.number_input(key="sweep_epochs").set_value(2).run()
    at.number_input(key="sweep_patience").set_value(1).run()
    assert np.isnan(heatmap_z(at)).all()
    at.button(key="sweep_start").click().run()
    deadline = time.monotonic() + 60
    while {m.label: m.value for m in at.metric}.get("Cells finished") != "4 / 4":
        assert time.monotonic() < deadline, "the sweep did not fill the heatmap"
        time.sleep(0.3)
        at.run()  # what the live fragment does every second
        assert not at.exception, [e.value for e in at.exception]
    at.run()
    spec = sweep.SweepSpec((0.0, 0.5), (1.0, 4.0), ModelSpec("mf", 4), TrainConfig(epochs=2, patience=1))
    grid = sweep.grid_frame(RunStore(), tiny_ds, teacher, spec)
    assert (grid["status"] == "done").all()  # the cells were trained with the page's patience
    np.testing.assert_array_equal(heatmap_z(at), grid["val_ndcg@10"].to_numpy().reshape(2, 2))
    # the plain student got as many cells; the page shows the budgets and the baseline validation chose
    plain_runs = [r for r in RunStore().runs(kind="student_plain") if r.config["model"]["dim"] == 4]
    assert len(plain_runs) == 4 and {r.status for r in plain_runs} == {"done"}
    chosen = max(reversed(plain_runs), key=lambda r: max(h["val_ndcg@10"] for h in r.history))  # oldest of equals
    shown = {m.label: m.value for m in at.metric}
    assert shown["Tuned plain student: test NDCG@10"] == f"{chosen.metrics['ndcg@10']:.4f}"
    assert any(spec.budget() in c.value and f"lr {chosen.config['train']['lr']:g}" in c.value for c in at.caption)
    assert at.dataframe[1].value["run"].tolist() == [r.id for r in reversed(plain_runs)]  # the plain table, ladder order
    t_params = MF(ModelSpec("mf", 16), tiny_ds.n_users, tiny_ds.n_items).n_params()
    s_params = MF(ModelSpec("mf", 4), tiny_ds.n_users, tiny_ds.n_items).n_params()
    assert any(c.value.startswith(f"Student size: mf dim 4: {s_params:,} parameters, {s_params / t_params:.3f} of "
                                  f"the teacher's {t_params:,}") for c in at.caption)
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    best = sweep.best_cell(grid)
    star = next(t for t in figure["data"] if t.get("name") == "best cell (validation NDCG@10)")
    assert figure["layout"]["xaxis"]["ticktext"] == ["1", "4"] and figure["layout"]["yaxis"]["ticktext"] == ["0", "0.5"]
    assert (round(star["x"][0]), round(star["y"][0])) == ([1.0, 4.0].index(best["temperature"]),
                                                          [0.0, 0.5].index(best["alpha"]))  # in the best cell
    at.radio(key="sweep_metric").set_value("final_kl").run()
    np.testing.assert_array_equal(heatmap_z(at), grid["final_kl"].to_numpy().reshape(2, 2))

    chosen = grid["run"].iloc[1]
    at.selectbox(key="sweep_cell").set_value(chosen).run()
    assert at.session_state[state.SELECTED_STUDENT_KEY] == chosen
    frame = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["shapes"]
    assert [(s["name"], (s["x0"] + s["x1"]) / 2, (s["y0"] + s["y1"]) / 2) for s in frame] == [("selected run", 1, 0)]

    rec = page("app_pages/recommendations.py")  # another page of the same session
    rec.session_state[state.SELECTED_STUDENT_KEY] = chosen
    rec.run()
    assert not rec.exception and rec.selectbox(key="rec_student").value == chosen
    other = grid["run"].iloc[3]
    rec.selectbox(key="rec_student").set_value(other).run()  # the user can still pick another run
    assert rec.selectbox(key="rec_student").value == other
    dis = page("app_pages/distill.py")
    dis.session_state[state.SELECTED_STUDENT_KEY] = chosen
    dis.run()
    assert not dis.exception and dis.selectbox(key="distill_teacher").value == teacher
    assert any(c.value.startswith("Distilled student shown") and chosen in c.value for c in dis.caption)

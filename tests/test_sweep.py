"""The alpha x temperature sweep: resumption through the store, the grid's numbers, the CLI and the page.

Everything runs on the tiny generated dataset (80 users, 120 items) with an mf teacher of dim 16 and
students of dim 4 trained for 1-2 epochs.
"""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from distill_core import ConfigError, JobRunner, ModelSpec, RunStore, TrainConfig, load_model, sweep, teacher_job
from distill_core import cli
from distill_core import jobs as jobs_module
from ui import state

from conftest import ROOT

STUDENT, EPOCHS = ModelSpec("mf", 4), TrainConfig(epochs=2)


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
    """Every call of the trainer behind the sweep, as (role, alpha, T); the real training still runs."""
    calls, real = [], jobs_module.train_model

    def counting(split, spec, train, *, role="teacher", distill=None, **kw):
        calls.append((role, distill.alpha if distill else None, distill.temperature if distill else None))
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


# ----------------------------------------------------------------------------- resumption
def test_a_sweep_run_twice_trains_nothing_and_a_grown_grid_trains_only_its_new_cells(tiny_ds, store, teacher,
                                                                                     train_calls):
    spec = sweep.SweepSpec((0.0, 0.5), (1.0, 2.0), STUDENT, EPOCHS)
    first = run_sweep(tiny_ds, teacher, spec, store)
    assert train_calls == [("student_plain", None, None), ("student_kd", 0.0, 1.0), ("student_kd", 0.0, 2.0),
                           ("student_kd", 0.5, 1.0), ("student_kd", 0.5, 2.0)]
    assert len(first["trained"]) == 5 and first["reused"] == [] and first["failed"] == {}
    kd_ids = {r.id for r in store.runs(kind="student_kd")}
    assert kd_ids == set(first["trained"][1:]) and all(store.get(i).parent == teacher for i in kd_ids)

    train_calls.clear()
    again = run_sweep(tiny_ds, teacher, spec, store)
    assert train_calls == [] and again["trained"] == []
    assert set(again["reused"]) == kd_ids and again["student_plain"] == first["student_plain"]
    assert len(store.runs()) == 1 + 1 + 4  # teacher, plain, cells: no new run at all

    grown = sweep.SweepSpec((0.0, 0.5, 1.0), (1.0, 2.0, 4.0), STUDENT, EPOCHS)
    train_calls.clear()
    third = run_sweep(tiny_ds, teacher, grown, store)
    assert sorted(train_calls) == [("student_kd", 0.0, 4.0), ("student_kd", 0.5, 4.0), ("student_kd", 1.0, 1.0),
                                   ("student_kd", 1.0, 2.0), ("student_kd", 1.0, 4.0)]
    assert set(third["reused"]) == kd_ids and len(third["trained"]) == 5
    assert set(sweep.grid_frame(store, tiny_ds, teacher, grown)["status"]) == {"done"}

    other = sweep.SweepSpec((0.5,), (1.0,), STUDENT, TrainConfig(epochs=1))  # other settings: not the same cell
    train_calls.clear()
    run_sweep(tiny_ds, teacher, other, store)
    assert train_calls == [("student_plain", None, None), ("student_kd", 0.5, 1.0)]


def test_a_stopped_sweep_keeps_its_finished_cells_and_resumes_with_the_rest(tiny_ds, store, teacher, monkeypatch):
    calls, real = [], jobs_module.train_model

    def stop_at_third(split, spec, train, **kw):
        calls.append(kw.get("distill"))
        if len(calls) == 3:  # plain, cell 1, then Stop is pressed as cell 2 starts
            kw["control"].should_stop = True
        return real(split, spec, train, **kw)
    monkeypatch.setattr(jobs_module, "train_model", stop_at_third)
    spec = sweep.SweepSpec((0.0, 0.5), (2.0,), STUDENT, EPOCHS)
    runner = JobRunner()
    snap = runner.wait(runner.submit("sweep", sweep.sweep_job(tiny_ds, teacher, spec, store)))
    assert snap.status == "cancelled"
    assert sweep.grid_frame(store, tiny_ds, teacher, spec)["status"].tolist() == ["done", "cancelled"]

    calls.clear()
    resumed = run_sweep(tiny_ds, teacher, spec, store)
    assert [(d.alpha, d.temperature) for d in calls] == [(0.5, 2.0)]  # only the stopped cell
    assert len(resumed["reused"]) == 1 and len(resumed["trained"]) == 1
    assert sweep.grid_frame(store, tiny_ds, teacher, spec)["status"].tolist() == ["done", "done"]


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


def test_a_teacher_of_another_kind_is_refused(tiny_ds, store, teacher):
    plain = run_sweep(tiny_ds, teacher, sweep.SweepSpec((0.5,), (2.0,), STUDENT, TrainConfig(epochs=1)), store)
    with pytest.raises(ConfigError, match="not a teacher"):
        sweep.sweep_job(tiny_ds, plain["student_plain"], sweep.SweepSpec((0.5,), (2.0,)), store)


# ----------------------------------------------------------------------------- CLI
def test_cli_sweep_writes_json_and_csv_resumes_and_refuses_bad_grids(tiny_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "sweep.json"
    args = ["sweep", "--data", str(tiny_dir), "--alpha", "0,1", "--temperature", "2", "--student-dim", "4",
            "--epochs", "1", "--patience", "0", "--out", str(out)]
    assert cli.main(args + ["--teacher", "mf", "--teacher-dim", "16", "--teacher-epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert "training teacher" in err and "training alpha 0 · T 2" in err and "trained 3 run(s)" in err
    report = json.loads(out.read_text())
    csv = pd.read_csv(tmp_path / "sweep.csv")
    assert report["alphas"] == [0.0, 1.0] and report["temperatures"] == [2.0] and report["trained"] == 3
    assert csv["run"].tolist() == [c["run"] for c in report["cells"]] and len(csv) == 2
    store = RunStore()
    for c in report["cells"]:
        rec = store.get(c["run"])
        assert c["ndcg@10"] == rec.metrics["ndcg@10"] and c["final_kl"] == rec.history[-1]["kl"]
        assert rec.config["train"]["patience"] == 0
    assert csv["ndcg@10"].tolist() == pytest.approx([c["ndcg@10"] for c in report["cells"]], abs=1e-15)
    assert report["best"]["run"] in csv["run"].tolist() and report["teacher"]["model"]["family"] == "mf"

    # reusing the stored teacher: every cell is already there, nothing is trained
    assert cli.main(args + ["--teacher-run", report["teacher"]["run"]]) == 0
    again = json.loads(out.read_text())
    assert (again["trained"], again["reused"]) == (0, 2) and again["cells"] == report["cells"]
    capsys.readouterr()

    for bad, flag in [(["--alpha", "0,1.5"], "--alpha"), (["--temperature", "0"], "--temperature"),
                      (["--alpha", ","], "--alpha is empty"), (["--temperature", "2,x"], "--temperature")]:
        bad_out = tmp_path / "bad.json"
        argv = ["sweep", "--data", str(tiny_dir), "--alpha", "0.5", "--temperature", "2", "--out", str(bad_out)]
        i = argv.index(bad[0])
        argv[i + 1] = bad[1]
        assert cli.main(argv) == 2
        assert flag in capsys.readouterr().err and not bad_out.exists()


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

"""Sweeps over distillation methods (issue 17): each method over alpha x its main knob (``sweep.MAIN_KNOB``), every
method with as many cells as the plain student, whose cells are shared by all of them; ``sweep --method a,b``.

The tiny generated dataset (80 users, 120 items), an mf teacher of dim 16, students of dim 4, 1-2 epochs; the
fixtures ``store``, ``teacher`` and ``train_calls`` are in conftest.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from distill_core import ConfigError, DistillConfig, ModelSpec, RunStore, TrainConfig, cli, sweep, sweep_results

from test_sweep import run_sweep

STUDENT, EPOCHS = ModelSpec("mf", 4), TrainConfig(epochs=1, patience=0)


def test_a_method_is_swept_over_alpha_and_its_main_knob_and_bad_grids_are_refused_naming_the_field():
    rd = sweep.SweepSpec((0.5, 0.25), (2.0,), STUDENT, EPOCHS, distill=DistillConfig(method="rd", rd_mu=0.0),
                         knobs=(5, 1))
    assert rd.knob == "rd_lambda" and rd.axis == (1.0, 5.0) and rd.n_cells == 4
    cells = rd.cells()
    assert [(c.method, c.alpha, c.rd_lambda) for c in cells] == [("rd", 0.25, 1.0), ("rd", 0.25, 5.0),
                                                                 ("rd", 0.5, 1.0), ("rd", 0.5, 5.0)]
    assert all(c.rd_mu == 0.0 and c.temperature == 2.0 for c in cells)  # the base's knobs
    assert rd.label(cells[1]) == "rd · alpha 0.25 · rd_lambda 5"
    assert rd.budget().startswith("distilled (rd): 4 cells over alpha × rd_lambda; plain: 4 cells")
    rrd = sweep.SweepSpec((0.5,), (2.0,), distill=DistillConfig(method="rrd"), knobs=(10, 5))
    assert rrd.knob == "rank_k" and [(c.rank_k, type(c.rank_k)) for c in rrd.cells()] == [(5, int), (10, int)]
    # no knob grid: the method's own value is the one cell of the axis
    de = sweep.SweepSpec((0.5,), (1.0,), distill=DistillConfig(method="de", de_experts=3))
    assert de.knob == "de_experts" and de.axis == (3.0,) and [c.de_experts for c in de.cells()] == [3]
    combo = sweep.SweepSpec((0.5,), (3.0,), distill=DistillConfig(method="logits+rrd"), knobs=(0.1, 1))
    assert [(c.combo_weight, c.temperature) for c in combo.cells()] == [(0.1, 3.0), (1.0, 3.0)]
    # Hinton KD: the temperature axis, and a cell's stored config is the one it had before methods existed
    kd = sweep.SweepSpec((0.5,), (1.0, 2.0))
    assert kd.knob == "temperature" and [c.temperature for c in kd.cells()] == [1.0, 2.0]
    assert "method" not in kd.cells()[0].to_dict() and kd.label(kd.cells()[0]) == "alpha 0.5 · T 1"
    for kwargs, words in [
            ({"temperatures": (1.0, 2.0), "distill": DistillConfig(method="rrd")}, "sweeps rank_k, not T"),
            ({"knobs": (5,)}, "Hinton KD .* sweeps the temperature grid"),
            ({"distill": DistillConfig(method="rrd"), "knobs": (2.5,)}, "rank_k 2.5 must be a finite whole number"),
            ({"distill": DistillConfig(method="rrd"), "knobs": (500,)}, "rrd_pool"),  # rank_k above the pool
            ({"distill": DistillConfig(method="rd"), "knobs": (0,)}, "rd_lambda")]:
        with pytest.raises(ConfigError, match=words):
            sweep.SweepSpec(**({"alphas": (0.5,), "temperatures": (2.0,)} | kwargs))
    assert sweep.parse_knob("0.1, 1;0.1", "combo_weight") == (0.1, 1.0)
    with pytest.raises(ConfigError, match="--knob: 'x' is not a number"):
        sweep.parse_knob("x", "rank_k", "--knob")


def test_a_method_sweep_stores_its_cells_with_the_method_and_shares_the_plain_cells(tiny_ds, store, teacher,
                                                                                    train_calls):
    rd = sweep.SweepSpec((0.5,), (2.0,), STUDENT, EPOCHS, distill=DistillConfig(method="rd"), knobs=(3, 6))  # lambda
    first = run_sweep(tiny_ds, teacher, rd, store)
    assert [c[0] for c in train_calls] == ["student_plain", "student_kd"] * 2 and len(first["trained"]) == 4
    kd_runs = store.runs(kind="student_kd")
    assert sorted((r.config["distill"]["method"], r.config["distill"]["rd_lambda"]) for r in kd_runs) == [
        ("rd", 3.0), ("rd", 6.0)]
    grid = sweep_results.grid_frame(store, tiny_ds, teacher, rd)
    assert list(grid.columns) == sweep.COLUMNS
    assert grid[["method", "knob", "value", "status"]].values.tolist() == [["rd", "rd_lambda", 3.0, "done"],
                                                                           ["rd", "rd_lambda", 6.0, "done"]]
    report = sweep_results.sweep_report(store, tiny_ds, teacher, rd)
    assert (report["method"], report["knob"], report["knob_values"]) == ("rd", "rd_lambda", [3.0, 6.0])
    assert report["method_knobs"]["rank_k"] == DistillConfig().rank_k and report["best"]["method"] == "rd"

    # another method with as many cells: its own distilled cells, the plain cells already stored
    train_calls.clear()
    kd = sweep.SweepSpec((0.5,), (1.0, 2.0), STUDENT, EPOCHS)
    second = run_sweep(tiny_ds, teacher, kd, store)
    assert [c[0] for c in train_calls] == ["student_kd", "student_kd"] and len(second["reused"]) == 2
    assert second["student_plain"] == first["student_plain"]
    # the same method at another knob is another cell; the same one again is reused
    train_calls.clear()
    run_sweep(tiny_ds, teacher, rd, store)
    assert train_calls == []


def test_cli_sweep_over_methods_gives_each_the_same_budget_and_refuses_bad_methods(tiny_dir: Path, tmp_path: Path,
                                                                                   capsys, train_calls):
    out = tmp_path / "methods.json"
    args = ["sweep", "--data", str(tiny_dir), "--alpha", "0.5", "--temperature", "1,2", "--student-dim", "4",
            "--epochs", "1", "--patience", "0", "--out", str(out), "--teacher", "mf", "--teacher-dim", "16",
            "--teacher-epochs", "1"]
    assert cli.main(args + ["--method", "logits,rrd", "--knob", "5,10", "--rrd-pool", "20"]) == 0
    err = capsys.readouterr().err
    report = json.loads(out.read_text())
    assert [r["method"] for r in report["methods"]] == ["logits", "rrd"]
    assert [r["knob"] for r in report["methods"]] == ["temperature", "rank_k"]
    rrd = report["methods"][1]
    assert [c["value"] for c in rrd["cells"]] == [5.0, 10.0] and rrd["method_knobs"]["rrd_pool"] == 20
    assert "training rrd · alpha 0.5 · rank_k 5" in err and "  rrd " in err  # the term is named in the epoch lines
    # the plain cells are trained once and shared: the teacher, 2 plain cells, 2 + 2 distilled cells
    assert sorted(c[0] for c in train_calls) == ["student_kd"] * 4 + ["student_plain"] * 2 + ["teacher"]
    assert report["methods"][0]["plain_cells"] == rrd["plain_cells"]
    best = max((r for r in report["methods"]), key=lambda r: r["best"]["val_ndcg@10"])
    assert report["best_method"]["method"] == best["method"] and report["best_method"]["run"] == best["best"]["run"]
    assert report["gain_ndcg@10"] == pytest.approx(report["best_method"]["ndcg@10"] / report["best_plain"]["ndcg@10"])
    assert f"best method on validation NDCG@10: {best['method']}" in err
    store = RunStore()
    for c in rrd["cells"]:
        d = store.get(c["run"]).config["distill"]
        assert (d["method"], d["rank_k"], d["rrd_pool"]) == ("rrd", int(c["value"]), 20)
    csv = pd.read_csv(out.with_suffix(".csv"))
    assert csv["side"].tolist() == ["distilled"] * 4 + ["plain"] * 2
    assert csv["method"].tolist()[:4] == ["logits", "logits", "rrd", "rrd"]

    for extra, words in [(["--method", "logits,rd", "--knob", "5"], "same number of cells"),
                         (["--method", "bogus"], "--method: 'bogus' is not a method"),
                         (["--method", "rd,rd"], "distinct methods"),
                         (["--method", "rrd", "--knob", "500", "--rrd-pool", "1000"], "rank_k must be at most the catalogue"),
                         (["--method", "rd", "--knob", "2,x"], "--knob: 'x' is not a number")]:
        train_calls.clear()
        bad = tmp_path / "bad.json"
        argv = [a if a != str(out) else str(bad) for a in args] + extra
        assert cli.main(argv) == 2, extra
        assert words in capsys.readouterr().err and not bad.exists() and train_calls == []

"""The headless CLI (distill_core.cli, ``python -m distill_core``): ``run`` writes its report and sizes the
student on the user's data with a size budget (#14, point 10); ``sweep`` writes JSON and CSV, reuses its
teacher and cells; bad settings or input exit 2 with a message before anything is loaded or trained."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from distill_core import DistillConfig, ModelSpec, RunStore, TrainConfig, cli
from distill_core.errors import DataError
from distill_core.models import MF

from conftest import ROOT

LR = TrainConfig().lr  # 5e-3: the ladder's centre in these tests


def test_cli_run_sizes_the_student_within_the_ratio_on_the_data(tiny_dir: Path, tmp_path: Path, tiny_ds, capsys):
    out = tmp_path / "report.json"
    argv = ["run", "--data", str(tiny_dir), "--teacher", "mf", "--teacher-dim", "16", "--epochs", "1", "--out",
            str(out)]
    assert cli.main(argv + ["--student-ratio", "0.3"]) == 0
    report = json.loads(out.read_text())
    users, items = tiny_ds.n_users, tiny_ds.n_items
    t_params = MF(ModelSpec("mf", 16), users, items).n_params()
    assert MF(ModelSpec("mf", 4), users, items).n_params() <= 0.3 * t_params < MF(ModelSpec("mf", 5), users,
                                                                                    items).n_params()
    assert report["config"]["student"]["dim"] == 4
    assert report["student_kd"]["params"] == report["student_plain"]["params"] == MF(ModelSpec("mf", 4), users,
                                                                                     items).n_params()
    assert report["summary"]["param_ratio"] == MF(ModelSpec("mf", 4), users, items).n_params() / t_params
    seg = report["segments"]  # per model: user and item buckets with n and HR/NDCG@10, list figures (#18)
    assert set(seg) == {"teacher", "student_kd", "student_plain"}
    assert seg["student_kd"]["lists"]["coverage@10"] == pytest.approx(report["student_kd"]["metrics"]["coverage@10"])
    assert sum(b["n"] for b in seg["teacher"]["users"]["buckets"]) == seg["teacher"]["test_users"]
    assert "largest within --student-ratio 0.3" in capsys.readouterr().err
    for bad, words in [(["--student-ratio", "-1"], "--student-ratio must be in (0, 1]"),
                       (["--student-ratio", "0.5", "--student-dim", "3"], "--student-dim or --student-ratio")]:
        out.unlink(missing_ok=True)
        assert cli.main(argv + bad) == 2
        assert words in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("argv, field", [
    (["--alpha", "1.5"], "alpha"), (["--alpha", "nan"], "alpha"), (["--temperature", "0"], "temperature"),
    (["--temperature", "nan"], "temperature"), (["--temperature", "-2"], "temperature"),
    (["--teacher-dim", "0"], "dim"), (["--student-dim", "-1"], "dim"), (["--epochs", "0"], "epochs"),
    (["--epochs", "-5"], "epochs"), (["--lr", "0"], "learning rate"), (["--kcore", "-2"], "kcore"),
    (["--rating-threshold", "inf"], "rating_threshold"),
])
def test_cli_refuses_bad_settings_with_exit_2_before_loading_anything(argv, field, tmp_path, capsys, monkeypatch):
    loaded = []
    monkeypatch.setattr("distill_core.data.load_sample", lambda *a, **k: loaded.append(1))
    code = cli.main(["run", *argv, "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and f"error: {field}" in err, err
    assert not loaded and not (tmp_path / "r.json").exists()


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
    assert rep["config"]["distill"]["alpha"] == pytest.approx(DistillConfig().alpha)
    assert rep["config"]["teacher_train"]["patience"] == rep["config"]["student_train"]["patience"] == 7
    # what the distilled student was trained and selected by, resolved (the config keeps what was asked: auto)
    assert rep["student_kd"]["selection"] == "lagged" and rep["student_kd"]["soft_labels"] == "current"
    assert rep["config"]["distill"]["selection"] == "auto" and rep["teacher"]["selection"] is None
    assert "(lagged selection)" in p.stderr
    # one line per phase, in order: the lagged selection's second fit is the distilled student's, not the next
    # model's (it was announced as "training the plain student", so the plain student was announced twice)
    phases = [line.split(" (")[0] for line in p.stderr.splitlines() if line.startswith(("training the", "refit"))]
    assert phases == ["training the teacher", "training the distilled student",
                      "refitting the distilled student on the current soft labels to the selected epoch",
                      "training the plain student"], p.stderr


def test_cli_bad_input_exits_2(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    p = subprocess.run([sys.executable, "-m", "distill_core", "run", "--data", str(empty), "--out",
                        str(tmp_path / "r.json")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2 and "empty.csv" in p.stderr
    p = subprocess.run([sys.executable, "-m", "distill_core", "run", "--alpha", "2", "--out", str(tmp_path / "r.json")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2 and "alpha" in p.stderr


@pytest.mark.parametrize("argv", [["run"], ["sweep", "--alpha", "1", "--temperature", "1"]])
def test_cli_format_sequences_and_no_header_reach_the_loader(monkeypatch, capsys, tmp_path: Path,
                                                             argv: list[str]) -> None:
    seen = {}
    argv = [*argv, "--out", str(tmp_path / "report.json")]

    def fake_load(path, fmt, options, **kwargs):
        seen.update(path=path, fmt=fmt, **kwargs)
        raise DataError("stop here")
    monkeypatch.setattr("distill_core.data.load_dataset", fake_load)
    assert cli.main([*argv, "--data", "ml-1m.txt", "--format", "sequences", "--no-header"]) == 2
    assert seen == {"path": "ml-1m.txt", "fmt": "sequences", "no_header": True}
    assert "stop here" in capsys.readouterr().err
    assert cli.main([*argv, "--data", "x.csv"]) == 2 and seen["no_header"] is False


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

"""``python -m distill_core run`` with a size budget: the student is sized on the user's data (#14, point 10)."""
from __future__ import annotations

import json
from pathlib import Path

from distill_core import ModelSpec, cli
from distill_core.models import MF


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
    assert "largest within --student-ratio 0.3" in capsys.readouterr().err
    for bad, words in [(["--student-ratio", "-1"], "--student-ratio must be in (0, 1]"),
                       (["--student-ratio", "0.5", "--student-dim", "3"], "--student-dim or --student-ratio")]:
        out.unlink(missing_ok=True)
        assert cli.main(argv + bad) == 2
        assert words in capsys.readouterr().err and not out.exists()

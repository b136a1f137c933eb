"""The 55,000-item target of issue 16, end to end: ``python -m distill_core run --data DIR`` with its defaults on a
synthetic dataset of about 40,000 users x 55,000 items x 350,000 interactions (``data.synthetic`` defaults,
generated once into bench/.cache), in a child process; its wall time, its peak RSS and the report's figures.

    .venv/bin/python bench/scale_run.py          # about 20 minutes on 2 cores
    .venv/bin/python bench/scale_run.py --quick  # 1 epoch per model (checks the path, not the target)

Targets: teacher + distilled + plain student in <= 20 minutes, peak RSS <= 4 GB, the distilled student above the
plain one. Writes ``bench/results/scale_run.json``.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import CACHE, start, table, write_json, parser

TARGET_S, TARGET_GB = 20 * 60, 4.0


def dataset_dir() -> Path:
    """The run's dataset (``data.synthetic`` defaults), generated into bench/.cache on first use."""
    from distill_core.data.synthetic import write

    data = CACHE / "synthetic-55k"
    if not (data / "ratings.csv").exists():
        write(data)
    return data


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n")[0])
    p.set_defaults(threads=0)
    a = p.parse_args(argv)
    started = start(a)
    data = dataset_dir()
    out = CACHE / "scale_run_report.json"
    cmd = [sys.executable, "-m", "distill_core", "run", "--data", str(data), "--out", str(out)]
    if a.quick:
        cmd += ["--epochs", "1"]
    log = CACHE / "scale_run.log"  # the run's own progress (epoch lines), readable while it runs: tail -f
    print(f"{' '.join(cmd[1:])}\nprogress: tail -f {log}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
    wall = time.perf_counter() - t0
    rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(log.read_text()[-3000:], file=sys.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"the run failed (exit {proc.returncode})")
    rep: dict[str, Any] = json.loads(out.read_text())
    rows = [{"model": role, "path": rep[role].get("path_text"), "epochs_run": rep[role].get("epochs_run"),
             "best_epoch": rep[role]["best_epoch"], "stopped": rep[role].get("stopped"),
             "train_seconds": round(rep[role]["train_seconds"], 1), "ndcg@10": rep[role]["metrics"]["ndcg@10"],
             "hr@10": rep[role]["metrics"]["hr@10"], "params": rep[role]["params"]}
            for role in ("teacher", "student_kd", "student_plain")]
    kd, plain = rows[1]["ndcg@10"], rows[2]["ndcg@10"]
    targets = [{"target": "teacher + distilled + plain, wall minutes", "limit": TARGET_S / 60,
                "measured": round(wall / 60, 1), "met": wall <= TARGET_S},
               {"target": "peak RSS, GB", "limit": TARGET_GB, "measured": round(rss_gb, 2), "met": rss_gb <= TARGET_GB},
               {"target": "distilled / plain test NDCG@10", "limit": "> 1", "measured": round(kd / plain, 3) if plain else None,
                "met": kd > plain}]
    ds = rep["dataset"]
    md = table(f"One default run on {ds['users']:,} users x {ds['items']:,} items x {ds['interactions']:,} interactions",
               rows) + "\n" + table("Targets", targets)
    write_json("scale_run", a, {"quick": a.quick, "command": " ".join(cmd[1:]), "wall_seconds_run": wall,
                                "peak_rss_gb": rss_gb, "rows": rows, "targets": targets, "summary": rep["summary"],
                                "markdown": md}, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

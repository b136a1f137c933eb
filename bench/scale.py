"""How cost grows with the catalogue (issue 16): synthetic catalogues of 10^4, 10^5 and 10^6 items (users and
interactions scaled with them), the teacher, the distilled and the plain student, full vs sampled softmax where
the full one fits; epoch time, examples/s, soft-label time and peak RSS; the growth exponent in items.

    .venv/bin/python bench/scale.py            # 10^4, 10^5, 10^6 items (about 40 minutes on 2 cores)
    .venv/bin/python bench/scale.py --quick    # 10^4 and 3 x 10^4 items
    .venv/bin/python bench/scale.py --device auto   # CUDA when available (the device is recorded per row)

Catalogue of N items: ``data.synthetic`` with N / 5 users and about 10 interactions each (generated once into
bench/.cache, deterministic; the loaders keep the items that were interacted with, so the measured catalogue
is smaller than N). Every measurement runs in a child process of its own, so its peak RSS is its own.

* **teacher** (default sasrec, dim 64, 2 layers, history from ``sizing.auto_max_len``): seconds per step,
  median of ``STEPS`` timed steps after a warm-up; the epoch is extrapolated (steps x s/step);
* **distilled student** (default MF, dim 6) from an MF teacher of dim 32 (untrained: building and reading its
  soft labels costs what a trained one's does): the top-K soft labels are built and timed, then one whole
  training epoch is timed;
* **plain student**: one whole training epoch.

``sampled`` is the product's sampled path; where it trains the id tables by row updates (lazy Adam,
``catalogue.sparse_tables``) the same model is also measured with dense tables (``sampled-dense``, the optimiser
before row updates) for the ratio side by side.

The growth exponent between the smallest and the largest catalogue is ``log(t2 / t1) / log(N2 / N1)`` for the
epoch time (interactions grow with N, so 1.0 is linear). Writes ``bench/results/scale.json``.
"""
from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np

from _common import BENCH, CACHE, start, table, write_json, parser

STEPS = 20


def dataset_dir(n_items: int) -> str:
    from distill_core.data.synthetic import SyntheticSpec, write

    path = CACHE / f"synthetic-{n_items}"
    if not (path / "ratings.csv").exists():
        # flatter popularity than the default, so that about n_items of the 1.7 n_items are interacted with
        write(path, SyntheticSpec(n_users=max(200, n_items // 5), n_items=int(1.7 * n_items), mean_activity=10.0,
                                  item_zipf=0.3, item_spread=0.3))
    return str(path)


class _Clock:
    """Trainer callback: step times, the first epoch's training time; stops after ``stop_after`` steps."""

    def __init__(self, control: Any, stop_after: int | None) -> None:
        self.control, self.stop_after = control, stop_after
        self.times: list[float] = []
        self.steps_per_epoch = 0
        self.examples = 0
        self.epoch_s: float | None = None

    def on_event(self, name: str, p: dict[str, Any]) -> None:
        now = time.perf_counter()
        if name == "preparing":
            self.t_prep = now
        elif name == "train_start":
            self.t0, self.steps_per_epoch, self.examples = now, p["steps_per_epoch"], p["examples"]
            if hasattr(self, "t_prep"):
                self.soft_label_s = now - self.t_prep  # building the soft labels (and the examples)
        elif name == "step_end" and p["epoch"] == 1:
            self.times.append(now)
            if p["step"] == p["steps_per_epoch"]:
                self.epoch_s = now - self.t0
                self.control.should_stop = True  # no validation or test: only the epoch is timed
            if self.stop_after is not None and len(self.times) > self.stop_after:
                self.control.should_stop = True


def child(n_items: int, role: str, loss: str, device: str) -> dict[str, Any]:
    """One measurement (in its own process)."""
    import torch

    from distill_core import DistillConfig, ModelSpec, RunConfig, sizing, train_model
    from distill_core.data import load_dataset
    from distill_core.data.dataset import split_dataset
    from distill_core.models import build_model
    from distill_core.trainer import TrainerControl

    sparse = loss != "sampled-dense"  # the sampled path with dense table updates (the old optimiser), for the ratio
    loss = "sampled" if loss == "sampled-dense" else loss
    ds = load_dataset(dataset_dir(n_items))
    split = split_dataset(ds)
    cfg = RunConfig()
    max_len = sizing.auto_max_len(ds)
    out: dict[str, Any] = {"items": ds.n_items, "users": ds.n_users, "interactions": ds.n_interactions,
                           "role": role, "loss": loss if sparse else "sampled-dense", "max_len": max_len}
    control = TrainerControl()
    clock = _Clock(control, STEPS if role == "teacher" else None)
    if role == "teacher":
        spec, train = replace(cfg.teacher, max_len=max_len), replace(cfg.teacher_train, loss=loss, epochs=2,
                                                                     device=device, sparse_tables=sparse)
        tm = train_model(split, spec, train, callbacks=[clock], control=control)
    else:
        train = replace(cfg.student_train, loss=loss, epochs=2, device=device, sparse_tables=sparse)
        teacher = distill = None
        if role == "student_kd":
            teacher = build_model(ModelSpec("mf", 32), split).to(tm_device(train))
            distill = replace(cfg.distill, selection="direct")
        tm = train_model(split, cfg.student, train, role=role, teacher=teacher, distill=distill, callbacks=[clock],
                         control=control)
    steps = np.diff(clock.times[1:]) if len(clock.times) > 2 else np.array([float("nan")])
    if hasattr(clock, "soft_label_s"):
        out["soft_label_seconds"] = round(clock.soft_label_s, 2)
    out |= {"path": tm.path.describe(), "device": str(next(tm.model.parameters()).device),
            "steps_per_epoch": clock.steps_per_epoch, "examples": clock.examples,
            "s_per_step": float(np.median(steps)),
            "epoch_s": clock.epoch_s if clock.epoch_s is not None else float(np.median(steps)) * clock.steps_per_epoch,
            "epoch_measured": clock.epoch_s is not None,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    out["examples_per_s"] = out["examples"] / out["epoch_s"] if out["epoch_s"] else None
    if torch.cuda.is_available() and device != "cpu":
        out["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def tm_device(train: Any) -> Any:
    from distill_core.distill import resolve_device
    return resolve_device(train.device)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n")[0])
    p.set_defaults(threads=0)
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--sizes", default=None, help="comma-separated catalogue sizes (default 10^4,10^5,10^6)")
    p.add_argument("--child", nargs=3, metavar=("ITEMS", "ROLE", "LOSS"), help=argparse_hidden())
    a = p.parse_args(argv)
    if a.child:
        print("RESULT " + json.dumps(child(int(a.child[0]), a.child[1], a.child[2], a.device)), flush=True)
        return 0
    started = start(a)
    sizes = [int(s) for s in a.sizes.split(",")] if a.sizes else ([10_000, 30_000] if a.quick else
                                                                   [10_000, 100_000, 1_000_000])
    rows = []
    for n in sizes:
        dataset_dir(n)
        for role in ("teacher", "student_kd", "student_plain"):
            for loss in ("sampled", "sampled-dense", "full"):
                if loss == "full" and n > 100_000:
                    continue  # one batch of full logits at 10^6 items is 4 GB (x3 with its softmax and gradient)
                if loss == "sampled-dense" and "row updates" not in rows[-1].get("path", ""):
                    continue  # the product's sampled path is already dense here (catalogue.sparse_tables)
                print(f"{n:,} items · {role} · {loss}", file=sys.stderr, flush=True)
                proc = subprocess.run([sys.executable, str(BENCH / "scale.py"), "--child", str(n), role, loss,
                                       "--device", a.device, "--threads", str(a.threads)],
                                      capture_output=True, text=True)
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if line is None:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    rows.append({"items_spec": n, "role": role, "loss": loss, "error": proc.stderr[-300:]})
                    continue
                r = json.loads(line[7:]) | {"items_spec": n}
                rows.append(r)
                print(f"   {r['epoch_s']:.1f} s/epoch ({'measured' if r['epoch_measured'] else 'from steps'}), "
                      f"{r['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
    growth = []
    for role in ("teacher", "student_kd", "student_plain"):
        for loss in ("sampled", "sampled-dense", "full"):
            rs = [r for r in rows if r["role"] == role and r["loss"] == loss and "error" not in r]
            if loss == "sampled-dense":  # the dense optimiser at every size: where rows are off, sampled is it
                rs = [r for r in rows if r["role"] == role and "error" not in r and (
                    r["loss"] == "sampled-dense" or (r["loss"] == "sampled" and "row updates" not in r["path"]))]
            if len(rs) >= 2:
                lo, hi = rs[0], rs[-1]
                growth.append({"model": role, "loss": loss, "from items": lo["items"], "to items": hi["items"],
                               "epoch exponent": math.log(hi["epoch_s"] / lo["epoch_s"]) / math.log(hi["items"] / lo["items"]),
                               "per-example exponent": math.log((hi["epoch_s"] / hi["examples"]) / (lo["epoch_s"] / lo["examples"]))
                               / math.log(hi["items"] / lo["items"])})
    cols = ["items", "users", "interactions", "role", "loss", "device", "steps_per_epoch", "s_per_step", "epoch_s",
            "epoch_measured", "examples_per_s", "soft_label_seconds", "peak_rss_mib"]
    md = table("Cost by catalogue size", [r for r in rows if "error" not in r], cols)
    md += "\n" + table("Growth in the catalogue", growth)
    write_json("scale", a, {"sizes": sizes, "quick": a.quick, "rows": rows, "growth": growth, "markdown": md}, started)
    return 0


def argparse_hidden() -> str:
    import argparse
    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())

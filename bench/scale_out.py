"""Scale-out on this machine: a 2 x 2 sweep here vs on a local Ray with 2 workers, and one process vs two
DistributedDataParallel processes under torchrun (issue #19).

    .venv/bin/python bench/scale_out.py            # 2 sweep repeats, 3 seeds of full runs (70 min on 2 shared cores)
    .venv/bin/python bench/scale_out.py --quick    # 1 repeat, 1 seed, 1-2 epochs: a smoke run (6 min)
    .venv/bin/python bench/scale_out.py --two-threads   # also one process with 2 torch threads (same cores)

1. **Sweep**: the same 2 x 2 grid (4 distilled and 4 plain cells of the default MF student, ``CELL_EPOCHS`` at
   most) from the same stored teacher, each repeat in a fresh copy of the store: here, one cell after another
   with 1 torch thread, and on ``ray.init(num_cpus=2)`` (2 workers, 1 thread each). Interleaved, medians. Ray's
   start (``ray.init`` and two warm workers) is timed once, apart. Each variant's cell metrics must be the same.
2. **DDP**: ``python -m distill_core run`` (the default teacher, distilled and plain students, full training)
   as one process with 1 thread and as ``torchrun --nproc_per_node 2`` with 1 thread per rank, the same global
   batch, per seed, in alternating order. Wall time of the command and the three models' training time (rank 0),
   and each model's test NDCG@10: the target is the 2-process run within 2% of the 1-process run, mean of 3 seeds.

Prints tables and writes ``bench/results/scale_out.json``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import _common as C  # bench/ is on sys.path: the scripts run as python bench/x.py
from distill_core import ModelSpec, RunConfig, RunStore, TrainConfig, load_sample, sweep, sweep_ray, sweep_results
from distill_core.runner import JobRunner
from distill_core.workflows import teacher_job

CELL_EPOCHS = 10  # per sweep cell (patience 5): the timing, not the quality, is measured here
ROLES = ("teacher", "student_kd", "student_plain")
TARGET = 0.02  # 2 processes within 2% of 1 process on test NDCG@10 (mean of the seeds)


def _sweep_once(ds: Any, teacher: str, home: Path, spec: sweep.SweepSpec, variant: str, dest: Path) -> dict[str, Any]:
    shutil.copytree(home, dest)
    store = RunStore(dest)
    if variant.startswith("here"):
        torch.set_num_threads(int(variant.split("(")[1][0]))
        job = sweep.sweep_job(ds, teacher, spec, store)
    else:
        job = sweep_ray.ray_sweep_job(ds, teacher, spec, store, address="local")
    runner = JobRunner()
    t0 = time.perf_counter()
    snap = runner.wait(runner.submit("sweep", job))
    wall = time.perf_counter() - t0
    assert snap.status == "done", snap.error
    cells = [sweep_results.grid_frame(store, ds, teacher, spec), sweep_results.plain_frame(store, ds, teacher, spec)]
    train_s = sum(r.info["train_seconds"] for r in store.runs() if r.kind != "teacher")
    return {"wall_s": wall, "cells_train_s": train_s,
            "metrics": [f[["val_ndcg@10", "ndcg@10"]].round(12).values.tolist() for f in cells]}


def sweep_part(quick: bool, repeats: int, tmp: Path, two_threads: bool) -> dict[str, Any]:
    import ray

    ds = load_sample()
    d = RunConfig()
    home = tmp / "teacher"
    t_train = TrainConfig(epochs=1 if quick else 3, lr=d.teacher_train.lr, device="cpu")
    runner = JobRunner()
    snap = runner.wait(runner.submit("teacher", teacher_job(ds, d.teacher, t_train, RunStore(home))))
    assert snap.status == "done", snap.error
    teacher = snap.result
    train = TrainConfig(epochs=2 if quick else CELL_EPOCHS, device="cpu")
    spec = sweep.SweepSpec((0.0, 0.5), (1.0, 2.0), d.student, train)
    t0 = time.perf_counter()
    sweep_ray.connect("local")
    ray.get([ray.remote(_warm).remote() for _ in range(2)])  # both workers up, torch and the engine imported
    ray_start = time.perf_counter() - t0
    variants = ["here (1 thread)", *(["here (2 threads)"] if two_threads else []), "Ray, 2 workers (1 thread each)"]
    counter = iter(range(10_000))
    runs = C.interleave({v: (lambda v=v: _sweep_once(ds, teacher, home, spec, v, tmp / f"s{next(counter)}"))
                         for v in variants}, repeats)
    sweep_ray.disconnect()
    torch.set_num_threads(1)
    base = C.median([r["wall_s"] for r in runs[variants[0]]])
    rows = [{"variant": v, "cells": 2 * spec.n_cells, "wall s (median)": C.median([r["wall_s"] for r in rs]),
             "cells' training s": C.median([r["cells_train_s"] for r in rs]),
             "speed-up vs here (1 thread)": base / C.median([r["wall_s"] for r in rs]),
             "same cell metrics": C.verdict(all(r["metrics"] == runs[variants[0]][0]["metrics"] for r in rs))}
            for v, rs in runs.items()]
    return {"rows": rows, "ray_start_s": ray_start, "cell_epochs": train.epochs, "repeats": repeats,
            "teacher": f"{d.teacher.family} dim {d.teacher.dim}, {t_train.epochs} epoch(s)"}


def _warm() -> bool:
    import distill_core.sweep_ray  # noqa: F401  (what a cell imports)
    return True


def _run_cli(procs: int, threads: int, seed: int, quick: bool, out: Path) -> dict[str, Any]:
    args = ["run", "--seed", str(seed), "--device", "cpu", "--out", str(out)] + (["--epochs", "1"] if quick else [])
    launch = ([sys.executable, "-m", "distill_core"] if procs == 1 else
              [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
               "-m", "distill_core"])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # torch's intra-op threads per process
    t0 = time.perf_counter()
    p = subprocess.run(launch + args, cwd=C.ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(launch + args)} failed:\n{p.stderr[-3000:]}")
    rep = json.loads(out.read_text())
    return {"procs": procs, "threads": threads, "seed": seed, "wall_s": wall, "world_size": rep["config"]["world_size"],
            "train_s": sum(rep[r]["train_seconds"] for r in ROLES),
            "share_per_rank": rep.get("distributed", {}).get("share_per_rank", [1.0]),
            **{f"{r} ndcg@10": rep[r]["metrics"]["ndcg@10"] for r in ROLES}}


def ddp_part(quick: bool, seeds: list[int], tmp: Path, two_threads: bool) -> dict[str, Any]:
    variants = {"1 process, 1 thread": (1, 1), **({"1 process, 2 threads": (1, 2)} if two_threads else {}),
                "torchrun, 2 processes x 1 thread (DDP, gloo)": (2, 1)}
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for i, seed in enumerate(seeds):
        for name in (list(variants) if i % 2 == 0 else list(variants)[::-1]):  # alternating, as C.interleave
            procs, threads = variants[name]
            runs[name].append(_run_cli(procs, threads, seed, quick, tmp / f"run-{procs}-{threads}-{seed}.json"))
            print(f"  seed {seed}, {name}: {runs[name][-1]['wall_s']:.0f} s, student_kd ndcg@10 "
                  f"{runs[name][-1]['student_kd ndcg@10']:.4f}", file=sys.stderr, flush=True)
    one, two = runs["1 process, 1 thread"], runs["torchrun, 2 processes x 1 thread (DDP, gloo)"]
    quality = []
    for role in ROLES:
        a = sum(r[f"{role} ndcg@10"] for r in one) / len(one)
        b = sum(r[f"{role} ndcg@10"] for r in two) / len(two)
        per_seed = [t[f"{role} ndcg@10"] / o[f"{role} ndcg@10"] - 1 for o, t in zip(one, two)]
        quality.append({"model": role, "1 process ndcg@10": a, "2 processes ndcg@10": b, "difference": b / a - 1,
                        "largest per-seed difference": max(per_seed, key=abs),
                        f"within {TARGET:.0%}": C.verdict(abs(b / a - 1) <= TARGET)})
    base = one
    timing = [{"variant": name, "wall s (median)": C.median([r["wall_s"] for r in rs]),
               "training s (median)": C.median([r["train_s"] for r in rs]),
               "speed-up (wall)": C.median([r["wall_s"] for r in base]) / C.median([r["wall_s"] for r in rs]),
               "speed-up (training)": C.median([r["train_s"] for r in base]) / C.median([r["train_s"] for r in rs]),
               "share per rank": " / ".join(f"{s:.3f}" for s in rs[0]["share_per_rank"])}
              for name, rs in runs.items()]
    return {"runs": runs, "quality": quality, "timing": timing, "seeds": seeds}


CLUSTER = ("On a cluster: the sweep's cells are independent, so a Ray cluster with W free CPUs trains W cells at once "
           "(each cell's time unchanged, the grid's time about cells / W once the cells outnumber the start-up of "
           "Ray's workers); the run store stays with the driver. DDP adds an all-reduce of every gradient per step: "
           "on one machine over gloo's shared memory, across machines over the network, so its speed-up depends on "
           "the model's size (the embedding tables are all-reduced whole) against the step's compute; nccl on GPUs "
           "makes it cheap within a node.")


def _when(part: dict[str, Any]) -> str:
    if "load" not in part:  # measured before the parts recorded it: the machine line above gives the run's
        return "load average: see above"
    return f"load average {part['load']:.2f} at its start, {part['measured']}"


def _markdown(out: dict[str, Any]) -> str:
    md = []
    if "sweep" in out:
        sw = out["sweep"]
        md.append(C.table(f"A 2 x 2 sweep (8 cells, up to {sw['cell_epochs']} epochs each): here vs on a local Ray "
                          f"(medians of {sw['repeats']} interleaved repeat(s); Ray's start, {sw['ray_start_s']:.1f} s, "
                          f"not included; {_when(sw)})",
                          sw["rows"], echo=False))
    if "ddp" in out:
        dd = out["ddp"]
        seeds = ", ".join(map(str, dd["seeds"]))
        md.append(C.table(f"One process vs torchrun with 2 DDP processes: `distill_core run` on the sample (same "
                          f"global batch; medians over seeds {seeds}; {_when(dd)})", dd["timing"], echo=False))
        md.append(C.table(f"Test NDCG@10, 1 vs 2 processes (mean of {len(dd['seeds'])} seed(s); target: within "
                          f"{TARGET:.0%})", dd["quality"], echo=False))
    return "\n".join(md) + "\n\n" + CLUSTER


def main(argv: list[str] | None = None) -> int:
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--skip", choices=["sweep", "ddp"],
                   help="leave one part out (its figures in bench/results/scale_out.json, if any, are kept)")
    p.add_argument("--two-threads", action="store_true",
                   help="also one process with 2 torch threads (the same 2 cores as 2 workers or ranks)")
    a = p.parse_args(argv)
    started = C.start(a)
    seeds = [0] if a.quick else [int(s) for s in a.seeds.split(",")]
    repeats = a.repeats or (1 if a.quick else 2)
    out: dict[str, Any] = {"quick": a.quick, "cluster": CLUSTER}
    previous = C.RESULTS / "scale_out.json"
    if a.skip and previous.exists():
        kept = json.loads(previous.read_text()).get(a.skip)
        if kept is not None:
            out[a.skip] = kept
    parts = [(name, fn) for name, fn in (("sweep", lambda tmp: sweep_part(a.quick, repeats, tmp, a.two_threads)),
                                         ("ddp", lambda tmp: ddp_part(a.quick, seeds, tmp, a.two_threads)))
             if name != a.skip]
    with tempfile.TemporaryDirectory(prefix="scale_out-") as tmp, C.quiet_logs():
        for name, fn in parts:
            load, when = os.getloadavg()[0], time.strftime("%Y-%m-%d %H:%M")
            out[name] = fn(Path(tmp)) | {"load": load, "measured": when}
            out["markdown"] = _markdown(out)
            print(_markdown({name: out[name]}).split(CLUSTER)[0], flush=True)
            C.write_json("scale_out", a, out, started)  # after each part: a later failure keeps this one
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Live-update overhead: the same distillation run headless and under the background runner with a
poller reading its progress snapshots every 0.5 s; and the time from "start" to the first
progress snapshot that holds a loss value.

    .venv/bin/python bench/live.py            # full run (about 3 minutes)
    .venv/bin/python bench/live.py --quick

The run is the default distilled student (``RunConfig().student``, current soft labels) of a
teacher trained here for one epoch and kept in a temporary run store. Headless: ``train_model`` in
the main thread, no callbacks. Under the runner: the same call in a ``JobRunner`` job with the
runner's progress callback, while a poller thread reads ``snapshot()`` every 0.5 s; the "page"
poller also builds the frames and plotly figures the Distill page draws from each snapshot, and the
"page + post-run gc" poller adds what Streamlit does after every script run unless
``runner.postScriptGC`` is off (a full ``gc.collect()``; the dashboard turns it off in
``.streamlit/config.toml``): the live sidebar and the live section each rerun once a second.
Time to first loss: from building the job function (what the page's Start button does) to the
first snapshot with a loss, polled every 2 ms, for the dashboard's teacher and distill jobs.
"""
from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from typing import Any

import _common as C

from distill_core import RunConfig, RunStore, train_model
from distill_core.runner import JobRunner
from distill_core.workflows import distill_job, load_model, teacher_job

sys.path.insert(0, str(C.ROOT))  # ui/ (the dashboard's charts, timed here) runs from the checkout, not installed
from ui import charts  # noqa: E402

OVERHEAD_MAX = 0.10
FIRST_LOSS_MAX_S = 2.0
POLL_S = 0.5
WITH_GC = "runner + poller (page + post-run gc)"  # Streamlit's default, shown for comparison: no target


def headless(split, cfg: RunConfig, train, teacher) -> float:
    t0 = time.perf_counter()
    train_model(split, cfg.student, train, role="student_kd", teacher=teacher, distill=cfg.distill)
    return time.perf_counter() - t0


def under_runner(split, cfg: RunConfig, train, teacher, page: bool, post_gc: bool = False) -> dict[str, float]:
    runner = JobRunner()
    done = threading.Event()
    reads = [0]

    def poll(jid: str) -> None:
        while not done.wait(POLL_S):
            snap = runner.snapshot(jid)
            reads[0] += 1
            if page:  # what the Distill page's live fragment computes from a snapshot
                charts.loss_curves(charts.steps_frame(snap.steps))
                charts.val_curves(charts.epochs_frame(snap.epochs_log))
            if post_gc:
                gc.collect(2)

    t0 = time.perf_counter()
    jid = runner.submit("distill", lambda ctx: train_model(split, cfg.student, train, role="student_kd", teacher=teacher,
                                                          distill=cfg.distill, callbacks=[ctx.callback],
                                                          control=ctx.control))
    poller = threading.Thread(target=poll, args=(jid,))
    poller.start()
    snap = runner.wait(jid)
    elapsed = time.perf_counter() - t0
    done.set()
    poller.join()
    if snap.status != "done":
        raise RuntimeError(f"job {snap.status}: {snap.error}")
    return {"seconds": elapsed, "reads": reads[0], "steps_in_snapshot": len(snap.steps)}


def first_loss(runner: JobRunner, build, finish: bool = False) -> tuple[float, str]:
    """Seconds from building and submitting the job to its first snapshot with a loss."""
    t0 = time.perf_counter()
    jid = runner.submit("bench", build(), "bench")
    while True:
        snap = runner.snapshot(jid)
        if snap.latest.get("total") is not None:
            seconds = time.perf_counter() - t0
            break
        if not snap.active:
            raise RuntimeError(f"job ended ({snap.status}) before any loss: {snap.error}")
        time.sleep(0.002)
    if not finish:
        runner.cancel(jid)
    end = runner.wait(jid)
    return seconds, str(end.result)


def cold_probe(mode: str) -> None:
    """In a fresh process: the first job's time to first loss. ``off``: without the runner's warm-up;
    ``0`` / ``3``: Start pressed 0 or 3 seconds after the runner (and its warm-up) was created."""
    cfg = RunConfig()
    ds, _ = C.sample_split()
    if mode == "off":
        from distill_core import trainer
        trainer._warm_thread = threading.current_thread()  # marks the warm-up as done: it never runs
    with tempfile.TemporaryDirectory() as home, C.quiet_logs():
        store, runner = RunStore(home), JobRunner()
        time.sleep(float(mode) if mode != "off" else 0.0)
        train = replace(cfg.teacher_train, epochs=1, device="cpu")
        sec, _ = first_loss(runner, lambda: teacher_job(ds, cfg.teacher, train, store))
    print(json.dumps({"seconds": sec}))


def cold_starts(threads: int, probes: int) -> list[dict[str, Any]]:
    """Fresh processes, interleaved by mode: the first job of a process, with and without warm-up."""
    labels = {"off": "fresh process, no warm-up", "0": "fresh process, Start at once",
              "3": "fresh process, Start 3 s after the runner"}

    def probe(mode: str) -> float:
        proc = subprocess.run([sys.executable, __file__, "--cold-probe", mode, "--threads", str(threads)],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"cold probe {mode} failed: {proc.stderr[-2000:]}")
        return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])

    res = C.interleave({m: (lambda m=m: probe(m)) for m in labels}, probes)
    return [{"job": f"teacher job: {labels[m]}", "median s": C.median(v), "max s": max(v), "runs": len(v),
             "target <= 2 s": C.verdict(max(v) <= FIRST_LOSS_MAX_S)} for m, v in res.items()]


def main() -> None:
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--cold-probe", choices=["off", "0", "3"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.cold_probe:
        C.setup_threads(args.threads)
        return cold_probe(args.cold_probe)
    started = C.start(args)
    cfg = RunConfig()
    ds, split = C.sample_split()
    repeats = args.repeats or (2 if args.quick else 5)
    epochs = 1 if args.quick else 3
    out: dict[str, Any] = {"targets": {"overhead_max": OVERHEAD_MAX, "first_loss_max_s": FIRST_LOSS_MAX_S},
                           "poll_interval_s": POLL_S}
    with tempfile.TemporaryDirectory() as home, C.quiet_logs():
        store, runner = RunStore(home), JobRunner()
        # the teacher job (one epoch) both stores the teacher and gives the first time-to-loss figure
        t_train = replace(cfg.teacher_train, epochs=1, device="cpu")
        s_train = replace(cfg.student_train, device="cpu")
        first: dict[str, list[float]] = {"teacher job (sasrec)": [], "distill job (mf student)": []}
        sec, teacher_run = first_loss(runner, lambda: teacher_job(ds, cfg.teacher, t_train, store), finish=True)
        first["teacher job (sasrec)"].append(sec)
        for _ in range(repeats):
            first["distill job (mf student)"].append(first_loss(runner, lambda: distill_job(
                ds, teacher_run, cfg.student, s_train, cfg.distill, store, reuse_plain=False))[0])
            first["teacher job (sasrec)"].append(first_loss(runner, lambda: teacher_job(ds, cfg.teacher, t_train, store))[0])
        rows = [{"job": f"{k}: process warm", "median s": C.median(v), "max s": max(v), "runs": len(v),
                 "target <= 2 s": C.verdict(max(v) <= FIRST_LOSS_MAX_S)} for k, v in first.items()]
        rows += cold_starts(args.threads, 1 if args.quick else 3)
        out["first_loss"] = rows
        out["first_loss_raw_s"] = first
        C.table("Start -> first progress snapshot with a loss value", rows)

        teacher = load_model(store, teacher_run, ds)
        train = replace(s_train, epochs=epochs, patience=0)
        res = C.interleave({"headless": lambda: headless(split, cfg, train, teacher),
                            "runner + poller (read)": lambda: under_runner(split, cfg, train, teacher, page=False),
                            "runner + poller (page)": lambda: under_runner(split, cfg, train, teacher, page=True),
                            WITH_GC: lambda: under_runner(split, cfg, train, teacher, page=True, post_gc=True)},
                           repeats)
    base = C.median(res["headless"])
    rows = [{"variant": "headless", "median s": base, "overhead": 0.0, "snapshot reads": 0, "target <= 10%": "-"}]
    for name in ("runner + poller (read)", "runner + poller (page)", WITH_GC):
        t = C.median([r["seconds"] for r in res[name]])
        rows.append({"variant": name, "median s": t, "overhead": t / base - 1,
                     "snapshot reads": C.median([r["reads"] for r in res[name]]),
                     "target <= 10%": C.verdict(t / base - 1 <= OVERHEAD_MAX) if name != WITH_GC
                     else "- (Streamlit's default; off in the dashboard)"})
    out["overhead"] = rows
    out["overhead_raw"] = res
    out["run"] = {"model": f"{cfg.student.family} dim {cfg.student.dim}", "epochs": epochs, "repeats": repeats,
                  "training_pairs": len(split.train_items)}
    C.table(f"Distillation run ({epochs} epoch(s) of the default student): headless vs background runner", rows)
    C.write_json("live", args, out, started)


if __name__ == "__main__":
    main()

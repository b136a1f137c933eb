"""``python -m distill_core``: headless runs with a JSON report, and the loss calculator.

    python -m distill_core run [--data PATH] [--format auto|csv|sequences|parquet|movielens|recbole] [--no-header] ... --out report.json
    python -m distill_core loss --p 0.1,0.3,0.4,0.1 --q 0.2,0.35,0.3,0.15 --alpha 0.7 [--normalize]
    python -m distill_core sweep --alpha 0,0.5,1 --temperature 1,2,4 [--student-ratio 0.1] [...] --out sweep.json
    python -m distill_core make-sample [--out sample_data]

``--student-ratio R`` (run, sweep) sizes the student on the data: the largest dim within R x the teacher's
parameters. A sweep reuses a stored teacher of the same config, dataset and seed, and every stored cell,
and tunes the plain student over as many cells (learning rate x weight decay) as alpha x T.
Progress goes to stderr; bad input exits with status 2 and a message naming the problem.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from distill_core import sizing
from distill_core.config import MODEL_FAMILIES, STUDENT_FAMILIES, DataOptions, DistillConfig, ModelSpec, RunConfig, TrainConfig
from distill_core.errors import RecDistillError

log = logging.getLogger("distill_core")
RATIO_HELP = ("size budget instead of --student-dim: the largest student dim whose parameters are at most this "
              "share of the teacher's on this dataset (0 < ratio <= 1, e.g. 0.1)")


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from e


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m distill_core", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = RunConfig()
    r = sub.add_parser("run", help="train a teacher, distil a student, train the plain student; write a JSON report")
    r.add_argument("--data", help="dataset file or folder (default: the bundled sample)")
    r.add_argument("--format", default="auto", choices=["auto", "csv", "sequences", "parquet", "movielens", "ml-100k",
                                                        "ml-1m", "ml-latest", "recbole"])
    r.add_argument("--no-header", action="store_true",
                    help="csv/sequences: the first line is data, not a header (else told by its content)")
    r.add_argument("--rating-threshold", type=float, default=None, help="keep ratings >= this as positives")
    r.add_argument("--kcore", type=int, default=0)
    r.add_argument("--teacher", default=d.teacher.family, choices=MODEL_FAMILIES)
    r.add_argument("--teacher-dim", type=int, default=d.teacher.dim)
    r.add_argument("--student", default=d.student.family, choices=STUDENT_FAMILIES)
    r.add_argument("--student-dim", type=int, default=None, help=f"default {d.student.dim}, or see --student-ratio")
    r.add_argument("--student-ratio", type=float, default=None, help=RATIO_HELP)
    r.add_argument("--alpha", type=float, default=d.distill.alpha, help="weight of the hard CE (1 - alpha: soft KL)")
    r.add_argument("--temperature", type=float, default=d.distill.temperature)
    r.add_argument("--no-t2", action="store_true", help="do not multiply the KL term by T^2")
    r.add_argument("--epochs", type=int, default=None,
                   help=f"maximum epochs per model (default: teacher {d.teacher_train.epochs}, students "
                        f"{d.student_train.epochs}; early stopping on validation NDCG@10)")
    r.add_argument("--lr", type=float, default=None,
                   help=f"Adam learning rate (default: teacher {d.teacher_train.lr:g}, students {d.student_train.lr:g})")
    r.add_argument("--patience", type=int, default=None,
                   help=f"epochs without a better validation NDCG@10 before a model stops (default: teacher "
                        f"{d.teacher_train.patience}, students {d.student_train.patience}; 0: never stop early)")
    r.add_argument("--layers", type=int, default=d.teacher.layers, help="teacher layers (two_tower, sasrec)")
    r.add_argument("--soft-labels", default="auto", choices=["auto", "current", "per-step"],
                   help="soft labels of a sequential teacher: per user after the training sequence (current) "
                        "or at each training step (per-step); auto: per-step within a family, current across")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    r.add_argument("--out", required=True, help="where to write report.json")
    lo = sub.add_parser("loss", help="CE, KL and the total for two distributions (or logits at a temperature)")
    lo.add_argument("--p", type=_floats, help="teacher probabilities, comma-separated")
    lo.add_argument("--q", type=_floats, help="student probabilities, comma-separated")
    lo.add_argument("--teacher-logits", type=_floats)
    lo.add_argument("--student-logits", type=_floats)
    lo.add_argument("--temperature", type=float, default=1.0)
    lo.add_argument("--alpha", type=float, required=True)
    lo.add_argument("--normalize", action="store_true", help="divide p and q by their sums if they do not sum to 1")
    ms = sub.add_parser("make-sample", help="write the bundled sample dataset")
    ms.add_argument("--out", default="sample_data")
    ms.add_argument("--scale", type=int, default=1, help="users and items x this factor")
    _add_sweep(sub, d)
    return p


def _add_sweep(sub: Any, d: RunConfig) -> None:
    sw = sub.add_parser("sweep", help="distil one student per (alpha, T) cell of a grid; resumable; JSON + CSV")
    sw.add_argument("--alpha", required=True, help="alpha grid, comma-separated values in [0, 1]")
    sw.add_argument("--temperature", required=True, help="temperature grid, comma-separated values > 0")
    sw.add_argument("--data", help="dataset file or folder (default: the bundled sample)")
    sw.add_argument("--format", default="auto", choices=["auto", "csv", "sequences", "parquet", "movielens", "ml-100k",
                                                         "ml-1m", "ml-latest", "recbole"])
    sw.add_argument("--no-header", action="store_true",
                    help="csv/sequences: the first line is data, not a header (else told by its content)")
    sw.add_argument("--rating-threshold", type=float, default=None, help="keep ratings >= this as positives")
    sw.add_argument("--kcore", type=int, default=0)
    sw.add_argument("--teacher-run", help="a teacher run id in the store to reuse (else a teacher is trained)")
    sw.add_argument("--teacher", default=d.teacher.family, choices=MODEL_FAMILIES)
    sw.add_argument("--teacher-dim", type=int, default=d.teacher.dim)
    sw.add_argument("--layers", type=int, default=d.teacher.layers, help="teacher layers (two_tower, sasrec)")
    sw.add_argument("--teacher-epochs", type=int, default=d.teacher_train.epochs)
    sw.add_argument("--student", default=d.student.family, choices=STUDENT_FAMILIES)
    sw.add_argument("--student-dim", type=int, default=None, help=f"default {d.student.dim}, or see --student-ratio")
    sw.add_argument("--student-ratio", type=float, default=None, help=RATIO_HELP)
    sw.add_argument("--epochs", type=int, default=d.student_train.epochs,
                    help="maximum epochs per cell (early stopping on validation NDCG@10)")
    sw.add_argument("--lr", type=float, default=d.student_train.lr, help="the students' Adam learning rate")
    sw.add_argument("--patience", type=int, default=d.student_train.patience,
                    help="epochs without a better validation NDCG@10 before a cell stops (0: never stop early)")
    sw.add_argument("--no-t2", action="store_true", help="do not multiply the KL term by T^2")
    sw.add_argument("--soft-labels", default="auto", choices=["auto", "current", "per-step"])
    sw.add_argument("--seed", type=int, default=0)
    sw.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    sw.add_argument("--out", required=True,
                    help="where to write sweep.json (every cell, distilled and plain, also goes to a .csv beside it)")


def _val(m: dict[str, Any]) -> str:
    # an epoch trained again for a number of epochs chosen before has no validation score
    return f"  val ndcg@10 {m['val_ndcg@10']:.4f}" if "val_ndcg@10" in m else ""


class _StderrProgress:
    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "epoch_end":
            m = payload["metrics"]
            print(f"  epoch {int(m['epoch']):3d}/{payload['epochs']}  total {m['total']:.4f}  ce {m['ce']:.4f}  "
                  f"kl {m['kl']:.4f}{_val(m)}", file=sys.stderr, flush=True)


def _student(a: argparse.Namespace, d: RunConfig) -> ModelSpec:
    """The student of --student and --student-dim (checked with --student-ratio before any data is read)."""
    if a.student_ratio is not None:
        sizing.check_ratio(a.student_ratio, "--student-ratio")
        if a.student_dim is not None:
            raise RecDistillError("give --student-dim or --student-ratio, not both")
    return ModelSpec(a.student, d.student.dim if a.student_dim is None else a.student_dim)


def _sized(a: argparse.Namespace, student: ModelSpec, teacher: ModelSpec, ds: Any) -> ModelSpec:
    """The student within --student-ratio of the teacher on ``ds`` (as given without it); says its share."""
    if a.student_ratio is not None:
        student = sizing.student_for_ratio(student, sizing.n_params(teacher, ds.n_users, ds.n_items),
                                           a.student_ratio, ds.n_users, ds.n_items, "--student-ratio")
    print(f"student {sizing.size_line(student, teacher, ds.n_users, ds.n_items)}"
          + (f"; the largest within --student-ratio {a.student_ratio:g}" if a.student_ratio is not None else ""),
          file=sys.stderr)
    return student


def _run(a: argparse.Namespace) -> dict[str, Any]:
    from distill_core.data import load_dataset, load_sample
    from distill_core.workflows import run_pipeline

    opts = DataOptions(rating_threshold=a.rating_threshold, kcore=a.kcore)
    d = RunConfig()

    def train(base: TrainConfig) -> TrainConfig:
        # "is None", not "or": --epochs 0 / --lr 0 must reach the validation, not fall back to the default
        return replace(base, epochs=base.epochs if a.epochs is None else a.epochs,
                       lr=base.lr if a.lr is None else a.lr,
                       patience=base.patience if a.patience is None else a.patience, seed=a.seed, device=a.device)

    cfg = replace(d, teacher=replace(d.teacher, family=a.teacher, dim=a.teacher_dim, layers=a.layers),
                  student=_student(a, d), teacher_train=train(d.teacher_train),
                  student_train=train(d.student_train), data=opts,
                  distill=DistillConfig(a.alpha, a.temperature, not a.no_t2, a.soft_labels))
    ds = load_dataset(a.data, a.format, opts, no_header=a.no_header) if a.data else load_sample(opts)
    print(f"dataset {ds.name}: {ds.n_users} users, {ds.n_items} items, {ds.n_interactions} interactions",
          file=sys.stderr)
    cfg = replace(cfg, student=_sized(a, cfg.student, cfg.teacher, ds))
    return run_pipeline(ds, cfg, callbacks=[_Phase(), _StderrProgress()]).report()


class _Phase:
    def __init__(self) -> None:
        self.n = 0

    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "train_start":
            self.n += 1
            label = ("teacher", "distilled student", "plain student")[min(self.n, 3) - 1]
            print(f"training the {label} ({payload['examples']} examples)", file=sys.stderr, flush=True)


def _loss(a: argparse.Namespace) -> dict[str, Any]:
    from distill_core.losses import distribution_loss, logits_loss

    if a.p is not None and a.q is not None:
        return distribution_loss(a.p, a.q, a.alpha, normalize=a.normalize).to_dict()
    if a.teacher_logits is not None and a.student_logits is not None:
        return logits_loss(a.teacher_logits, a.student_logits, a.temperature, a.alpha).to_dict()
    raise RecDistillError("give --p and --q, or --teacher-logits and --student-logits")


def _clean(x: Any) -> Any:
    """JSON without NaN/inf (they become null)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _wait(runner: Any, job_id: str) -> Any:
    """Follow a background job on stderr until it ends (Ctrl-C stops it at the next mini-batch)."""
    shown, rows = None, 0  # the phase last announced, epoch rows printed
    try:
        while True:
            snap = runner.snapshot(job_id)
            for m in snap.epochs_log[rows:]:  # rows first: a short phase may end between two polls
                if m["phase"] != shown:
                    shown = m["phase"]
                    print(f"training {shown}", file=sys.stderr, flush=True)
                print(f"  epoch {int(m['epoch']):3d}  total {m['total']:.4f}  kl {m['kl']:.4f}{_val(m)}",
                      file=sys.stderr, flush=True)
            rows = len(snap.epochs_log)
            if snap.status == "running" and snap.phase and snap.phase != shown:
                shown = snap.phase
                print(f"training {shown} ({snap.phase_index + 1}/{snap.n_phases})", file=sys.stderr, flush=True)
            if not snap.active:
                return snap
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("stopping at the next mini-batch…", file=sys.stderr, flush=True)
        runner.cancel(job_id)
        return runner.wait(job_id)


def _sweep(a: argparse.Namespace) -> int:
    from distill_core import sweep
    from distill_core.data import load_dataset, load_sample
    from distill_core.workflows import teacher_job
    from distill_core.runner import JobRunner
    from distill_core.store import RunStore

    d = RunConfig()
    # the grids are checked before anything is loaded or trained; messages name the flag
    alphas = sweep.parse_grid(a.alpha, "alpha", "--alpha")
    temperatures = sweep.parse_grid(a.temperature, "temperature", "--temperature")
    student_train = replace(d.student_train, epochs=a.epochs, lr=a.lr, patience=a.patience, seed=a.seed,
                            device=a.device)
    spec = sweep.SweepSpec(alphas, temperatures, _student(a, d), student_train, not a.no_t2, a.soft_labels)
    opts = DataOptions(rating_threshold=a.rating_threshold, kcore=a.kcore)
    ds = load_dataset(a.data, a.format, opts, no_header=a.no_header) if a.data else load_sample(opts)
    print(f"dataset {ds.name}: {ds.n_users} users, {ds.n_items} items, {ds.n_interactions} interactions",
          file=sys.stderr)
    store, runner = RunStore(), JobRunner()
    teacher = a.teacher_run
    t_spec = (ModelSpec(**store.get(teacher).config["model"]) if teacher is not None
              else replace(d.teacher, family=a.teacher, dim=a.teacher_dim, layers=a.layers))
    spec = replace(spec, student=_sized(a, spec.student, t_spec, ds))  # an impossible budget stops before training
    if teacher is None:
        t_train = replace(d.teacher_train, epochs=a.teacher_epochs, seed=a.seed, device=a.device)
        teacher = sweep.find_teacher(store, ds, t_spec, t_train)  # same config, dataset and seed: its cells too
        if teacher is not None:
            print(f"reusing stored teacher run {teacher} (same model, training settings, seed, split and "
                  f"dataset)", file=sys.stderr)
        else:
            snap = _wait(runner, runner.submit("teacher", teacher_job(ds, t_spec, t_train, store)))
            if snap.status != "done":
                print(f"error: the teacher {snap.status}: {snap.error or 'stopped'}", file=sys.stderr)
                return 1
            teacher = snap.result
    job = sweep.sweep_job(ds, teacher, spec, store)  # refuses a missing teacher or one of another dataset
    print(f"teacher {teacher}; sweep of {len(alphas)} x {len(temperatures)} cells (and as many plain cells) in "
          f"{store.home}", file=sys.stderr)
    snap = _wait(runner, runner.submit("sweep", job))
    report = sweep.sweep_report(store, ds, teacher, spec, snap.result if snap.status == "done" else None)
    out = Path(a.out)
    out.write_text(json.dumps(_clean(report), indent=2))
    _cells_table(report).to_csv(out.with_suffix(".csv"), index=False)
    if snap.status != "done":
        print(f"error: the sweep {snap.status}: {snap.error or 'stopped'}; the cells that finished are stored "
              f"and the same command resumes the sweep; partial report in {out}", file=sys.stderr)
        return 1
    best, plain = report["best"], report["best_plain"]
    best_text = (f"best distilled cell: alpha {best['alpha']:g}, T {best['temperature']:g}, test NDCG@10 "
                 f"{best['ndcg@10']:.4f}" if best is not None else "no distilled cell finished")
    plain_text = (f"best plain cell: lr {plain['lr']:g}, weight decay {plain['weight_decay']:g}, test NDCG@10 "
                  f"{plain['ndcg@10']:.4f}" if plain is not None else "no plain cell finished")
    gain = report["gain_ndcg@10"]
    print(f"trained {report['trained']} run(s), reused {report['reused']} stored run(s), {len(report['failed'])} "
          f"failed; {report['budget']}; {best_text}; {plain_text}"
          + (f"; gain of the best distilled over the best plain cell on test NDCG@10: x{gain:.3f}"
             if math.isfinite(gain) else "")
          + f"; report in {out} and {out.with_suffix('.csv')}", file=sys.stderr)
    return 0


def _cells_table(report: dict[str, Any]) -> Any:
    """Every cell of both sides, one row each: side (distilled | plain), its knobs, status, run, numbers."""
    import pandas as pd

    train = report["train"]
    kd = pd.DataFrame(report["cells"]).assign(side="distilled", lr=train["lr"], weight_decay=train["weight_decay"])
    plain = pd.DataFrame(report["plain_cells"]).assign(side="plain")
    cols = ["side", "alpha", "temperature", "lr", "weight_decay", "status", "run", "val_ndcg@10", "ndcg@10",
            "hr@10", "final_kl"]
    return pd.concat([kd, plain], ignore_index=True).reindex(columns=cols)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    a = _parser().parse_args(argv)
    try:
        if a.command == "run":
            report = _run(a)
            Path(a.out).write_text(json.dumps(_clean(report), indent=2))
            s = report["summary"]
            print(f"teacher ndcg@10 {report['teacher']['metrics']['ndcg@10']:.4f} | distilled "
                  f"{report['student_kd']['metrics']['ndcg@10']:.4f} | plain "
                  f"{report['student_plain']['metrics']['ndcg@10']:.4f} | gain x{s['gain_ndcg@10']:.3f}, "
                  f"params x{s['param_ratio']:.3f}; report in {a.out}", file=sys.stderr)
        elif a.command == "loss":
            print(json.dumps(_clean(_loss(a)), indent=2))
        elif a.command == "sweep":
            return _sweep(a)
        elif a.command == "make-sample":
            from distill_core.data.sample import SampleSpec, write_sample
            paths = write_sample(a.out, SampleSpec().scaled(a.scale) if a.scale > 1 else SampleSpec())
            print(f"wrote {paths[0]} and {paths[1]}", file=sys.stderr)
    except RecDistillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

"""``python -m distill_core``: headless runs with a JSON report, and the loss calculator.

    python -m distill_core run [--data PATH] [--format auto|csv|parquet|movielens|recbole] ... --out report.json
    python -m distill_core loss --p 0.1,0.3,0.4,0.1 --q 0.2,0.35,0.3,0.15 --alpha 0.7 [--normalize]
    python -m distill_core make-sample [--out sample_data]

Progress goes to stderr; bad input exits with status 2 and a message naming the problem.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from distill_core.config import MODEL_FAMILIES, DataOptions, DistillConfig, ModelSpec, RunConfig, TrainConfig
from distill_core.errors import RecDistillError

log = logging.getLogger("distill_core")


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
    r.add_argument("--format", default="auto", choices=["auto", "csv", "parquet", "movielens", "ml-100k", "ml-1m",
                                                        "ml-latest", "recbole"])
    r.add_argument("--rating-threshold", type=float, default=None, help="keep ratings >= this as positives")
    r.add_argument("--kcore", type=int, default=0)
    r.add_argument("--teacher", default=d.teacher.family, choices=MODEL_FAMILIES)
    r.add_argument("--teacher-dim", type=int, default=d.teacher.dim)
    r.add_argument("--student", default=d.student.family, choices=MODEL_FAMILIES)
    r.add_argument("--student-dim", type=int, default=d.student.dim)
    r.add_argument("--alpha", type=float, default=d.distill.alpha, help="weight of the hard CE (1 - alpha: soft KL)")
    r.add_argument("--temperature", type=float, default=d.distill.temperature)
    r.add_argument("--no-t2", action="store_true", help="do not multiply the KL term by T^2")
    r.add_argument("--epochs", type=int, default=None,
                   help=f"maximum epochs per model (default: teacher {d.teacher_train.epochs}, students "
                        f"{d.student_train.epochs}; early stopping on validation NDCG@10)")
    r.add_argument("--lr", type=float, default=None,
                   help=f"Adam learning rate (default: teacher {d.teacher_train.lr:g}, students {d.student_train.lr:g})")
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
    return p


class _StderrProgress:
    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "epoch_end":
            m = payload["metrics"]
            print(f"  epoch {int(m['epoch']):3d}/{payload['epochs']}  total {m['total']:.4f}  ce {m['ce']:.4f}  "
                  f"kl {m['kl']:.4f}  val ndcg@10 {m['val_ndcg@10']:.4f}", file=sys.stderr, flush=True)


def _run(a: argparse.Namespace) -> dict[str, Any]:
    from distill_core.data import load_dataset, load_sample
    from distill_core.distill import run_pipeline

    opts = DataOptions(rating_threshold=a.rating_threshold, kcore=a.kcore)
    d = RunConfig()

    def train(base: TrainConfig) -> TrainConfig:
        return replace(base, epochs=a.epochs or base.epochs, lr=a.lr or base.lr, seed=a.seed, device=a.device)

    cfg = replace(d, teacher=replace(d.teacher, family=a.teacher, dim=a.teacher_dim, layers=a.layers),
                  student=ModelSpec(a.student, a.student_dim), teacher_train=train(d.teacher_train),
                  student_train=train(d.student_train), data=opts,
                  distill=DistillConfig(a.alpha, a.temperature, not a.no_t2, a.soft_labels))
    ds = load_dataset(a.data, a.format, opts) if a.data else load_sample(opts)
    print(f"dataset {ds.name}: {ds.n_users} users, {ds.n_items} items, {ds.n_interactions} interactions",
          file=sys.stderr)
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
        elif a.command == "make-sample":
            from distill_core.data.sample import SampleSpec, write_sample
            paths = write_sample(a.out, SampleSpec().scaled(a.scale) if a.scale > 1 else SampleSpec())
            print(f"wrote {paths[0]} and {paths[1]}", file=sys.stderr)
    except RecDistillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

"""``python -m distill_core run``: train a teacher, distil a student, train the same student plainly
(``workflows.run_pipeline``) and write the JSON report; progress on stderr."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from distill_core.cli.common import RATIO_HELP, add_data_args, clean, data_options, load_data, sized, student, val
from distill_core.config import MODEL_FAMILIES, STUDENT_FAMILIES, DistillConfig, RunConfig, TrainConfig


def add_parser(sub: Any, d: RunConfig) -> None:
    r = sub.add_parser("run", help="train a teacher, distil a student, train the plain student; write a JSON report")
    add_data_args(r)
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


class _StderrProgress:
    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "epoch_end":
            m = payload["metrics"]
            print(f"  epoch {int(m['epoch']):3d}/{payload['epochs']}  total {m['total']:.4f}  ce {m['ce']:.4f}  "
                  f"kl {m['kl']:.4f}{val(m)}", file=sys.stderr, flush=True)


class _Phase:
    def __init__(self) -> None:
        self.n = 0

    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "train_start":
            self.n += 1
            label = ("teacher", "distilled student", "plain student")[min(self.n, 3) - 1]
            print(f"training the {label} ({payload['examples']} examples)", file=sys.stderr, flush=True)


def _run(a: argparse.Namespace) -> dict[str, Any]:
    from distill_core.workflows import run_pipeline

    opts = data_options(a)
    d = RunConfig()

    def train(base: TrainConfig) -> TrainConfig:
        # "is None", not "or": --epochs 0 / --lr 0 must reach the validation, not fall back to the default
        return replace(base, epochs=base.epochs if a.epochs is None else a.epochs,
                       lr=base.lr if a.lr is None else a.lr,
                       patience=base.patience if a.patience is None else a.patience, seed=a.seed, device=a.device)

    # every setting is checked here, before any data is read
    cfg = replace(d, teacher=replace(d.teacher, family=a.teacher, dim=a.teacher_dim, layers=a.layers),
                  student=student(a, d), teacher_train=train(d.teacher_train),
                  student_train=train(d.student_train), data=opts,
                  distill=DistillConfig(a.alpha, a.temperature, not a.no_t2, a.soft_labels))
    ds = load_data(a, opts)
    cfg = replace(cfg, student=sized(a, cfg.student, cfg.teacher, ds))
    return run_pipeline(ds, cfg, callbacks=[_Phase(), _StderrProgress()]).report()


def command(a: argparse.Namespace) -> int:
    report = _run(a)
    Path(a.out).write_text(json.dumps(clean(report), indent=2))
    s = report["summary"]
    print(f"teacher ndcg@10 {report['teacher']['metrics']['ndcg@10']:.4f} | distilled "
          f"{report['student_kd']['metrics']['ndcg@10']:.4f} | plain "
          f"{report['student_plain']['metrics']['ndcg@10']:.4f} | gain x{s['gain_ndcg@10']:.3f}, "
          f"params x{s['param_ratio']:.3f}; report in {a.out}", file=sys.stderr)
    return 0

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
from distill_core.errors import RecDistillError
from distill_core.cli.methods import add_method_args, check_method, method_fields
from distill_core.distillers import TERM_NAMES
from distill_core.cli.scale import add_scale_args, check_scale, scale_train, soft_top_k
from distill_core import catalogue, sizing
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
                   help=f"Adam learning rate of every model (default: teacher {d.teacher_train.lr:g}; students "
                        f"{d.student_train.lr:g} on the full softmax, {catalogue.SAMPLED_STUDENT_LR:g} on the sampled "
                        "path, catalogue.student_lr)")
    r.add_argument("--patience", type=int, default=None,
                   help=f"epochs without a better validation NDCG@10 before a model stops (default: teacher "
                        f"{d.teacher_train.patience} and at least {d.teacher_train.patience_steps:,} steps, students "
                        f"{d.student_train.patience}; given, exactly this many epochs; 0: never stop early)")
    r.add_argument("--layers", type=int, default=d.teacher.layers, help="teacher layers (two_tower, sasrec)")
    r.add_argument("--max-len", default="auto",
                   help="recent items a sequential model reads; auto: the users' mean training interactions, "
                        "rounded up to 10, within 20-200 (sizing.auto_max_len)")
    r.add_argument("--soft-labels", default="auto", choices=["auto", "current", "per-step"],
                   help="soft labels of a sequential teacher: per user after the training sequence (current) "
                        "or at each training step (per-step); auto: per-step within a family, current across")
    add_scale_args(r, d)
    add_method_args(r, d)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    r.add_argument("--out", required=True, help="where to write report.json")


class _StderrProgress:
    """Epoch lines on stderr; ``term`` names the distillation method's term (``distillers.TERM_NAMES``)."""

    def __init__(self, term: str = "KL") -> None:
        self.term = term.lower()

    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "epoch_end":
            m = payload["metrics"]
            print(f"  epoch {int(m['epoch']):3d}/{payload['epochs']}  total {m['total']:.4f}  ce {m['ce']:.4f}  "
                  f"{self.term} {m['kl']:.4f}{val(m)}", file=sys.stderr, flush=True)


class _Phase:
    def __init__(self) -> None:
        self.n = 0

    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "train_start" and payload.get("refit"):  # a lagged selection's second fit of the same model
            print(f"refitting the distilled student on the current soft labels to the selected epoch "
                  f"({payload['examples']} examples)", file=sys.stderr, flush=True)
        elif name == "train_start":
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
                       patience=base.patience if a.patience is None else a.patience,
                       patience_steps=base.patience_steps if a.patience is None else 0, seed=a.seed, device=a.device,
                       **scale_train(a))

    # every setting is checked here, before any data is read
    cfg = replace(d, teacher=replace(d.teacher, family=a.teacher, dim=a.teacher_dim, layers=a.layers),
                  student=student(a, d), teacher_train=train(d.teacher_train),
                  student_train=train(d.student_train), data=opts,
                  distill=DistillConfig(a.alpha, a.temperature, not a.no_t2, a.soft_labels, soft_top_k=soft_top_k(a),
                                        **method_fields(a)))
    if a.max_len != "auto" and not (a.max_len.isdigit() and 1 <= int(a.max_len) <= 1000):
        raise RecDistillError(f"--max-len must be auto or an integer between 1 and 1000 (got {a.max_len!r})")
    ds = load_data(a, opts)
    check_scale(a, ds)
    check_method(cfg, ds)
    max_len = sizing.auto_max_len(ds) if a.max_len == "auto" else int(a.max_len)
    print(f"sequential models read the last {max_len} items" + (" (auto)" if a.max_len == "auto" else ""),
          file=sys.stderr)
    cfg = replace(cfg, teacher=replace(cfg.teacher, max_len=max_len), student=replace(cfg.student, max_len=max_len))
    cfg = replace(cfg, student=sized(a, cfg.student, cfg.teacher, ds))
    if a.lr is None:  # the students' default follows their path (catalogue.student_lr says why)
        lr = catalogue.student_lr(cfg.student_train.loss, ds.n_items)
        cfg = replace(cfg, student_train=replace(cfg.student_train, lr=lr))
        print(f"students' learning rate {lr:g} (the default on the "
              f"{catalogue.resolve_loss(cfg.student_train, ds.n_items)} path)", file=sys.stderr)
    term = TERM_NAMES[cfg.distill.method]
    return run_pipeline(ds, cfg, callbacks=[_Phase(), _StderrProgress(term)]).report()


def command(a: argparse.Namespace) -> int:
    from distill_core import distributed

    with distributed.launched(a.device) as dist:  # under torchrun: this rank of a DDP group; else None
        report = distributed.annotate(_run(a), dist)  # config.world_size, and each rank's share of the examples
        if dist is not None and not dist.is_main:
            return 0  # rank 0 writes the report
    Path(a.out).write_text(json.dumps(clean(report), indent=2))
    for role in ("teacher", "student_kd", "student_plain"):
        r = report[role]
        if r.get("stopped") in ("epoch cap", "time budget"):
            print(f"warning: the {role.replace('_', ' ')} stopped on the {r['stopped']} after {r['epochs_run']} epochs "
                  f"(best epoch {r['best_epoch']}), not on patience: it may not have converged", file=sys.stderr)
    s, kd = report["summary"], report["student_kd"]
    how = f" ({kd['selection']} selection)" if kd.get("selection") else ""
    print(f"teacher ndcg@10 {report['teacher']['metrics']['ndcg@10']:.4f} | distilled "
          f"{kd['metrics']['ndcg@10']:.4f}{how} | plain "
          f"{report['student_plain']['metrics']['ndcg@10']:.4f} | gain x{s['gain_ndcg@10']:.3f}, "
          f"params x{s['param_ratio']:.3f}; report in {a.out}", file=sys.stderr)
    return 0

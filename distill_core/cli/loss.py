"""``python -m distill_core loss``: CE, KL and the total for two distributions, or for two logit vectors at a
temperature (distill_core.losses), printed as JSON."""
from __future__ import annotations

import argparse
import json
from typing import Any

from distill_core.cli.common import clean
from distill_core.errors import RecDistillError


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from e


def add_parser(sub: Any) -> None:
    lo = sub.add_parser("loss", help="CE, KL and the total for two distributions (or logits at a temperature)")
    lo.add_argument("--p", type=_floats, help="teacher probabilities, comma-separated")
    lo.add_argument("--q", type=_floats, help="student probabilities, comma-separated")
    lo.add_argument("--teacher-logits", type=_floats)
    lo.add_argument("--student-logits", type=_floats)
    lo.add_argument("--temperature", type=float, default=1.0)
    lo.add_argument("--alpha", type=float, required=True)
    lo.add_argument("--normalize", action="store_true", help="divide p and q by their sums if they do not sum to 1")


def _loss(a: argparse.Namespace) -> dict[str, Any]:
    from distill_core.losses import distribution_loss, logits_loss

    if a.p is not None and a.q is not None:
        return distribution_loss(a.p, a.q, a.alpha, normalize=a.normalize).to_dict()
    if a.teacher_logits is not None and a.student_logits is not None:
        return logits_loss(a.teacher_logits, a.student_logits, a.temperature, a.alpha).to_dict()
    raise RecDistillError("give --p and --q, or --teacher-logits and --student-logits")


def command(a: argparse.Namespace) -> int:
    print(json.dumps(clean(_loss(a)), indent=2))
    return 0

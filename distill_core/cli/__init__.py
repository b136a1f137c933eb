"""``python -m distill_core``: headless runs with a JSON report, and the loss calculator.

    python -m distill_core run [--data PATH] [--format auto|csv|sequences|parquet|movielens|recbole] [--no-header] ... --out report.json
    python -m distill_core loss --p 0.1,0.3,0.4,0.1 --q 0.2,0.35,0.3,0.15 --alpha 0.7 [--normalize]
    python -m distill_core sweep --alpha 0,0.5,1 --temperature 1,2,4 [--student-ratio 0.1] [...] --out sweep.json
    python -m distill_core sweep ... [--backend ray [--address local|auto|HOST:PORT] [--max-concurrent N]]
    torchrun --standalone --nproc_per_node N -m distill_core run ...   (DistributedDataParallel, distill_core.distributed)
    python -m distill_core make-sample [--out sample_data]

``--student-ratio R`` (run, sweep) sizes the student on the data: the largest dim within R x the teacher's
parameters. A sweep reuses a stored teacher of the same config, dataset and seed, and every stored cell,
and tunes the plain student over as many cells (learning rate x weight decay) as alpha x T.
Progress goes to stderr; bad input exits with status 2 and a message naming the problem.

One module per command (``run``, ``sweep``, ``loss``; ``make-sample`` is the few lines below), each with its
``add_parser`` and ``command``; ``common`` holds what run and sweep share: the data flags, loading, sizing
the student and JSON without NaN.
"""
from __future__ import annotations

import argparse
import logging
import sys

from distill_core.cli import loss, run, sweep
from distill_core.config import RunConfig
from distill_core.errors import RecDistillError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m distill_core", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = RunConfig()
    run.add_parser(sub, d)
    loss.add_parser(sub)
    ms = sub.add_parser("make-sample", help="write the bundled sample dataset")
    ms.add_argument("--out", default="sample_data")
    ms.add_argument("--scale", type=int, default=1, help="users and items x this factor")
    sweep.add_parser(sub, d)
    return p


def _make_sample(a: argparse.Namespace) -> int:
    from distill_core.data.sample import SampleSpec, write_sample

    paths = write_sample(a.out, SampleSpec().scaled(a.scale) if a.scale > 1 else SampleSpec())
    print(f"wrote {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


COMMANDS = {"run": run.command, "loss": loss.command, "sweep": sweep.command, "make-sample": _make_sample}


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); the exit status: 0, 1 (a job failed or was
    stopped) or 2 (bad input, with a message on stderr naming the problem)."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    a = _parser().parse_args(argv)
    try:
        return COMMANDS[a.command](a)
    except RecDistillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

"""Inference speed on CPU: scoring latency per 1,000 users, and scoring plus top-10 retrieval
(``torch.topk``), teacher vs student, at batch 1 and batch 256.

    .venv/bin/python bench/inference.py            # full run (about 30 seconds)
    .venv/bin/python bench/inference.py --quick

Models are the defaults of ``RunConfig`` (SASRec teacher, MF dim 6 student) built for the sample
and left untrained: scoring is a fixed sequence of dense ops whose time does not depend on the
weights' values (``--trained`` trains each for one epoch first to show it). Scoring goes through the
engine's ``score_all`` (eval mode, no autograd), as the dashboard and the CLI report do.
Retrieval is compared with reading the score matrix once (a ``.max`` along the item axis): top-10
needs at least that one pass, so their ratio says how far retrieval is from its floor.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import _common as C
import torch

from distill_core import RunConfig, train_model
from distill_core.models import build_model
from distill_core.trainer import seeded

N_USERS = 1000
K = 10
TARGETS = {"score": 5.0, "score+top10": 2.0}  # teacher time / student time at batch 256


def per_1k(model, users: torch.Tensor, batch: int, what: str) -> float:
    """Milliseconds to serve ``N_USERS`` users in batches of ``batch``: scores, or scores + top-K."""
    t0 = time.perf_counter()
    for s in range(0, len(users), batch):
        scores = model.score_all(users[s:s + batch])  # (batch, n_items)
        if what == "score+top10":
            torch.topk(scores, K, dim=1)
    return (time.perf_counter() - t0) * 1000 * 1000 / len(users)


def on_scores(scores: list[torch.Tensor], what: str) -> float:
    """Milliseconds per 1,000 users of top-K, top-1 (``max`` with its index) or one plain read of the
    scores (``amax``: the memory-bandwidth floor), over precomputed score blocks."""
    n = sum(len(s) for s in scores)
    t0 = time.perf_counter()
    for s in scores:
        if what == "top10":
            torch.topk(s, K, dim=1)
        elif what == "top1":
            s.max(dim=1)
        else:
            s.amax(dim=1)
    return (time.perf_counter() - t0) * 1000 * 1000 / n


def main() -> None:
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--trained", action="store_true", help="train teacher and student for one epoch first")
    args = p.parse_args()
    started = C.start(args)
    cfg = RunConfig()
    ds, split = C.sample_split()
    repeats = args.repeats or (3 if args.quick else 9)
    models: dict[str, Any] = {}
    with C.quiet_logs():
        for role, spec, tcfg in (("teacher", cfg.teacher, cfg.teacher_train), ("student", cfg.student, cfg.student_train)):
            if args.trained:
                kw = {"teacher": models["teacher"], "distill": cfg.distill} if role == "student" else {}
                models[role] = train_model(split, spec, replace(tcfg, epochs=1, device="cpu"), **kw).model
            else:
                with seeded(0):
                    models[role] = build_model(spec, split).eval()
    params = {r: m.n_params() for r, m in models.items()}
    print(f"params: teacher {params['teacher']:,}, student {params['student']:,} "
          f"({params['student'] / params['teacher']:.3f} of the teacher)", flush=True)
    users = torch.arange(N_USERS) % split.n_users
    rows, raw = [], {}
    for batch in (1, 256):
        for what in ("score", "score+top10"):
            res = C.interleave({r: (lambda m=m: per_1k(m, users, batch, what)) for r, m in models.items()}, repeats)
            raw[f"{what}@{batch}"] = res
            t, s = C.median(res["teacher"]), C.median(res["student"])
            target = TARGETS[what] if batch == 256 else None
            rows.append({"batch": batch, "measure": what, "teacher ms / 1k users": t, "student ms / 1k users": s,
                         "speed-up (teacher / student)": t / s, "target": f">= {target:g}x" if target else "-",
                         "met": C.verdict(t / s >= target) if target else "-"})
    C.table("Latency per 1,000 users (medians of interleaved repeats)", rows)
    # retrieval against one read of the score matrix, on the same precomputed (256, n_items) blocks
    ret_rows = []
    for role, m in models.items():
        scores = [m.score_all(users[s:s + 256]) for s in range(0, N_USERS, 256)]
        res = C.interleave({w: (lambda w=w: on_scores(scores, w)) for w in ("top10", "top1", "read")}, repeats * 3)
        top, top1, read = (C.median(res[w]) for w in ("top10", "top1", "read"))
        score_t = C.median(raw["score@256"][role])
        ret_rows.append({"model": role, "scores ms / 1k users": score_t, "top-10 ms / 1k users": top,
                         "top-1 (max) ms / 1k users": top1, "read once (amax) ms / 1k users": read,
                         "top-10 / top-1": top / top1, "top-10 / read once": top / read,
                         "top-10 share of score+top10": top / (score_t + top)})
    C.table("Top-10 retrieval vs reading the score matrix once (batch 256)", ret_rows)
    C.write_json("inference", args, {"params": params, "weights": "trained 1 epoch" if args.trained else "untrained",
                                     "n_users": N_USERS, "items": split.n_items, "k": K, "targets": TARGETS,
                                     "latency": rows, "retrieval": ret_rows, "raw_ms_per_1k": raw}, started)


if __name__ == "__main__":
    main()

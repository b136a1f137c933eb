"""The sampled path's training step at the 55,000-item run's catalogue, with the engine's fused masked log-sum-exp
(``sampled.masked_logsumexp``: the sampled CE and the top-K student's rest estimate, one autograd node each) and
with the composition of torch ops it replaced (``torch.where`` of the masked terms, ``torch.cat`` of the positive,
``torch.logsumexp``), side by side in one process, the variants' rounds interleaved.

    .venv/bin/python bench/sampled_step.py           # 3 rounds of each variant (about 3 minutes on 2 cores)
    .venv/bin/python bench/sampled_step.py --quick   # 1 round, fewer steps

Each round times each model's step as the Data page estimates it (``estimate.timed``: ``train_model``'s own
steps, row updates and loss; the distilled student on stand-in top-K labels of the teacher's shape) on the
dataset ``bench/scale_run.py`` runs (``data.synthetic`` defaults, bench/.cache/synthetic-55k). The step times go
with the steps the stored 55k run took (``bench/results/scale_run.json``: epochs run x steps per epoch) to the
seconds that run would save. Writes ``bench/results/sampled_step.json``.
"""
from __future__ import annotations

import json
from typing import Any

import torch

from _common import RESULTS, interleave, median, start, table, write_json, parser
from scale_run import dataset_dir

ROLES = ("teacher", "student_kd", "student_plain")


def composed(s: torch.Tensor, scale: float, shift: torch.Tensor, mask: torch.Tensor,
             extra: torch.Tensor | None = None) -> torch.Tensor:
    """What ``sampled_ce`` and ``sampled_rest`` computed before ``masked_logsumexp``: the same value by torch's ops."""
    terms = torch.where(mask, float("-inf"), (s * scale if scale != 1.0 else s) - shift)
    if extra is not None:
        terms = torch.cat([extra.unsqueeze(1), terms], 1)
    return torch.logsumexp(terms, 1)


def main(argv: list[str] | None = None) -> int:
    from distill_core import sampled
    from distill_core.data import load_dataset
    from distill_core.estimate import configured, timed

    p = parser(__doc__.split("\n")[0])
    p.set_defaults(threads=0)  # torch's default, as the run it projects onto
    a = p.parse_args(argv)
    started = start(a)
    ds = load_dataset(dataset_dir())
    cfg = configured(ds)
    fused = sampled.masked_logsumexp
    steps = 20 if a.quick else 200  # the median of 200 is past the first steps, which touch fresh memory

    def variant(fn: Any) -> Any:
        def run() -> dict[str, tuple[float, int]]:
            sampled.masked_logsumexp = fn  # what sampled_ce and sampled_rest call
            try:
                return {m.role: (m.step_seconds, m.steps_per_epoch) for m in timed(ds, cfg, steps=steps, users=64)}
            finally:
                sampled.masked_logsumexp = fused
        return run

    got = interleave({"fused": variant(fused), "composed": variant(composed)}, a.repeats or (1 if a.quick else 3))
    stored_path = RESULTS / "scale_run.json"
    stored = json.loads(stored_path.read_text()) if stored_path.exists() else None
    epochs = {r["model"]: r["epochs_run"] for r in stored["rows"]} if stored and not stored.get("quick") else {}
    rows, saved = [], 0.0
    for role in ROLES:
        f = median([r[role][0] for r in got["fused"]])
        c = median([r[role][0] for r in got["composed"]])
        per_epoch = got["fused"][0][role][1]
        run_steps = epochs.get(role, 0) * per_epoch
        saved += (c - f) * run_steps
        rows.append({"model": role, "fused_ms": round(1000 * f, 2), "composed_ms": round(1000 * c, 2),
                     "composed / fused": round(c / f, 3), "steps_per_epoch": per_epoch,
                     "steps_in_the_55k_run": run_steps or None,
                     "seconds_saved_there": round((c - f) * run_steps, 1) if run_steps else None})
    md = table(f"Step time at {ds.n_items:,} items, median of {len(got['fused'])} round(s) x {steps} steps", rows)
    if epochs:
        md += (f"\n\nOver the steps of the stored 55k run ({stored['machine']['git_commit']}, "
               f"{stored['wall_seconds'] / 60:.1f} minutes there): about {saved:.0f} s fewer.\n")
    write_json("sampled_step", a, {"rows": rows, "rounds": got, "steps": steps, "quick": a.quick,
                                   "items": ds.n_items, "seconds_saved_in_the_55k_run": round(saved, 1) if epochs
                                   else None, "markdown": md}, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

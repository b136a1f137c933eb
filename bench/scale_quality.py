"""Does the large-catalogue path cost quality? Sampled vs full softmax for the teacher, top-K vs full KD for the
student, on catalogues small enough for both (issue 16).

    .venv/bin/python bench/scale_quality.py                      # the sample, 3 seeds
    .venv/bin/python bench/scale_quality.py --data /tmp/ml-100k  # any dataset the loaders read
    .venv/bin/python bench/scale_quality.py --quick              # 1 seed, few epochs: a smoke run

Per seed, with the default models and protocol (sasrec teacher dim 64, 2 layers, max_len 50; the largest MF
within 1/10 of its parameters; alpha 0.25, T 1, lagged selection, early stopping on validation NDCG@10):

* **teacher, full**: softmax over the whole catalogue; **teacher, sampled**: the product's sampled path at its
  defaults (``TrainConfig().negatives`` negatives per batch, q ∝ (count + 1)^0.5, logQ), the one a user gets
  with ``--loss sampled``, and again at ``STRESS_NEGATIVES`` (a smaller share of these small catalogues: how
  quality falls with fewer negatives);
* **student, full KD** from the full teacher: full softmax, the teacher's whole distribution;
  **student, top-K KD** from the same teacher: the whole large-catalogue path, sampled softmax and the teacher's
  top-K soft labels plus the rest's mass, at the defaults (``TrainConfig().negatives``,
  ``catalogue.DEFAULT_TOP_K``) and at ``STRESS_NEGATIVES`` / ``TOP_K``; at the sampled path's default student lr
  (``catalogue.student_lr``; full KD at the full path's).

The 5% target is judged at the defaults; the stress rows are printed beside them, not judged. Each row also says
what share of the catalogue one batch's draws cover (expected distinct items of S draws from q). Each variant gets
the same budget (the same epochs cap, patience and seeds). Ratios are per seed (variant / full), then mean, std
and the lowest seed, and the mean's paired bootstrap 95% interval over the test users
(``gains.bootstrap_mean_ratio``, the same users for every seed and model in a draw: the test set's noise alone)
with whether it resolves the 0.95 target. Writes ``bench/results/scale_quality[-NAME].json`` (with every model's
per-user test NDCG@10).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from _common import bounds, judged, start, table, write_json
from distill_core import ModelSpec, RunConfig, TrainConfig, catalogue, split_dataset, train_model
from distill_core.diversity import diversity_space
from distill_core.gains import bootstrap_mean_ratio
from distill_core.segments import model_segments
from methods import N_BOOT
from quality import dataset_and_seeds, dataset_parser, log, mf_dim_for

NEGATIVES = TrainConfig().negatives  # the product's default: what the target is judged at
STRESS_NEGATIVES = 256  # a smaller share of these catalogues, reported beside the defaults
TOP_K = catalogue.DEFAULT_TOP_K
TARGET = 0.95  # within 5% of full
# (base, variant, its negatives, judged): each variant's ratio is taken to its base on the same seed
PAIRS = (("teacher, full", f"teacher, sampled {NEGATIVES} (default)", NEGATIVES, True),
         ("teacher, full", f"teacher, sampled {STRESS_NEGATIVES}", STRESS_NEGATIVES, False),
         ("student, full KD", f"student, top-K KD {NEGATIVES}/{TOP_K} (default)", NEGATIVES, True),
         ("student, full KD", f"student, top-K KD {STRESS_NEGATIVES}/{TOP_K}", STRESS_NEGATIVES, False))


def coverage(counts: np.ndarray, s: int, beta: float) -> float:
    """The expected share of the catalogue among ``s`` draws with replacement from q ∝ (count + 1)^beta:
    ``sum_j 1 - (1 - q_j)^s`` over the items, / n_items."""
    w = (np.asarray(counts, np.float64) + 1.0) ** beta
    q = w / w.sum()
    return float(np.sum(1.0 - (1.0 - q) ** s) / len(q))


def one_seed(ds: Any, seed: int, quick: bool) -> list[dict[str, Any]]:
    cfg = RunConfig().with_seed(seed)
    split = split_dataset(ds, cfg.split)
    t_spec = replace(cfg.teacher, max_len=50)
    t_train = replace(cfg.teacher_train, epochs=2 if quick else cfg.teacher_train.epochs)
    s_train = replace(cfg.student_train, epochs=2 if quick else cfg.student_train.epochs)
    rows = []
    space = diversity_space(split)

    def add(name: str, tm: Any) -> Any:
        val = [(r["seconds"], r["val_ndcg@10"]) for r in tm.fit.history if "val_ndcg@10" in r]
        best = max(v for _, v in val)
        users = model_segments(tm.model, split, space=space).user_values["ndcg@10"]
        if abs(users.mean() - tm.test["ndcg@10"]) > 1e-6:  # two computations of one figure: they must agree
            raise AssertionError(f"{name}: per-user NDCG@10 mean {users.mean():.6f} is not {tm.test['ndcg@10']:.6f}")
        rows.append({"model": name, "seed": seed, "ndcg@10": tm.test["ndcg@10"], "hr@10": tm.test["hr@10"],
                     "epochs_run": len(tm.fit.history), "best_epoch": tm.fit.best_epoch, "stopped": tm.fit.stop_reason,
                     "train_seconds": round(tm.fit.seconds, 1), "path": tm.path.describe(),
                     # issue 16.6: how long until the run is within 5% of its own converged validation score
                     "seconds_to_95%_of_best_val": round(min(t for t, v in val if v >= 0.95 * best), 1),
                     "users": users})
        log(f"  seed {seed} {name}: ndcg@10 {tm.test['ndcg@10']:.4f} ({len(tm.fit.history)} epochs, "
            f"{tm.fit.seconds:.0f} s; {tm.path.describe()})")
        return tm

    full = add("teacher, full", train_model(split, t_spec, replace(t_train, loss="full")))
    for _, name, s, _ in PAIRS[:2]:
        add(name, train_model(split, t_spec, replace(t_train, loss="sampled", negatives=s)))
    s_spec = ModelSpec("mf", mf_dim_for(0.1 * full.model.n_params(), split))
    kd = cfg.distill
    add("student, full KD", train_model(split, s_spec, replace(s_train, loss="full"), role="student_kd",
                                        teacher=full, distill=replace(kd, soft_top_k=split.n_items)))
    # each path at the product's default lr for it (catalogue.student_lr: 2e-2 sampled, 5e-3 full)
    for _, name, s, _ in PAIRS[2:]:
        sampled = replace(s_train, loss="sampled", negatives=s, lr=catalogue.student_lr("sampled", split.n_items))
        add(name, train_model(split, s_spec, sampled, role="student_kd", teacher=full,
                              distill=replace(kd, soft_top_k=TOP_K)))
    return rows


def summary(rows: list[dict[str, Any]], counts: np.ndarray, beta: float) -> list[dict[str, Any]]:
    out = []
    for name in dict.fromkeys(r["model"] for r in rows):
        base, negatives, judge = next(((b, n, j) for b, v, n, j in PAIRS if v == name), (None, 0, False))
        v = [r["ndcg@10"] for r in rows if r["model"] == name]
        s = [r["train_seconds"] for r in rows if r["model"] == name]
        t95 = [r["seconds_to_95%_of_best_val"] for r in rows if r["model"] == name]
        o = {"model": name, "ndcg@10 mean": float(np.mean(v)), "ndcg@10 std": float(np.std(v)),
             "train s mean": float(np.mean(s)), "s to 95% of best val, mean": float(np.mean(t95)),
             "stopped": ", ".join(sorted({r["stopped"] for r in rows if r["model"] == name}))}
        if base is None:
            out.append(o | {"ratio to full, mean": 1.0, "ratio to full, lowest seed": 1.0})
            continue
        ratio = [r["ndcg@10"] / b["ndcg@10"] for r in rows if r["model"] == name
                 for b in rows if b["model"] == base and b["seed"] == r["seed"]]
        by_seed = lambda n: np.stack([r["users"] for r in sorted(  # noqa: E731
            (r for r in rows if r["model"] == n), key=lambda r: r["seed"])])
        b = bootstrap_mean_ratio(by_seed(name), by_seed(base), N_BOOT, seed=0, at_least=TARGET)
        o |= {"ratio to full, mean": float(np.mean(ratio)), "ratio to full, lowest seed": float(np.min(ratio)),
              "ratio 95%": bounds(b.lo, b.hi), "ratio_lo": b.lo, "ratio_hi": b.hi, "draws at 0.95": b.share_at_least,
              "negatives": negatives, "catalogue share drawn": coverage(counts, negatives, beta),
              "target": "judged" if judge else "stress: not judged",
              "resolved": judged(float(np.mean(ratio)), b.lo, b.hi, TARGET)}
        out.append(o)
    return out


def main(argv: list[str] | None = None) -> int:
    p = dataset_parser(__doc__.split("\n")[0])
    a = p.parse_args(argv)
    started = start(a)
    ds, seeds = dataset_and_seeds(a)
    rows = [r for seed in seeds for r in one_seed(ds, seed, a.quick)]
    split = split_dataset(ds, RunConfig().split)
    summ = summary(rows, np.bincount(split.train_items, minlength=split.n_items), TrainConfig().negative_beta)
    md = table(f"Large-catalogue path vs full on {ds.name} ({len(seeds)} seeds)", summ,
               ["model", "ndcg@10 mean", "ndcg@10 std", "ratio to full, mean", "ratio 95%", "draws at 0.95",
                "resolved", "target", "ratio to full, lowest seed", "catalogue share drawn", "train s mean",
                "s to 95% of best val, mean", "stopped"])
    per_user = {f"{r['model']} | seed {r['seed']}": np.round(r.pop("users"), 6).tolist() for r in rows}
    name = "scale_quality" + (f"-{ds.name}" if a.data else "")
    write_json(name, a, {"dataset": ds.name, "seeds": seeds, "quick": a.quick, "negatives": NEGATIVES,
                         "stress_negatives": STRESS_NEGATIVES, "top_k": TOP_K, "rows": rows, "summary": summ,
                         "n_boot": N_BOOT, "per_user_ndcg@10": per_user, "markdown": md}, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

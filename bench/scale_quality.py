"""Does the large-catalogue path cost quality? Sampled vs full softmax for the teacher, top-K vs full KD for the
student, on catalogues small enough for both (issue 16).

    .venv/bin/python bench/scale_quality.py                      # the sample, 3 seeds
    .venv/bin/python bench/scale_quality.py --data /tmp/ml-100k  # any dataset the loaders read
    .venv/bin/python bench/scale_quality.py --quick              # 1 seed, few epochs: a smoke run
    .venv/bin/python bench/scale_quality.py --data /tmp/ml-100k --teachers-only --seeds 3,4,5,6,7,8,9 \
        --with bench/results/scale_quality-ml-100k.json          # more seeds of the judged teacher pair

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

``--teachers-only`` trains the judged teacher pair alone (full, and sampled at the defaults), and ``--with FILE``
adds an earlier run's rows of those models on the same dataset (other seeds; their per-user NDCG@10 from the file)
to the summary, so a target the stored seeds cannot resolve can be measured on more seeds without retraining
them. The file's commit is recorded, with how many code lines of ``distill_core`` changed since (``git diff``,
comments and blank lines not counted). Writes ``scale_quality[-NAME]-teachers.json``.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from _common import ROOT, bounds, judged, start, table, write_json
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


def one_seed(ds: Any, seed: int, quick: bool, teachers_only: bool = False) -> list[dict[str, Any]]:
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
    for _, name, s, _ in PAIRS[:1 if teachers_only else 2]:
        add(name, train_model(split, t_spec, replace(t_train, loss="sampled", negatives=s)))
    if teachers_only:
        return rows
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


def stored_rows(path: str, dataset: str, models: set[str], seeds: list[int]) -> tuple[list[dict[str, Any]], dict]:
    """The rows of ``models`` in an earlier scale_quality result on ``dataset``, each with its per-user NDCG@10,
    and where they came from. Refuses another dataset, other negatives or a seed this run trains too."""
    try:
        doc = json.loads(Path(path).read_text())
        by_user, old_rows, commit = doc["per_user_ndcg@10"], doc["rows"], doc["machine"].get("git_commit", "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise SystemExit(f"--with {path}: not a results file of bench/scale_quality.py ({e!r})") from e
    if doc.get("dataset") != dataset or doc.get("negatives") != NEGATIVES or doc.get("quick"):
        raise SystemExit(f"--with {path}: it is {doc.get('dataset')!r} at {doc.get('negatives')} negatives"
                         f"{' (quick)' if doc.get('quick') else ''}, this run {dataset!r} at {NEGATIVES}")
    rows = [dict(r, users=np.asarray(by_user[f"{r['model']} | seed {r['seed']}"]), stored=True)
            for r in old_rows if r["model"] in models]
    for r in rows:  # the per-user figures (stored to 6 decimals) must still give the row's mean
        if abs(r["users"].mean() - r["ndcg@10"]) > 1e-5:
            raise SystemExit(f"--with {path}: {r['model']} seed {r['seed']}: per-user mean {r['users'].mean():.6f} "
                             f"is not its NDCG@10 {r['ndcg@10']:.6f}")
    if overlap := sorted({r["seed"] for r in rows} & set(seeds)):
        raise SystemExit(f"--with {path}: seeds {overlap} are in both; pass other --seeds")
    return rows, {"file": path, "git_commit": commit, "seeds": sorted({r["seed"] for r in rows}),
                  "engine_code_lines_changed_since": engine_changes(commit) if commit else None}


def engine_changes(commit: str) -> int:
    """How many lines of ``distill_core`` other than comments and blank lines changed from ``commit`` to HEAD."""
    diff = subprocess.run(["git", "diff", "-U0", commit, "HEAD", "--", "distill_core"], check=True, text=True,
                          cwd=ROOT, capture_output=True).stdout
    return sum(1 for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
               and line[1:].strip() and not line[1:].lstrip().startswith("#"))


def main(argv: list[str] | None = None) -> int:
    p = dataset_parser(__doc__.split("\n")[0])
    p.add_argument("--teachers-only", action="store_true", help="train the judged teacher pair only")
    p.add_argument("--with", dest="with_file", help="an earlier result on the same dataset: add its rows")
    a = p.parse_args(argv)
    started = start(a)
    ds, seeds = dataset_and_seeds(a)
    models = {"teacher, full", PAIRS[0][1]} | (set() if a.teachers_only else {"student, full KD"} | {
        v for _, v, _, _ in PAIRS})
    old, stored = stored_rows(a.with_file, ds.name, models, seeds) if a.with_file else ([], None)
    rows = [r for seed in seeds for r in one_seed(ds, seed, a.quick, a.teachers_only)]
    if stored:  # the stored seeds first, each seed's rows in training order
        rows = sorted(old + rows, key=lambda r: r["seed"])
        seeds = sorted({r["seed"] for r in rows})
    split = split_dataset(ds, RunConfig().split)
    summ = summary(rows, np.bincount(split.train_items, minlength=split.n_items), TrainConfig().negative_beta)
    title = f"Large-catalogue path vs full on {ds.name} ({len(seeds)} seeds"
    title += f": {len(stored['seeds'])} stored, {len(seeds) - len(stored['seeds'])} new)" if stored else ")"
    md = table(title, summ,
               ["model", "ndcg@10 mean", "ndcg@10 std", "ratio to full, mean", "ratio 95%", "draws at 0.95",
                "resolved", "target", "ratio to full, lowest seed", "catalogue share drawn", "train s mean",
                "s to 95% of best val, mean", "stopped"])
    per_user = {f"{r['model']} | seed {r['seed']}": np.round(r.pop("users"), 6).tolist() for r in rows}
    name = "scale_quality" + (f"-{ds.name}" if a.data else "") + ("-teachers" if a.teachers_only else "")
    write_json(name, a, {"dataset": ds.name, "seeds": seeds, "quick": a.quick, "negatives": NEGATIVES,
                         "teachers_only": a.teachers_only, "stored": stored,
                         "stress_negatives": None if a.teachers_only else STRESS_NEGATIVES, "top_k": TOP_K,
                         "rows": rows, "summary": summ,
                         "n_boot": N_BOOT, "per_user_ndcg@10": per_user, "markdown": md}, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Who gains from distillation (issue 18): teacher, distilled and plain student by user activity and item popularity.

    .venv/bin/python bench/segments.py                      # the sample, 3 seeds
    .venv/bin/python bench/segments.py --data /tmp/ml-100k  # any dataset the loaders read
    .venv/bin/python bench/segments.py --quick              # 1 seed, 2 epochs: a smoke run

Two pairs per seed, one sasrec teacher (``RunConfig().teacher``) serving both:

* **default**: what ``python -m distill_core run`` trains: the default MF student (``RunConfig().student``) with the
  default alpha and T (``current`` soft labels: the families differ), beside the same student trained plainly;
* **cross-family at 1/5**: the pair of ``bench/cross_family.py``: the largest MF within 1/5 of the teacher's
  parameters, trained up to 60 epochs (patience 8), with the default alpha and T.

Every model is cut by ``distill_core.segments`` with its defaults (cold: at most 5 training interactions, the other
users at their quartiles; head / tail: 20% of the training interactions each; buckets of fewer than 20 users merged
or marked too few). Per bucket: test NDCG@10 of the three models (mean over seeds); gain = distilled - plain
(mean, standard deviation over seeds, lowest seed) with the first seed's paired bootstrap 95% interval over the
bucket's users (``distill_core.gains``); the bucket's **share of the gain** ``n_j gain_j / sum_b n_b gain_b`` says where the
mean gain comes from. The list figures (coverage, Gini, tail share, novelty, diversity) are means over seeds.

Prints tables and writes ``bench/results/segments.json`` (``segments-NAME.json`` with ``--data``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from _common import start, table, write_json  # bench/ is on sys.path: the scripts run as python bench/x.py
from cross_family import FRACTION, LONG
from distill_core import DistillConfig, ModelSpec, RunConfig, split_dataset, train_model
from distill_core.gains import ROLES, gains_frame, lists_frame
from distill_core.diversity import diversity_space
from distill_core.segments import model_segments
from quality import dataset_and_seeds, dataset_parser, log, mf_dim_for

METRIC = "ndcg@10"
LABELS = {"teacher": "teacher", "student_kd": "distilled", "student_plain": "plain"}


def one_seed(ds: Any, seed: int, quick: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Bucket rows and list rows of both pairs on one seed, and the pairs' settings."""
    cfg = RunConfig().with_seed(seed)
    split = split_dataset(ds, cfg.split)
    cap = (lambda t: replace(t, epochs=2)) if quick else (lambda t: t)
    teacher = train_model(split, cfg.teacher, cap(cfg.teacher_train))
    log(f"seed {seed}: teacher ndcg@10 {teacher.test['ndcg@10']:.4f}")
    distill = replace(cfg.distill, soft_labels="current")
    pairs = {"default": (cfg.student, cap(cfg.student_train)),
             f"cross-family 1/{FRACTION}": (ModelSpec("mf", mf_dim_for(teacher.model.n_params() / FRACTION, split)),
                                           cap(replace(cfg.student_train, **LONG)))}
    space = diversity_space(split)
    buckets, lists, settings = [], [], {}
    for pair, (spec, train) in pairs.items():
        kd = train_model(split, spec, train, role="student_kd", teacher=teacher, distill=distill)
        plain = train_model(split, spec, train, role="student_plain")
        results = {role: model_segments(tm.model, split, space=space)
                   for role, tm in zip(ROLES, (teacher, kd, plain))}
        settings[pair] = {"student": f"mf dim {spec.dim}", "params": kd.model.n_params(),
                          "teacher_params": teacher.model.n_params(), "alpha": distill.alpha, "T": distill.temperature,
                          "epochs": train.epochs, "patience": train.patience}
        log(f"  {pair} (mf{spec.dim}): distilled {kd.test['ndcg@10']:.4f}, plain {plain.test['ndcg@10']:.4f}")
        for by in ("users", "items"):
            frame = gains_frame(results, by, (METRIC,), n_boot=1000, seed=seed)
            for r in frame.to_dict("records"):
                buckets.append({"pair": pair, "seed": seed, "by": by, **{k: r[k] for k in (
                    "bucket", "lo", "hi", "n", "too_few", "gain", "gain_lo", "gain_hi")},
                    **{LABELS[role]: r[label] for role, label in zip(ROLES, ("Teacher", "Distilled student",
                                                                              "Plain student"))}})
        for r in lists_frame({role: res.summary for role, res in results.items()}).to_dict("records"):
            lists.append({"pair": pair, "seed": seed, "figure": r["figure"], "teacher": r["Teacher"],
                          "distilled": r["Distilled student"], "plain": r["Plain student"]})
        lists.append({"pair": pair, "seed": seed, "figure": "diversity by",
                      "teacher": results["teacher"].summary["lists"]["diversity_by"]})
    return buckets, lists, settings


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None and not (isinstance(r[key], float) and np.isnan(r[key]))]
    return float(np.mean(vals)) if vals else None


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per pair and bucket: the means over seeds, the gain's spread, its first-seed interval, its share."""
    out = []
    for key in dict.fromkeys((r["pair"], r["by"], r["bucket"]) for r in rows):
        rs = [r for r in rows if (r["pair"], r["by"], r["bucket"]) == key]
        gains = [r["gain"] for r in rs if r["gain"] is not None]
        s = {"pair": key[0], "by": key[1], "bucket": key[2], "lo": rs[0]["lo"], "hi": rs[0]["hi"], "n": rs[0]["n"],
             "too_few": rs[0]["too_few"], **{m: _mean(rs, m) for m in ("teacher", "distilled", "plain", "gain")},
             "gain_std": float(np.std(gains)) if gains else None, "gain_min": min(gains) if gains else None,
             "gain_lo (seed 0)": rs[0]["gain_lo"], "gain_hi (seed 0)": rs[0]["gain_hi"]}
        s["ratio"] = s["distilled"] / s["plain"] if s["plain"] else None
        out.append(s)
    for pair, by in dict.fromkeys((s["pair"], s["by"]) for s in out):
        group = [s for s in out if (s["pair"], s["by"]) == (pair, by)]
        total = sum(s["n"] * (s["gain"] or 0.0) for s in group)
        for s in group:
            s["share of gain"] = s["n"] * (s["gain"] or 0.0) / total if total else None
            s["share of cases"] = s["n"] / max(sum(g["n"] for g in group), 1)
    return out


def finding(summary: list[dict[str, Any]], lists: list[dict[str, Any]], name: str) -> str:
    """One sentence per pair of what the numbers say, built from them."""
    parts = []
    for pair in dict.fromkeys(s["pair"] for s in summary):
        users = [s for s in summary if s["pair"] == pair and s["by"] == "users" and not s["too_few"]]
        items = {s["bucket"]: s for s in summary if s["pair"] == pair and s["by"] == "items"}
        low, high = users[0], users[-1]
        tail = items["tail"]
        cov = {m: _mean([r for r in lists if r["pair"] == pair and r["figure"] == "coverage@10"], m)
               for m in ("distilled", "plain")}
        where = ("not the long tail" if (tail["share of gain"] or 0) < tail["share of cases"]
                 else "the long tail gains more than its share")
        shares = " / ".join(f"{items[b]['share of gain'] or 0:.0%}" for b in ("head", "torso", "tail"))
        cases = " / ".join(f"{items[b]['share of cases']:.0%}" for b in ("head", "torso", "tail"))
        parts.append(f"**{pair}**: distilled − plain NDCG@10 is {low['gain']:+.3f} for the least active users "
                     f"({low['bucket']} training interactions) and {high['gain']:+.3f} for the most active "
                     f"({high['bucket']}); head / torso / tail items give {shares} of the gain ({cases} of the test "
                     f"cases; tail NDCG@10 {tail['plain']:.3f} plain, {tail['distilled']:.3f} distilled): {where}; the "
                     f"distilled lists cover {cov['distilled']:.0%} of the catalogue, the plain ones {cov['plain']:.0%}.")
    return f"What the numbers say on {name}: " + " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    a = dataset_parser(__doc__.split("\n")[0]).parse_args(argv)
    started = start(a)
    ds, seeds = dataset_and_seeds(a)
    rows: list[dict[str, Any]] = []
    lists: list[dict[str, Any]] = []
    settings: dict[str, Any] = {}
    for seed in seeds:
        b, li, settings = one_seed(ds, seed, a.quick)
        rows += b
        lists += li
    summary = summarise(rows)
    list_summary = [{"pair": p, "figure": f, **{m: _mean([r for r in lists if (r["pair"], r["figure"]) == (p, f)], m)
                                                for m in ("teacher", "distilled", "plain")}}
                    for p, f in dict.fromkeys((r["pair"], r["figure"]) for r in lists) if f != "diversity by"]
    by_label = {r["pair"]: r["teacher"] for r in lists if r["figure"] == "diversity by"}
    result: dict[str, Any] = {"dataset": ds.summary(), "seeds": seeds, "quick": a.quick, "pairs": settings,
                              "diversity_by": by_label, "rows": rows, "lists_rows": lists, "summary": summary,
                              "lists": list_summary, "finding": finding(summary, lists, ds.name)}
    cols = ["bucket", "lo", "hi", "n", "too_few", "teacher", "distilled", "plain", "gain", "gain_std", "gain_min",
            "gain_lo (seed 0)", "gain_hi (seed 0)", "ratio", "share of cases", "share of gain"]
    md = [f"\n{result['finding']}\n"]
    shown = [{k: (float("nan") if v is None else v) for k, v in r.items()} for r in summary]  # None prints as "-"
    for pair, s in settings.items():
        for by, what in (("users", "user activity (training interactions)"), ("items", "item popularity")):
            md.append(table(f"{pair} ({s['student']}, {s['params'] / s['teacher_params']:.2f} of the teacher): test "
                            f"NDCG@10 by {what}, mean of {len(seeds)} seed(s)",
                            [r for r in shown if (r["pair"], r["by"]) == (pair, by)], cols))
    md.append(table(f"List figures (top 10 of every test user), mean of {len(seeds)} seed(s); diversity by "
                    f"{', '.join(sorted(set(by_label.values())))}", list_summary,
                    ["pair", "figure", "teacher", "distilled", "plain"]))
    result["markdown"] = "\n".join(md)
    write_json("segments" if not a.data else f"segments-{ds.name}", a, result, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

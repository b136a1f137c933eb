"""The fair protocol: the same tuning budget for both students, honest selection, even refresh (issue 14).

    .venv/bin/python bench/fair.py                      # the sample, 3 seeds
    .venv/bin/python bench/fair.py --data /tmp/ml-100k  # any dataset the loaders read
    .venv/bin/python bench/fair.py --quick              # 1 seed, few epochs: a smoke run

The student is the largest MF within 1/10 of the default sasrec teacher's parameters on *this* dataset.

1. **Same tuning budget.** On the first seed the distilled student is trained at every (alpha, T) of
   ``ALPHAS x TEMPS`` and the plain student at as many (learning rate, weight decay) cells of
   ``distill_core.tuning.plain_ladder`` around the default; each side keeps its best *validation* NDCG@10
   cell for every seed. The untuned defaults of both are reported beside the tuned ones.
2. **Honest selection.** Distilled cells are selected with ``DistillConfig.selection="lagged"`` (the
   default): validation is scored on soft labels that did not forecast the validation item. Each cell is
   also trained with ``selection="direct"`` (the old, inflated way) and the test score of the cell each
   choice picks is shown once.
3. **Refresh, labelled transductive.** After ``Split.advance`` the soft label of a user is the teacher's
   forecast at the very position whose item is then scored, so a refreshed student imitates the teacher's
   answer to the test query. Two variants: *uneven* (the teacher is not refreshed; the students are
   fine-tuned on the new items; as ``bench/cross_family.py`` reported) and *even* (the teacher is
   fine-tuned on the same new items for the same ``REFRESH_EPOCHS`` and its refreshed soft labels are the
   ones distilled; retention against the refreshed teacher).
4. Every figure is the mean of the seeds with its standard deviation; the gain over the tuned plain
   student is computed per seed (mean, std and the lowest seed).

Prints tables and writes ``bench/results/fair.json`` (``fair-NAME.json`` with ``--data``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from _common import start, table, write_json  # bench/ is on sys.path: the scripts run as python bench/x.py
from distill_core import DistillConfig, ModelSpec, RunConfig, split_dataset, train_model
from distill_core.refresh import REFRESH_EPOCHS, refresh_student
from distill_core.tuning import plain_ladder
from quality import METRICS, dataset_and_seeds, dataset_parser, log, mf_dim_for

FRACTION = 10
ALPHAS = (0.0, 0.25, 0.5)
TEMPS = (1.0, 2.0)


def _row(name: str, group: str, tm: Any, ref: float | None, seed: int) -> dict[str, Any]:
    out = {"model": name, "group": group, "seed": seed, "params": tm.model.n_params(),
           "epochs_run": len(tm.fit.history), "best_epoch": tm.fit.best_epoch,
           "val_ndcg@10": tm.fit.best_metric if tm.fit.history and "val_ndcg@10" in tm.fit.history[0] else None,
           **{m: tm.test[m] for m in METRICS}}
    if ref:
        out["retention"] = tm.test["ndcg@10"] / ref
    return out


def select(split: Any, spec: ModelSpec, teacher: Any, s_train: Any, n_cells: int) -> dict[str, Any]:
    """The first seed's search: both students get ``n_cells`` cells; distilled cells twice (lagged, direct)."""
    kd_grid, plain_grid = [], []
    for a in ALPHAS:
        for t in TEMPS:
            cell = {"alpha": a, "T": t}
            for sel in ("lagged", "direct"):
                tm = train_model(split, spec, s_train, role="student_kd", teacher=teacher,
                                 distill=DistillConfig(a, t, soft_labels="current", selection=sel))
                cell[f"{sel}_val"], cell[f"{sel}_test"] = tm.fit.best_metric, tm.test["ndcg@10"]
                cell[f"{sel}_epoch"] = tm.fit.best_epoch
            kd_grid.append(cell)
            log(f"  kd alpha {a:g} T {t:g}: lagged val {cell['lagged_val']:.4f} test {cell['lagged_test']:.4f} | "
                f"direct val {cell['direct_val']:.4f} test {cell['direct_test']:.4f}")
    for lr, wd in plain_ladder(n_cells, s_train.lr, s_train.weight_decay):
        tm = train_model(split, spec, replace(s_train, lr=lr, weight_decay=wd), role="student_plain")
        plain_grid.append({"lr": lr, "weight_decay": wd, "val": tm.fit.best_metric, "test": tm.test["ndcg@10"],
                           "epoch": tm.fit.best_epoch})
        log(f"  plain lr {lr:g} wd {wd:g}: val {tm.fit.best_metric:.4f} test {tm.test['ndcg@10']:.4f}")
    honest = max(kd_grid, key=lambda c: c["lagged_val"])
    inflated = max(kd_grid, key=lambda c: c["direct_val"])
    plain = max(plain_grid, key=lambda c: c["val"])
    return {"kd_grid": kd_grid, "plain_grid": plain_grid,
            "kd": {"alpha": honest["alpha"], "T": honest["T"]}, "plain": {"lr": plain["lr"], "weight_decay": plain["weight_decay"]},
            "choices": [
                {"selection": "lagged (honest)", "alpha": honest["alpha"], "T": honest["T"],
                 "val_ndcg@10": honest["lagged_val"], "test_ndcg@10": honest["lagged_test"]},
                {"selection": "direct (inflated)", "alpha": inflated["alpha"], "T": inflated["T"],
                 "val_ndcg@10": inflated["direct_val"], "test_ndcg@10": inflated["direct_test"]}]}


def one_seed(ds: Any, seed: int, quick: bool, chosen: dict[str, Any] | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    cfg = RunConfig().with_seed(seed)
    split = split_dataset(ds, cfg.split)
    t_train = replace(cfg.teacher_train, epochs=2) if quick else cfg.teacher_train
    s_train = replace(cfg.student_train, epochs=2) if quick else cfg.student_train
    teacher = train_model(split, cfg.teacher, t_train)
    t_ndcg = teacher.test["ndcg@10"]
    spec = ModelSpec("mf", mf_dim_for(teacher.model.n_params() / FRACTION, split))
    log(f"seed {seed}: teacher ndcg@10 {t_ndcg:.4f}; student mf{spec.dim}")
    if chosen is None:
        chosen = select(split, spec, teacher.model, s_train, len(ALPHAS) * len(TEMPS))
    kd_cfg = DistillConfig(chosen["kd"]["alpha"], chosen["kd"]["T"], soft_labels="current")
    plain_train = replace(s_train, **chosen["plain"])
    d = cfg.distill
    tag = f"mf{spec.dim}"
    grp = "as trained"
    rows = [_row("teacher sasrec", grp, teacher, None, seed)]
    plain_def = train_model(split, spec, s_train, role="student_plain")
    plain = train_model(split, spec, plain_train, role="student_plain")
    kd_def = train_model(split, spec, s_train, role="student_kd", teacher=teacher.model,
                         distill=DistillConfig(d.alpha, d.temperature, soft_labels="current"))
    kd = train_model(split, spec, s_train, role="student_kd", teacher=teacher.model, distill=kd_cfg)
    for name, tm in ((f"{tag} plain, defaults", plain_def), (f"{tag} plain, tuned", plain),
                     (f"{tag} distilled, defaults (alpha {d.alpha:g}, T {d.temperature:g})", kd_def),
                     (f"{tag} distilled, tuned", kd)):
        rows.append(_row(name, grp, tm, t_ndcg, seed))
        log(f"  {name}: ndcg@10 {tm.test['ndcg@10']:.4f}")

    new = split.advance()
    r_train = replace(s_train, epochs=REFRESH_EPOCHS)
    plain_r = refresh_student(plain.model, new, replace(plain_train, epochs=REFRESH_EPOCHS))
    uneven = refresh_student(kd.model, new, r_train, teacher=teacher.model, distill=kd_cfg)
    teacher_r = train_model(new, cfg.teacher, replace(t_train, epochs=REFRESH_EPOCHS), init=teacher.model,
                            validate=False)
    even = refresh_student(kd.model, new, r_train, teacher=teacher_r.model, distill=kd_cfg)
    g_un, g_ev = "refreshed, uneven (transductive)", "refreshed, even (transductive)"
    rows += [_row("teacher sasrec (not refreshed)", g_un, teacher, None, seed),
             _row(f"{tag} plain, tuned, refreshed", g_un, plain_r, t_ndcg, seed),
             _row(f"{tag} distilled, tuned, refreshed", g_un, uneven, t_ndcg, seed),
             _row("teacher sasrec, refreshed", g_ev, teacher_r, None, seed),
             _row(f"{tag} plain, tuned, refreshed ", g_ev, plain_r, teacher_r.test["ndcg@10"], seed),
             _row(f"{tag} distilled, tuned, refreshed from the refreshed teacher", g_ev, even,
                  teacher_r.test["ndcg@10"], seed)]
    log(f"  refresh: teacher {teacher_r.test['ndcg@10']:.4f}, uneven kd {uneven.test['ndcg@10']:.4f}, "
        f"even kd {even.test['ndcg@10']:.4f}, plain {plain_r.test['ndcg@10']:.4f}")
    return rows, chosen


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model: mean and std over seeds; gain over the tuned plain student of the same group, per seed."""
    out = []
    for name in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == name]
        s = {"model": name.strip(), "group": rs[0]["group"], "params": rs[0]["params"], "seeds": len(rs)}
        for m in (*METRICS, "retention", "epochs_run"):
            vals = [r[m] for r in rs if r.get(m) is not None]
            if vals:
                s[m], s[f"{m}_std"] = float(np.mean(vals)), float(np.std(vals))
        base = [r for r in rows if r["group"] == rs[0]["group"] and "plain, tuned" in r["model"]]
        if "distilled" in name and base:
            by_seed = {r["seed"]: r["ndcg@10"] for r in base}
            gains = [r["ndcg@10"] / by_seed[r["seed"]] for r in rs]
            s["gain"], s["gain_std"], s["gain_min"] = float(np.mean(gains)), float(np.std(gains)), float(min(gains))
        out.append(s)
    return out


def main(argv: list[str] | None = None) -> int:
    a = dataset_parser(__doc__.split("\n")[0]).parse_args(argv)
    started = start(a)
    ds, seeds = dataset_and_seeds(a)
    rows: list[dict[str, Any]] = []
    chosen: dict[str, Any] | None = None
    for seed in seeds:
        r, chosen = one_seed(ds, seed, a.quick, chosen)
        rows += r
    summary = summarise(rows)
    n = len(ALPHAS) * len(TEMPS)
    budget = (f"distilled: {n} cells over alpha x T {ALPHAS} x {TEMPS}; plain: {n} cells over learning rate x "
              f"weight decay (plain_ladder); both chosen on validation NDCG@10 of seed {seeds[0]}, then run on "
              f"every seed")
    d = RunConfig()
    result: dict[str, Any] = {"dataset": ds.summary(), "seeds": seeds, "quick": a.quick, "budget": budget,
                              "defaults": {"alpha": d.distill.alpha, "T": d.distill.temperature,
                                           "lr": d.student_train.lr, "weight_decay": d.student_train.weight_decay},
                              "refresh_epochs": REFRESH_EPOCHS, "chosen": {k: chosen[k] for k in ("kd", "plain")},
                              "choices": chosen["choices"], "kd_grid": chosen["kd_grid"],
                              "plain_grid": chosen["plain_grid"], "rows": rows, "summary": summary}
    md = [f"\nBudget: {budget}.\n",
          table(f"1/{FRACTION} MF student on {ds.name}, mean of {len(seeds)} seed(s)", summary,
                ["model", "group", "params", "ndcg@10", "ndcg@10_std", "hr@10", "recall@20", "retention", "gain",
                 "gain_std", "gain_min", "epochs_run"]),
          table(f"Which cell each selection picks (seed {seeds[0]}), and its test NDCG@10", chosen["choices"],
                ["selection", "alpha", "T", "val_ndcg@10", "test_ndcg@10"]),
          table(f"Distilled cells (seed {seeds[0]}): validation under each selection, test", chosen["kd_grid"],
                ["alpha", "T", "lagged_val", "lagged_test", "lagged_epoch", "direct_val", "direct_test",
                 "direct_epoch"]),
          table(f"Plain cells (seed {seeds[0]})", chosen["plain_grid"], ["lr", "weight_decay", "val", "test", "epoch"])]
    result["markdown"] = "\n".join(md)
    write_json("fair" if not a.data else f"fair-{ds.name}", a, result, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

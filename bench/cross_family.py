"""Cross-family distillation at the 1/5 budget: sequential teacher -> matrix-factorisation student (#8).

    .venv/bin/python bench/cross_family.py                  # the sample, 3 seeds (about 30 min on 2 cores)
    .venv/bin/python bench/cross_family.py --data PATH      # any dataset the loaders read (MovieLens folder...)
    .venv/bin/python bench/cross_family.py --quick          # 1 seed, few epochs: a smoke run

The MF student is the largest one within 1/5 of the default sasrec teacher's parameters, trained longer than
the default student (``LONG``: 60 epochs, patience 8; with patience 4 early stopping ended some runs after 12
epochs). Every student is compared with the plain MF student of the same size trained the same way.

1. **alpha and T are chosen on validation**, never on test: on the first seed, the 1/5 student is distilled
   at every (alpha, T) of ``SELECT_ALPHAS x SELECT_TEMPS`` and the cell with the best *validation* NDCG@10
   is kept for all seeds. The defaults (alpha 0.5, T 2) are reported beside it.
2. **Two test protocols**, both reported:
   - *as trained*: the student's soft labels stop at the end of each user's training sequence, while the
     teacher, at test time, also reads the user's validation interaction. The student is one interaction
     behind the teacher.
   - *refreshed*: the validation interactions arrive (``Split.advance``); the soft labels are recomputed
     from the teacher on the new data and the student is fine-tuned on them (``refresh_student``, the call
     the product offers for this). The plain student is refreshed on the same data. All three models
     then know the same interactions when they rank the test item, which the soft labels never see.

Prints tables and writes ``bench/results/cross_family.json`` (``cross_family-NAME.json`` with ``--data``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from _common import start, table, write_json  # bench/ is on sys.path: the scripts run as python bench/x.py
from distill_core import DistillConfig, ModelSpec, RunConfig, split_dataset, train_model
from distill_core.refresh import REFRESH_EPOCHS, refresh_student
from quality import METRICS, dataset_and_seeds, dataset_parser, log, mf_dim_for, row, summarise

FRACTION = 5
LONG = {"epochs": 60, "patience": 8}
SELECT_ALPHAS = (0.0, 0.25, 0.5)
SELECT_TEMPS = (1.0, 2.0)


def one_seed(ds: Any, seed: int, quick: bool, chosen: dict[str, float] | None, log: Any
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, float]]:
    """Rows of one seed; on the first seed (``chosen`` None) also the selection grid and its choice."""
    cfg = RunConfig().with_seed(seed)
    split = split_dataset(ds, cfg.split)
    t_train = replace(cfg.teacher_train, epochs=min(cfg.teacher_train.epochs, 3)) if quick else cfg.teacher_train
    s_train = replace(cfg.student_train, **LONG)
    if quick:
        s_train = replace(s_train, epochs=3)
    teacher = train_model(split, cfg.teacher, t_train)
    t_ndcg, t_params = teacher.test["ndcg@10"], teacher.summary()["params"]
    rows = [row("teacher sasrec", "teacher", teacher)]
    log(f"seed {seed}: teacher ndcg@10 {t_ndcg:.4f} ({t_params:,} params)")
    spec = ModelSpec("mf", mf_dim_for(t_params / FRACTION, split))

    def kd(alpha: float, temp: float) -> Any:
        return train_model(split, spec, s_train, role="student_kd", teacher=teacher.model,
                           distill=DistillConfig(alpha, temp, soft_labels="current"))

    grid: list[dict[str, Any]] = []
    if chosen is None:
        for a in SELECT_ALPHAS:
            for t in SELECT_TEMPS:
                tm = kd(a, t)
                grid.append({"alpha": a, "T": t, "val_ndcg@10": tm.fit.best_metric,
                             "ndcg@10": tm.test["ndcg@10"], "epochs_run": len(tm.fit.history)})
                log(f"  select alpha {a:g} T {t:g}: val ndcg@10 {tm.fit.best_metric:.4f}")
        best = max(grid, key=lambda g: g["val_ndcg@10"])
        chosen = {"alpha": best["alpha"], "T": best["T"]}
    a, t = chosen["alpha"], chosen["T"]
    d = cfg.distill
    new = split.advance()
    r_train = replace(s_train, epochs=REFRESH_EPOCHS)
    tag = f"mf{spec.dim} (1/{FRACTION})"
    plain = train_model(split, spec, s_train, role="student_plain")
    settings = [(f"defaults, alpha {d.alpha:g} T {d.temperature:g}", d.alpha, d.temperature)]
    if (a, t) == (d.alpha, d.temperature):  # validation chose the defaults: one row, not two identical ones
        settings[0] = (settings[0][0] + " (also the validation choice)", a, t)
    else:
        settings.append((f"chosen on validation, alpha {a:g} T {t:g}", a, t))
    variants: list[tuple[str, Any, DistillConfig | None]] = [(f"{tag} plain", plain, None)]
    for label, va, vt in settings:
        dc = DistillConfig(va, vt, soft_labels="current")
        variants.append((f"{tag} distilled current, {label}", kd(va, vt), dc))
    for name, tm, _ in variants:
        rows.append(row(name, "as trained", tm, t_ndcg))
        log(f"  {name}: ndcg@10 {tm.test['ndcg@10']:.4f} ({len(tm.fit.history)} epochs)")
    for name, tm, dc in variants:
        fresh = (refresh_student(tm.model, new, r_train) if dc is None
                 else refresh_student(tm.model, new, r_train, teacher=teacher.model, distill=dc))
        rname = name.replace(tag, f"{tag} refreshed,").replace(", distilled current", "")
        rows.append(row(rname, "refreshed", fresh, t_ndcg))
        log(f"  {rname}: ndcg@10 {fresh.test['ndcg@10']:.4f}")
    for r in rows:
        r["seed"] = seed
    return rows, grid, chosen


def gains(summary: list[dict[str, Any]]) -> None:
    """gain = NDCG@10 over the plain student of the same protocol (summarise pairs by name otherwise)."""
    plain = {s["group"]: s for s in summary if " plain" in s["model"]}
    for s in summary:
        s.pop("gain", None)
        base = plain.get(s["group"])
        if base is not None and s is not base and not s["model"].startswith("teacher"):
            s["gain"] = s["ndcg@10"] / base["ndcg@10"]


def targets(summary: list[dict[str, Any]], t_params: int) -> list[dict[str, Any]]:
    out = []
    for s in summary:
        if "gain" not in s:  # the teacher and the plain students (gains() sets it on every distilled row)
            continue
        out.append({"model": s["model"], "protocol": s["group"],
                    "gain >= 1.30x": s["gain"], "retention >= 90%": s["retention"],
                    "params <= 1/5": s["params"] / t_params,
                    "met": bool(s["gain"] >= 1.3 and s["retention"] >= 0.9 and s["params"] / t_params <= 0.2)})
    return out


def main(argv: list[str] | None = None) -> int:
    a = dataset_parser(__doc__.split("\n")[0]).parse_args(argv)
    started = start(a)
    ds, seeds = dataset_and_seeds(a)
    rows: list[dict[str, Any]] = []
    chosen: dict[str, float] | None = None
    grid: list[dict[str, Any]] = []
    for seed in seeds:
        r, g, chosen = one_seed(ds, seed, a.quick, chosen, log)
        rows += r
        grid = grid or g
    summary = summarise(rows)
    gains(summary)
    t_params = next(s["params"] for s in summary if s["model"] == "teacher sasrec")
    tg = targets(summary, t_params)
    result: dict[str, Any] = {"dataset": ds.summary(), "seeds": seeds, "quick": a.quick,
                              "student_train": LONG, "refresh_epochs": REFRESH_EPOCHS, "chosen": chosen,
                              "selection_grid": grid, "rows": rows, "summary": summary, "targets": tg}
    md = [table(f"MF student at 1/{FRACTION} of the teacher's parameters on {ds.name}, mean of {len(seeds)} seed(s)",
                summary, ["model", "group", "params", *METRICS[:1], "ndcg@10_std", *METRICS[1:], "retention", "gain",
                          "epoch_s", "score_ms_per_1k"]),
          table(f"alpha x T chosen on validation (seed {seeds[0]}; test shown, not used)", grid,
                ["alpha", "T", "val_ndcg@10", "ndcg@10", "epochs_run"]),
          table("#8 targets (mean of the seeds)", tg,
                ["model", "protocol", "gain >= 1.30x", "retention >= 90%", "params <= 1/5", "met"])]
    result["markdown"] = "\n".join(md)
    write_json("cross_family" if not a.data else f"cross_family-{ds.name}", a, result, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

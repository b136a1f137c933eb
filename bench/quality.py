"""Quality retained by distillation: teacher, distilled and plain students, over seeds.

    .venv/bin/python bench/quality.py                  # the sample, 3 seeds (about 20-30 min on 2 cores)
    .venv/bin/python bench/quality.py --data PATH      # any dataset the loaders read (MovieLens folder, CSV...)
    .venv/bin/python bench/quality.py --quick          # 1 seed, few epochs: a smoke run

Per seed: the default teacher (sasrec); mf students of about 1/10 and 1/30 of its parameters, distilled in
``current`` mode and in ``per-step`` mode and trained plain; a small sasrec student of about 1/10 (same
family, per-step); an mf teacher of the default student's family with the same 1/10 student; the text
teacher when the LM extra is installed; and the refresh of the distilled student when the validation
interactions arrive, with recomputed soft labels, with stale ones, and the plain refresh.
``--grid`` adds the alpha x T grid of the 1/10 mf student in ``current`` mode (first seed only).
Prints tables and writes ``bench/results/quality.json``.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import numpy as np

from _common import parser, start, table, write_json  # bench/ is on sys.path: the scripts run as python bench/x.py
from distill_core import (DistillConfig, ModelSpec, RunConfig, TrainConfig, load_dataset, load_sample, split_dataset,
                          train_model)
from distill_core.config import MODEL_FAMILIES
from distill_core import sizing
from distill_core.refresh import REFRESH_EPOCHS, refresh_student

METRICS = ("ndcg@10", "hr@10", "recall@20")
PER_STEP_EPOCHS = 8


def mf_dim_for(target: float, split: Any) -> int:
    """The largest mf dim whose parameter count stays at or below ``target`` (``sizing.largest_dim``)."""
    return sizing.largest_dim(ModelSpec("mf", 1), split.n_users, split.n_items, target)


def sasrec_dim_for(target: float, split: Any) -> int:
    """The largest one-layer sasrec dim (a multiple of its 2 heads) within ``target`` parameters."""
    return sizing.largest_dim(ModelSpec("sasrec", 2, layers=1), split.n_users, split.n_items, target)


def row(name: str, group: str, tm: Any, teacher_ndcg: float | None = None) -> dict[str, Any]:
    s = tm.summary()
    epochs = max(1, len(tm.fit.history))
    out = {"model": name, "group": group, "family": tm.spec.family, "dim": tm.spec.dim, "params": s["params"],
           "epoch_s": s["train_seconds"] / epochs, "score_ms_per_1k": s["score_ms_per_1k_users"]}
    out |= {m: tm.test[m] for m in METRICS}
    if teacher_ndcg:
        out["retention"] = tm.test["ndcg@10"] / teacher_ndcg
    return out


def one_seed(ds: Any, seed: int, quick: bool, log: Any) -> list[dict[str, Any]]:
    cfg = RunConfig().with_seed(seed)
    split = split_dataset(ds, cfg.split)
    cap = (lambda t: replace(t, epochs=min(t.epochs, 3))) if quick else (lambda t: t)
    t_train, s_train = cap(cfg.teacher_train), cap(cfg.student_train)
    rows: list[dict[str, Any]] = []

    teacher = train_model(split, cfg.teacher, t_train)
    t_ndcg = teacher.test["ndcg@10"]
    rows.append(row("teacher sasrec", "sasrec teacher", teacher))
    log(f"seed {seed}: teacher sasrec ndcg@10 {t_ndcg:.4f} ({teacher.summary()['params']:,} params)")
    t_params = teacher.summary()["params"]

    def student(name: str, group: str, spec: ModelSpec, t: Any, mode: str | None, ref: float,
                train: TrainConfig | None = None) -> Any:
        kd = None if mode is None else DistillConfig(cfg.distill.alpha, cfg.distill.temperature, soft_labels=mode)
        tm = train_model(split, spec, train or s_train, role="student_kd" if kd else "student_plain",
                         teacher=t.model if kd else None, distill=kd)
        rows.append(row(name, group, tm, ref))
        log(f"  {name}: ndcg@10 {tm.test['ndcg@10']:.4f}")
        return tm

    plain = {}
    for frac in (10, 30):
        spec = ModelSpec("mf", mf_dim_for(t_params / frac, split))
        plain[frac] = student(f"mf{spec.dim} plain (1/{frac})", "sasrec teacher", spec, None, None, t_ndcg)
        kd = student(f"mf{spec.dim} distilled current (1/{frac})", "sasrec teacher", spec, teacher, "current", t_ndcg)
        if frac == 10:
            kd10, spec10 = kd, spec
            # per-step soft labels run the teacher on every batch (about 10x the epoch time): fewer epochs
            per_step = replace(s_train, epochs=min(s_train.epochs, PER_STEP_EPOCHS))
            student(f"mf{spec.dim} distilled per-step (1/10, {per_step.epochs} epochs)", "sasrec teacher", spec,
                    teacher, "per-step", t_ndcg, per_step)
    small = ModelSpec("sasrec", sasrec_dim_for(t_params / 10, split), layers=1)
    student(f"sasrec{small.dim}x1 plain (1/10)", "sasrec teacher", small, None, None, t_ndcg)
    student(f"sasrec{small.dim}x1 distilled per-step (1/10)", "sasrec teacher", small, teacher, "per-step", t_ndcg)

    # refresh: the validation interactions arrive; fine-tune for a few epochs on the advanced split
    new = split.advance()
    r_train = replace(s_train, epochs=REFRESH_EPOCHS)
    fresh = refresh_student(kd10.model, new, r_train, teacher=teacher.model, distill=replace(cfg.distill, soft_labels="current"))
    stale = refresh_student(kd10.model, new, r_train, teacher=teacher.model, distill=replace(cfg.distill, soft_labels="current"),
                            stale_split=split)
    plain_r = refresh_student(plain[10].model, new, r_train)
    for name, tm in ((f"mf{spec10.dim} refreshed, soft labels recomputed", fresh),
                     (f"mf{spec10.dim} refreshed, stale soft labels", stale),
                     (f"mf{spec10.dim} plain refreshed", plain_r)):
        rows.append(row(name, "refresh (validation items arrive)", tm, t_ndcg))
        log(f"  {name}: ndcg@10 {tm.test['ndcg@10']:.4f}")

    # same family: a wide mf teacher and the 1/10 mf student of the default student's size
    mf_teacher = train_model(split, ModelSpec("mf", 64), replace(s_train, seed=seed))
    rows.append(row("teacher mf64", "mf teacher", mf_teacher))
    student(f"mf{spec10.dim} distilled (mf teacher)", "mf teacher", spec10, mf_teacher, "current",
            mf_teacher.test["ndcg@10"])
    if "text" in MODEL_FAMILIES and _text_available():
        text_t = train_model(split, ModelSpec("text", 64), t_train)
        rows.append(row("teacher text", "text teacher", text_t))
        student(f"mf{spec10.dim} distilled (text teacher)", "text teacher", spec10, text_t, "current",
                text_t.test["ndcg@10"])
    for r in rows:
        r["seed"] = seed
    return rows


def _text_available() -> bool:
    try:
        from distill_core.text_embed import available  # the optional LM extra
    except ImportError:
        return False
    return bool(available())


def grid(ds: Any, alphas: list[float], temps: list[float], quick: bool, log: Any) -> list[dict[str, Any]]:
    cfg = RunConfig()
    split = split_dataset(ds, cfg.split)
    t_train = replace(cfg.teacher_train, epochs=3) if quick else cfg.teacher_train
    s_train = replace(cfg.student_train, epochs=3) if quick else cfg.student_train
    teacher = train_model(split, cfg.teacher, t_train)
    spec = ModelSpec("mf", mf_dim_for(teacher.summary()["params"] / 10, split))
    out = []
    for a in alphas:
        for t in temps:
            tm = train_model(split, spec, s_train, role="student_kd", teacher=teacher.model,
                             distill=DistillConfig(a, t, soft_labels="current"))
            out.append({"alpha": a, "T": t, "val_ndcg@10": tm.fit.best_metric, **{m: tm.test[m] for m in METRICS}})
            log(f"  grid alpha {a:g} T {t:g}: test ndcg@10 {tm.test['ndcg@10']:.4f}")
    return out


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds, per model; gain = distilled / plain of the same size."""
    names = list(dict.fromkeys(r["model"] for r in rows))
    out = []
    for name in names:
        rs = [r for r in rows if r["model"] == name]
        s = {"model": name, "group": rs[0]["group"], "params": rs[0]["params"], "seeds": len(rs)}
        for m in (*METRICS, "retention", "epoch_s", "score_ms_per_1k"):
            vals = [r[m] for r in rs if m in r]
            if vals:
                s[m] = float(np.mean(vals))
                s[f"{m}_std"] = float(np.std(vals))
        out.append(s)
    by = {s["model"]: s for s in out}
    for s in out:
        base = _plain_twin(s["model"], by)
        if base is not None:
            s["gain"] = s["ndcg@10"] / base["ndcg@10"]
    return out


def _plain_twin(name: str, by: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if "plain" in name or name.startswith("teacher"):
        return None
    arch = name.split(" ")[0]
    if "refreshed" in name:
        return by.get(f"{arch} plain refreshed")
    return next((s for n, s in by.items() if n.startswith(f"{arch} plain (")), None)


def targets(summary: list[dict[str, Any]], t_params: int) -> list[dict[str, Any]]:
    by = {s["model"]: s for s in summary}
    kd = next(s for s in summary if "distilled current (1/10)" in s["model"])
    same = next(s for s in summary if s["model"].startswith("sasrec") and "distilled" in s["model"])
    return [
        {"target": "#5: distilled 1/10 student >= 90% of the teacher's NDCG@10", "value": kd["retention"],
         "met": kd["retention"] >= 0.9, "model": kd["model"]},
        {"target": "#5: distilled 1/10 student >= 1.08x the plain student", "value": kd["gain"],
         "met": kd["gain"] >= 1.08, "model": kd["model"]},
        {"target": "#7: 1/10 student from the sequential teacher >= 1.10x plain (mf, current)", "value": kd["gain"],
         "met": kd["gain"] >= 1.10, "model": kd["model"]},
        {"target": "#7: same-family sasrec 1/10 student >= 1.10x plain", "value": same["gain"],
         "met": same["gain"] >= 1.10, "model": same["model"]},
        {"target": "#8: mf current >= 1.30x plain", "value": kd["gain"], "met": kd["gain"] >= 1.3, "model": kd["model"]},
        {"target": "#8: mf current >= 90% of the teacher", "value": kd["retention"], "met": kd["retention"] >= 0.9,
         "model": kd["model"]},
        {"target": "#8: at most 1/5 of the teacher's parameters", "value": kd["params"] / t_params,
         "met": kd["params"] / t_params <= 0.2, "model": kd["model"]},
    ] + ([{"target": "refresh: recomputed soft labels beat stale ones", "model": r["model"],
           "value": r["ndcg@10"] / by[r["model"].replace("soft labels recomputed", "stale soft labels")]["ndcg@10"],
           "met": r["ndcg@10"] > by[r["model"].replace("soft labels recomputed", "stale soft labels")]["ndcg@10"]}
          for r in summary if "recomputed" in r["model"]])


def dataset_parser(description: str) -> Any:
    """The options of a quality benchmark: which dataset, which seeds (and _common's)."""
    p = parser(description)
    p.set_defaults(threads=0)  # quality, not timing: use every core
    p.add_argument("--data", help="dataset file or folder (default: the bundled sample)")
    p.add_argument("--format", default="auto")
    p.add_argument("--seeds", default="0,1,2")
    return p


def dataset_and_seeds(a: Any) -> tuple[Any, list[int]]:
    ds = load_dataset(a.data, a.format) if a.data else load_sample()
    return ds, [0] if a.quick else [int(s) for s in a.seeds.split(",")]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = dataset_parser(__doc__.split("\n")[0])
    p.add_argument("--grid", action="store_true", help="add the alpha x T grid (current mode, first seed)")
    p.add_argument("--alphas", default="0,0.25,0.5,0.75")
    p.add_argument("--temperatures", default="1,2,4,8")
    a = p.parse_args(argv)
    started = start(a)
    ds, seeds = dataset_and_seeds(a)
    rows = [r for seed in seeds for r in one_seed(ds, seed, a.quick, log)]
    summary = summarise(rows)
    t_params = next(s["params"] for s in summary if s["model"] == "teacher sasrec")
    tg = targets(summary, t_params)
    result: dict[str, Any] = {"dataset": ds.summary(), "seeds": seeds, "quick": a.quick,
                              "defaults": RunConfig().to_dict(), "rows": rows, "summary": summary, "targets": tg}
    if a.grid:
        result["grid"] = grid(ds, [float(x) for x in a.alphas.split(",")],
                              [float(x) for x in a.temperatures.split(",")], a.quick, log)
    md = [table(f"Quality on {ds.name}, mean of {len(seeds)} seed(s)", summary,
                ["model", "params", "ndcg@10", "ndcg@10_std", "hr@10", "recall@20", "retention", "gain", "epoch_s",
                 "score_ms_per_1k"]),
          table("Targets", tg, ["target", "value", "met"])]
    if a.grid:
        md.append(table("alpha x T (mf 1/10 student, current mode, first seed)", result["grid"],
                        ["alpha", "T", "val_ndcg@10", "ndcg@10", "hr@10"]))
    result["markdown"] = "\n".join(md)
    write_json("quality" if not a.data else f"quality-{ds.name}", a, result, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m distill_core sweep``: one distilled student per (alpha, T) cell and the plain student over as many
(lr, weight decay) cells (distill_core.sweep), in the run store, so the same command resumes; JSON + CSV.

``--method rd,rrd --knob 5,10,20`` sweeps each method over alpha x its main knob (``sweep.MAIN_KNOB``: T for
logits, rd_lambda for rd, rank_k for rrd, de_experts for de, combo_weight for the combinations), one method after another,
every method with as many cells as the others and the plain student (whose cells are shared: trained once)."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from distill_core import catalogue
from distill_core.cli.common import RATIO_HELP, add_data_args, clean, data_options, load_data, sized, student, val
from distill_core.cli.methods import add_method_args, check_distill, method_fields
from distill_core.cli.scale import add_scale_args, check_scale, scale_train, soft_top_k
from distill_core.config import METHODS, MODEL_FAMILIES, STUDENT_FAMILIES, DistillConfig, ModelSpec, RunConfig
from distill_core.distillers import TERM_NAMES
from distill_core.errors import RecDistillError


def add_parser(sub: Any, d: RunConfig) -> None:
    sw = sub.add_parser("sweep", help="distil one student per (alpha, T) cell of a grid; resumable; JSON + CSV")
    sw.add_argument("--alpha", required=True, help="alpha grid, comma-separated values in [0, 1]")
    sw.add_argument("--temperature", required=True, help="temperature grid, comma-separated values > 0 (methods "
                                                          "other than logits take its first value)")
    add_scale_args(sw, d)
    add_method_args(sw, d, f"comma-separated distillation methods ({', '.join(METHODS)}); each is swept over "
                           "alpha x its main knob, with as many cells as the others (default %(default)s)")
    sw.add_argument("--knob", default=None,
                    help="the grid of the main knob of the methods other than logits (rd_lambda for rd, rank_k for rrd, "
                         "de_experts for de, combo_weight for logits+rrd and de+rrd), comma-separated; default: "
                         "the knob's own value")
    add_data_args(sw)
    sw.add_argument("--teacher-run", help="a teacher run id in the store to reuse (else a teacher is trained)")
    sw.add_argument("--teacher", default=d.teacher.family, choices=MODEL_FAMILIES)
    sw.add_argument("--teacher-dim", type=int, default=d.teacher.dim)
    sw.add_argument("--layers", type=int, default=d.teacher.layers, help="teacher layers (two_tower, sasrec)")
    sw.add_argument("--teacher-epochs", type=int, default=d.teacher_train.epochs)
    sw.add_argument("--student", default=d.student.family, choices=STUDENT_FAMILIES)
    sw.add_argument("--student-dim", type=int, default=None, help=f"default {d.student.dim}, or see --student-ratio")
    sw.add_argument("--student-ratio", type=float, default=None, help=RATIO_HELP)
    sw.add_argument("--epochs", type=int, default=d.student_train.epochs,
                    help="maximum epochs per cell (early stopping on validation NDCG@10)")
    sw.add_argument("--lr", type=float, default=None,
                    help=f"the students' Adam learning rate, the first of the plain ladder (default "
                         f"{d.student_train.lr:g} on the full softmax, {catalogue.SAMPLED_STUDENT_LR:g} on the "
                         "sampled path: catalogue.student_lr)")
    sw.add_argument("--patience", type=int, default=d.student_train.patience,
                    help="epochs without a better validation NDCG@10 before a cell stops (0: never stop early)")
    sw.add_argument("--no-t2", action="store_true", help="do not multiply the KL term by T^2")
    sw.add_argument("--soft-labels", default="auto", choices=["auto", "current", "per-step"])
    sw.add_argument("--seed", type=int, default=0)
    sw.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    sw.add_argument("--backend", default="local", choices=["local", "ray"],
                    help="local: the cells one after another in this process; ray: each cell a Ray task "
                         "(needs requirements-dist.txt), the results stored here as they come")
    sw.add_argument("--address", default=None,
                    help="with --backend ray: local (a private Ray on this machine, 2 CPUs; the default), auto "
                         "(the cluster of `ray start`) or HOST:PORT")
    sw.add_argument("--max-concurrent", type=int, default=None,
                    help="with --backend ray: at most this many cells at once (default: the cluster's CPUs)")
    sw.add_argument("--out", required=True,
                    help="where to write sweep.json (every cell, distilled and plain, also goes to a .csv beside it)")


def _wait(runner: Any, job_id: str, term: str = "KL") -> Any:
    """Follow a background job on stderr until it ends (Ctrl-C stops it at the next mini-batch); ``term``
    names the distillation method's term (``distillers.TERM_NAMES``)."""
    shown, rows = None, 0  # the phase last announced, epoch rows printed
    try:
        while True:
            snap = runner.snapshot(job_id)
            for m in snap.epochs_log[rows:]:  # rows first: a short phase may end between two polls
                if m["phase"] != shown:
                    shown = m["phase"]
                    print(f"training {shown}", file=sys.stderr, flush=True)
                print(f"  epoch {int(m['epoch']):3d}  total {m['total']:.4f}  {term.lower()} {m['kl']:.4f}{val(m)}",
                      file=sys.stderr, flush=True)
            rows = len(snap.epochs_log)
            if snap.status == "running" and snap.phase and snap.phase != shown:
                shown = snap.phase
                print(f"training {shown} ({snap.phase_index + 1}/{snap.n_phases})", file=sys.stderr, flush=True)
            if not snap.active:
                return snap
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("stopping at the next mini-batch…", file=sys.stderr, flush=True)
        runner.cancel(job_id)
        return runner.wait(job_id)


def _ray_settings(a: argparse.Namespace) -> str | None:
    """The Ray address of ``--backend ray`` (checked, and Ray's presence too, before anything is read), else None."""
    from distill_core import sweep_ray

    if a.backend != "ray":
        if a.address is not None or a.max_concurrent is not None:
            raise RecDistillError("--address and --max-concurrent need --backend ray")
        return None
    sweep_ray.require()
    sweep_ray.check_max_concurrent(a.max_concurrent)
    return sweep_ray.check_address(a.address or sweep_ray.LOCAL)


def command(a: argparse.Namespace) -> int:
    from distill_core import sweep, sweep_ray, sweep_results
    from distill_core.runner import JobRunner
    from distill_core.store import RunStore
    from distill_core.workflows import teacher_job

    d = RunConfig()
    # the grids are checked before anything is loaded or trained; messages name the flag
    alphas = sweep.parse_grid(a.alpha, "alpha", "--alpha")
    temperatures = sweep.parse_grid(a.temperature, "temperature", "--temperature")
    address = _ray_settings(a)
    scale = scale_train(a)
    student_train = replace(d.student_train, epochs=a.epochs, lr=d.student_train.lr if a.lr is None else a.lr,
                            patience=a.patience, seed=a.seed,
                            device=a.device, **scale)
    specs = _specs(a, alphas, temperatures, student(a, d), student_train)
    ds = load_data(a, data_options(a))
    check_scale(a, ds)
    if a.lr is None:  # the students' default follows their path (catalogue.student_lr says why)
        lr = catalogue.student_lr(student_train.loss, ds.n_items)
        specs = [replace(sp, train=replace(sp.train, lr=lr)) for sp in specs]
    store, runner = RunStore(), JobRunner()
    teacher = a.teacher_run
    t_spec = (ModelSpec(**store.get(teacher).config["model"]) if teacher is not None
              else replace(d.teacher, family=a.teacher, dim=a.teacher_dim, layers=a.layers))
    sized_student = sized(a, specs[0].student, t_spec, ds)  # an impossible budget stops before training
    specs = [replace(sp, student=sized_student) for sp in specs]
    for sp in specs:  # K against the catalogue and the teacher's top-K lists, before anything trains
        cells = sp.cells()
        for cell in (cells[0], cells[-1]):  # the smallest and the largest knob value
            check_distill(sp.train, cell, ds)
    if teacher is None:
        t_train = replace(d.teacher_train, epochs=a.teacher_epochs, seed=a.seed, device=a.device, **scale)
        teacher = sweep.find_teacher(store, ds, t_spec, t_train)  # same config, dataset and seed: its cells too
        if teacher is not None:
            print(f"reusing stored teacher run {teacher} (same model, training settings, seed, split and "
                  f"dataset)", file=sys.stderr)
        else:
            snap = _wait(runner, runner.submit("teacher", teacher_job(ds, t_spec, t_train, store)))
            if snap.status != "done":
                print(f"error: the teacher {snap.status}: {snap.error or 'stopped'}", file=sys.stderr)
                return 1
            teacher = snap.result
    reports, status = [], 0
    out = Path(a.out)
    for spec in specs:
        # both refuse a missing teacher or one of another dataset; the Ray one connects first
        job = (sweep.sweep_job(ds, teacher, spec, store) if address is None
               else sweep_ray.ray_sweep_job(ds, teacher, spec, store, address, a.max_concurrent))
        print(f"teacher {teacher}; sweep of {spec.method}: {len(spec.alphas)} alphas x {len(spec.axis)} values of "
              f"{spec.knob} (and as many plain cells) in {store.home}"
              + (f", trained on Ray ({address})" if address else ""), file=sys.stderr)
        try:
            snap = _wait(runner, runner.submit("sweep", job), TERM_NAMES[spec.method])
        finally:
            if address is not None:
                sweep_ray.disconnect()
        reports.append(sweep_results.sweep_report(store, ds, teacher, spec,
                                                  snap.result if snap.status == "done" else None))
        if snap.status != "done":
            status = 1
            print(f"error: the sweep {snap.status}: {snap.error or 'stopped'}; the cells that finished are stored "
                  f"and the same command resumes the sweep; partial report in {out}", file=sys.stderr)
            break
    report = reports[0] if len(reports) == 1 else _methods_report(reports)
    out.write_text(json.dumps(clean(report), indent=2))
    _cells_table(reports).to_csv(out.with_suffix(".csv"), index=False)
    if status:
        return status
    for rep in reports:
        _print_summary(rep)
    if len(reports) > 1:
        best = report["best_method"]
        print(f"best method on validation NDCG@10: {best['method'] if best else 'none finished'}"
              + (f" (test NDCG@10 {best['ndcg@10']:.4f}, x{report['gain_ndcg@10']:.3f} the best plain cell)"
                 if best else ""), file=sys.stderr)
    print(f"report in {out} and {out.with_suffix('.csv')}", file=sys.stderr)
    return 0


def _specs(a: argparse.Namespace, alphas: tuple[float, ...], temperatures: tuple[float, ...], spec_student: ModelSpec,
           train: Any) -> list[Any]:
    """One SweepSpec per ``--method``, each over alpha x its main knob; all with the same number of cells, so
    that every method and the plain student get the same budget (refused otherwise, naming the flags)."""
    from distill_core import sweep
    from distill_core.errors import ConfigError

    methods = [m.strip() for m in a.method.split(",") if m.strip()]
    if not methods or len(set(methods)) != len(methods):
        raise ConfigError(f"--method: give distinct methods among {', '.join(METHODS)} (got {a.method!r})")
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"--method: {m!r} is not a method; choose among {', '.join(METHODS)}")
    base = method_fields(a) | {"method": "logits", "soft_top_k": soft_top_k(a)}
    specs = []
    for m in methods:
        knob = sweep.MAIN_KNOB[m]
        if knob == "temperature":
            t, knobs = temperatures, ()
        else:
            t = temperatures[:1]
            knobs = sweep.parse_knob(a.knob, knob, "--knob") if a.knob else ()
        try:
            distill = DistillConfig(**(base | {"method": m}))
        except RecDistillError as e:
            raise ConfigError(f"--method {m}: {e}") from None
        specs.append(sweep.SweepSpec(alphas, t, spec_student, train, not a.no_t2, a.soft_labels, distill, knobs))
    sizes = {sp.method: sp.n_cells for sp in specs}
    if len(set(sizes.values())) > 1:
        raise ConfigError("--temperature / --knob: every method must get the same number of cells (the same "
                          "tuning budget); got " + ", ".join(f"{m} {n}" for m, n in sizes.items())
                          + ": give --knob as many values as --temperature")
    return specs


def _print_summary(report: dict[str, Any]) -> None:
    best, plain = report["best"], report["best_plain"]
    knob = report["knob"]
    axis = (f"T {best['temperature']:g}" if knob == "temperature" else f"{knob} {best['value']:g}") if best else ""
    best_text = (f"best distilled cell ({report['method']}): alpha {best['alpha']:g}, {axis}, test NDCG@10 "
                 f"{best['ndcg@10']:.4f}" if best is not None else f"no distilled cell of {report['method']} finished")
    plain_text = (f"best plain cell: lr {plain['lr']:g}, weight decay {plain['weight_decay']:g}, test NDCG@10 "
                  f"{plain['ndcg@10']:.4f}" if plain is not None else "no plain cell finished")
    gain = report["gain_ndcg@10"]
    print(f"trained {report.get('trained', 0)} run(s), reused {report.get('reused', 0)} stored run(s), "
          f"{len(report.get('failed', {}))} failed; {report['budget']}; {best_text}; {plain_text}"
          + (f"; gain of the best distilled over the best plain cell on test NDCG@10: x{gain:.3f}"
             if math.isfinite(gain) else ""), file=sys.stderr)


def _methods_report(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The report of a sweep over several methods: each method's own report, the method whose best cell has
    the highest validation NDCG@10 (chosen on validation, never on test) and its gain over the best plain cell
    (the plain cells are the same for every method)."""
    finished = [r for r in reports if r["best"] is not None]
    top = max(finished, key=lambda r: r["best"]["val_ndcg@10"], default=None)
    plain = reports[0]["best_plain"]
    best = None if top is None else {"method": top["method"], **top["best"]}
    gain = best["ndcg@10"] / plain["ndcg@10"] if best and plain and plain["ndcg@10"] else math.nan
    return {"methods": reports, "best_method": best, "best_plain": plain, "gain_ndcg@10": gain,
            "budget": "; ".join(r["budget"] for r in reports)}


def _cells_table(reports: list[dict[str, Any]]) -> Any:
    """Every cell of both sides, one row each: side (distilled | plain), method, its knobs, status, run, numbers
    (the plain cells once: every method shares them)."""
    import pandas as pd

    train = reports[0]["train"]
    kd = [pd.DataFrame(r["cells"]).assign(side="distilled", lr=train["lr"], weight_decay=train["weight_decay"])
          for r in reports]
    plain = pd.DataFrame(reports[0]["plain_cells"]).assign(side="plain")
    cols = ["side", "method", "alpha", "temperature", "knob", "value", "lr", "weight_decay", "status", "run",
            "val_ndcg@10", "ndcg@10", "hr@10", "final_kl"]
    return pd.concat([*kd, plain], ignore_index=True).reindex(columns=cols)

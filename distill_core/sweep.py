"""Sweeps: the distilled student over a grid of alpha x the method's main knob (the temperature for Hinton KD,
``MAIN_KNOB``) and the plain student over as many learning-rate x weight-decay cells, trained one after another in a background job, resumable through
the run store, each side's best cell chosen on validation NDCG@10.

Both sides get the same tuning budget (issue #14: two untuned knobs cost the plain student 6% of test
NDCG@10 on ml-100k), so the gain a sweep reports is that of the best distilled cell over the best plain
cell, both chosen on validation. The plain cells come from a fixed ladder around the student's own
settings (``plain_ladder``); their first cell is those settings, the baseline of every distilled cell.
Plain and distilled cells are trained alternately, so a stopped sweep has spent about as much on either.

A cell is the run whose stored config is exactly the one ``distill_job`` writes for these settings
(split, student, training settings, DistillConfig or none, teacher run). A cell whose run is already
'done' is never trained again, so a stopped sweep resumes where it stopped, a grown grid trains only its
new cells, and a student trained on the Distill page with the same settings counts as a cell.
``find_teacher`` does the same for the teacher (the CLI trains one only when none identical is stored).
Reading a sweep back (frames, best cells, the report) is ``distill_core.sweep_results``; the same cells as Ray
tasks, ``distill_core.sweep_ray``.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from distill_core.config import DistillConfig, ModelSpec, SplitOptions, TrainConfig
from distill_core.data.dataset import Dataset, split_dataset
from distill_core.distill import resolve_device
from distill_core.errors import ConfigError
from distill_core.workflows.jobs import JobFn
from distill_core.workflows.record import (check_same_dataset, load_model, run_config,
                                           train_and_record)
from distill_core.runner import JobContext
from distill_core.store import RunRecord, RunStore
from distill_core.trainer import TrainingError
from distill_core.tuning import MAX_CELLS, plain_ladder

log = logging.getLogger(__name__)

# The values a grid cell reports, with their axis / colour-bar titles.
METRICS: dict[str, str] = {"val_ndcg@10": "validation NDCG@10, best epoch (0-1)",
                           "ndcg@10": "test NDCG@10 (0-1)", "hr@10": "test HR@10 (0-1)",
                           "final_kl": "KL at the last epoch, before T² (nats)"}
COLUMNS = ["alpha", "temperature", "method", "knob", "value", "status", "run", *METRICS]
# The second axis of each method's grid, beside alpha: the knob its paper tunes first. A sweep of several
# methods (the CLI's ``--method a,b``) is one SweepSpec per method with as many cells each, so that every
# method and the plain student get the same budget.
# rd: lambda rather than K: at the authors' lambda 1 the ranks past 5 hold under 1% of the weight, so K 5 and 10
# train nearly alike (bench/methods.py's quick run: lambda 5 scored 0.118 where lambda 1 scored 0.042)
MAIN_KNOB: dict[str, str] = {"logits": "temperature", "rd": "rd_lambda", "rrd": "rank_k", "de": "de_experts",
                             "logits+rrd": "combo_weight", "de+rrd": "combo_weight"}
INT_KNOBS = ("rank_k", "de_experts")  # the knobs DistillConfig wants as integers
PLAIN_COLUMNS = ["lr", "weight_decay", "status", "run", "val_ndcg@10", "ndcg@10", "hr@10"]
NOT_TRAINED = "not trained"


def _numbers(values: str | Iterable[float], name: str) -> list[float]:
    """The numbers of a grid: text split on commas, semicolons or spaces (a token that is not a number is
    refused naming ``name``), or any iterable of numbers."""
    if not isinstance(values, str):
        return [float(v) for v in values]
    out = []
    for t in (t for t in re.split(r"[,;\s]+", values.strip()) if t):
        try:
            out.append(float(t))
        except ValueError:
            raise ConfigError(f"{name}: {t!r} is not a number") from None
    return out


def parse_grid(values: str | Iterable[float], kind: str, name: str | None = None) -> tuple[float, ...]:
    """The distinct values of an alpha grid (``kind="alpha"``: each in [0, 1]) or a temperature grid
    (``kind="temperature"``: each > 0), sorted; text is split on commas, semicolons or spaces.
    Errors name the field as ``name`` (e.g. ``--alpha`` in the CLI)."""
    name = name or f"{kind} grid"
    out = _numbers(values, name)
    if not out:
        raise ConfigError(f"{name} is empty: give at least one value (e.g. {'0.5' if kind == 'alpha' else '2'})")
    for v in out:
        if not math.isfinite(v):
            raise ConfigError(f"{name}: {v!r} is not a finite number")
        if kind == "alpha" and not 0 <= v <= 1:
            raise ConfigError(f"{name}: alpha {v:g} is outside [0, 1]")
        if kind == "temperature" and v <= 0:
            raise ConfigError(f"{name}: temperature {v:g} must be > 0")
    return tuple(sorted(set(out)))


def parse_knob(values: str | Iterable[float], knob: str, name: str | None = None) -> tuple[float, ...]:
    """The distinct values of a method's main knob grid (``MAIN_KNOB``), sorted; each is checked by
    ``SweepSpec`` (each cell's ``DistillConfig``, whose message names the knob); ``rank_k`` and ``de_experts``
    must be whole numbers."""
    name = name or f"{knob} grid"
    out = _numbers(values, name)
    if not out:
        raise ConfigError(f"{name} is empty: give at least one value of {knob}")
    for v in out:
        if not math.isfinite(v) or (knob in INT_KNOBS and v != int(v)):
            raise ConfigError(f"{name}: {knob} {v:g} must be a finite{' whole' if knob in INT_KNOBS else ''} number")
    return tuple(sorted(set(out)))


@dataclass(frozen=True)
class SweepSpec:
    """A grid of alphas x the method's main knob for one student and its training settings; the plain
    student gets as many cells over learning rate x weight decay (``plain_ladder`` around ``train``).

    ``distill`` holds the method and its other knobs (its alpha, T, T² and soft-label mode are the spec's).
    For Hinton KD (``logits``) the second axis is ``temperatures``; for another method it is ``knobs``, the
    values of ``MAIN_KNOB[method]`` (empty: the one value in ``distill``), and ``temperatures`` must hold one
    value (the T of ``logits+rrd``'s KL; unused by rd, rrd, de)."""

    alphas: tuple[float, ...]
    temperatures: tuple[float, ...]
    student: ModelSpec = field(default_factory=lambda: ModelSpec("mf", 6))
    train: TrainConfig = field(default_factory=TrainConfig)
    t_squared: bool = True
    soft_labels: str = "auto"
    distill: DistillConfig = field(default_factory=DistillConfig)
    knobs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "alphas", parse_grid(self.alphas, "alpha"))
        object.__setattr__(self, "temperatures", parse_grid(self.temperatures, "temperature"))
        knob = self.knob
        if knob == "temperature":
            if self.knobs:
                raise ConfigError("knobs: Hinton KD (method logits) sweeps the temperature grid; give no other "
                                  "knob grid")
        else:
            if len(self.temperatures) > 1:
                raise ConfigError(f"temperature grid: method {self.method!r} sweeps {knob}, not T: give one "
                                  f"temperature (got {len(self.temperatures)})")
            object.__setattr__(self, "knobs", parse_knob(self.knobs or (getattr(self.distill, knob),), knob))
        if self.n_cells > MAX_CELLS:
            raise ConfigError(f"the grid has {self.n_cells} cells ({len(self.alphas)} alphas x "
                              f"{len(self.axis)} values of {knob}); at most {MAX_CELLS} are allowed")
        DistillConfig(soft_labels=self.soft_labels)  # the usual message for a bad mode
        self.cells()  # every cell's config is valid (e.g. rank_k against rrd_pool), named by its field

    @property
    def method(self) -> str:
        return self.distill.method

    @property
    def knob(self) -> str:
        """The second axis of the grid: ``MAIN_KNOB[method]``."""
        return MAIN_KNOB[self.method]

    @property
    def axis(self) -> tuple[float, ...]:
        """The values of the second axis (``temperatures`` or ``knobs``)."""
        return self.temperatures if self.knob == "temperature" else self.knobs

    @property
    def n_cells(self) -> int:
        return len(self.alphas) * len(self.axis)

    def cells(self) -> list[DistillConfig]:
        """One DistillConfig per cell, alpha-major."""
        base = replace(self.distill, t_squared=self.t_squared, soft_labels=self.soft_labels)
        if self.knob == "temperature":
            return [replace(base, alpha=a, temperature=t) for a in self.alphas for t in self.temperatures]
        t = self.temperatures[0]
        cast = int if self.knob in INT_KNOBS else float
        return [replace(base, alpha=a, temperature=t, **{self.knob: cast(v)}) for a in self.alphas for v in self.knobs]

    def label(self, d: DistillConfig) -> str:
        """A cell's progress label: ``alpha 0.5 · T 2`` (Hinton KD), ``rrd · alpha 0.5 · rank_k 10``."""
        if self.knob == "temperature":
            return f"{'' if self.method == 'logits' else self.method + ' · '}{cell_label(d.alpha, d.temperature)}"
        return f"{self.method} · alpha {d.alpha:g} · {self.knob} {getattr(d, self.knob):g}"

    def plain_cells(self) -> list[TrainConfig]:
        """The plain student's training settings, one per cell (as many as distilled cells); the first
        is ``train`` itself."""
        return [replace(self.train, lr=lr, weight_decay=wd)
                for lr, wd in plain_ladder(self.n_cells, self.train.lr, self.train.weight_decay)]

    def budget(self) -> str:
        """What each side's settings were chosen from, in one sentence."""
        cells = f"{self.n_cells} cell{'s' if self.n_cells > 1 else ''}"
        axis = "T" if self.knob == "temperature" else self.knob
        who = "distilled" if self.method == "logits" else f"distilled ({self.method})"
        return (f"{who}: {cells} over alpha × {axis}; plain: {cells} over learning rate × weight decay; "
                f"both chosen on validation NDCG@10")


def cell_label(alpha: float, temperature: float) -> str:
    return f"alpha {alpha:g} · T {temperature:g}"


def plain_label(lr: float, weight_decay: float) -> str:
    return f"plain · lr {lr:g} · wd {weight_decay:g}"


def teacher_split(store: RunStore, teacher_run: str, ds: Dataset) -> SplitOptions:
    """The split the teacher was trained on (refused when it was trained on another dataset)."""
    rec = store.get(teacher_run)
    if rec.kind != "teacher":
        raise ConfigError(f"run {teacher_run} is a {rec.kind} run, not a teacher")
    check_same_dataset(rec, ds, "the teacher")
    return SplitOptions(**rec.config["split"])


def find_teacher(store: RunStore, ds: Dataset, spec: ModelSpec, train: TrainConfig,
                 split: SplitOptions = SplitOptions()) -> str | None:
    """The newest finished teacher stored with exactly this model, training settings (seed included) and
    split on this dataset (its fingerprint covers the interactions and the data options), whose weight
    file is there; else None."""
    config = run_config(split, spec, train, None)
    for rec in store.runs(dataset=ds.fingerprint, kind="teacher", status="done"):
        path = store.weights_path(rec.id) if rec.config == config else None
        if path is not None and path.is_file():
            log.info("reusing stored teacher run %s", rec.id)
            return rec.id
    return None


def cell_config(split: SplitOptions, spec: SweepSpec, distill: DistillConfig, teacher_run: str) -> dict[str, Any]:
    """The config a cell's run is stored with: the one distill_job writes for the same settings."""
    return run_config(split, spec.student, spec.train, distill) | {"teacher": teacher_run}


def plain_config(split: SplitOptions, spec: SweepSpec, train: TrainConfig | None = None) -> dict[str, Any]:
    """The config of a plain cell (``train``; default: the sweep's own settings, the first cell)."""
    return run_config(split, spec.student, train or spec.train, None)


def cell_runs(store: RunStore, ds: Dataset, configs: list[dict[str, Any]],
               kind: str = "student_kd") -> list[tuple[RunRecord | None, RunRecord | None]]:
    """For each config: its newest finished run with weights, and its newest run of any status."""
    recs = store.runs(dataset=ds.fingerprint, kind=kind)  # one query, newest first
    out = []
    for cfg in configs:
        same = [r for r in recs if r.config == cfg]
        out.append((next((r for r in same if r.status == "done" and r.weights), None), same[0] if same else None))
    return out


@dataclass(frozen=True)
class Cell:
    """One cell of a sweep: a plain or distilled student, its progress label, settings and stored config."""

    role: str  # student_plain | student_kd
    label: str
    train: TrainConfig
    config: dict[str, Any]
    distill: DistillConfig | None = None


def plan(store: RunStore, ds: Dataset, split: SplitOptions, spec: SweepSpec,
         teacher_run: str) -> list[tuple[Cell, RunRecord | None]]:
    """Every cell with its stored finished run (or None), plain and distilled alternately: plain 1,
    distilled 1, plain 2, ... (the order either backend trains them in: ``sweep_job``, ``sweep_ray``)."""
    plain = [Cell("student_plain", plain_label(t.lr, t.weight_decay), t, plain_config(split, spec, t))
             for t in spec.plain_cells()]
    kd = [Cell("student_kd", spec.label(d), spec.train,
              cell_config(split, spec, d, teacher_run), d) for d in spec.cells()]
    found = [[done for done, _ in cell_runs(store, ds, [s.config for s in side], side[0].role)]
             for side in (plain, kd)]
    return [pair for p, k in zip(zip(plain, found[0]), zip(kd, found[1])) for pair in (p, k)]


def sweep_job(ds: Dataset, teacher_run: str, spec: SweepSpec, store: RunStore) -> JobFn[dict[str, Any]]:
    """A job function training every cell of ``spec``, distilled and plain, not yet done in the store,
    plain and distilled alternately. Stop it between or during cells; a cell stopped mid-training is
    stored as cancelled and trained again by the next sweep.

    Its result is ``{"student_plain": id of the plain cell with the sweep's own settings, "trained": [ids],
    "reused": [ids], "failed": {cell: message}}``, ids of both kinds.
    """
    split_opts = teacher_split(store, teacher_run, ds)
    resolve_device(spec.train.device)  # refuse an impossible device before the job starts

    def fn(ctx: JobContext) -> dict[str, Any]:
        steps = plan(store, ds, split_opts, spec, teacher_run)
        todo = [s for s, done in steps if done is None]
        out: dict[str, Any] = {"student_plain": steps[0][1].id if steps[0][1] else None, "trained": [],
                               "failed": {}, "reused": [done.id for _, done in steps if done is not None]}
        log.info("sweep of %d distilled and %d plain cells: %d stored, %d to train", spec.n_cells, spec.n_cells,
                 len(out["reused"]), len(todo))
        split = split_dataset(ds, split_opts) if todo else None
        teacher = load_model(store, teacher_run, ds) if any(s.distill for s in todo) else None
        for i, s in enumerate(todo):
            if ctx.cancelled:
                break
            stored, _ = cell_runs(store, ds, [s.config], s.role)[0]
            if stored is not None:  # finished meanwhile by another sweep (e.g. from another session)
                out["reused"].append(stored.id)
                rid = stored.id
            else:
                ctx.set_phase(s.label, i, len(todo))  # the progress bar names the cell
                try:
                    rid = train_and_record(ctx, store, ds, split, s.role, spec.student, s.train, s.config,
                                            teacher=teacher if s.distill else None, distill=s.distill,
                                            parent=teacher_run if s.distill else None)
                except TrainingError as e:  # e.g. a NaN loss at one T: recorded as failed, the others go on
                    log.warning("sweep cell %s failed: %s", s.label, e)
                    out["failed"][s.label] = str(e)
                    continue
                ctx.add_run(s.label, rid)
                out["trained"].append(rid)
            if s is steps[0][0]:
                out["student_plain"] = rid
        if out["student_plain"] is not None:
            ctx.add_run("student_plain", out["student_plain"])  # every cell's twin: the sweep's own settings
        return out
    return fn

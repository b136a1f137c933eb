"""What the whole process shares, kept across sessions and reloads (``st.cache_resource``).

One registry per run store folder: the run store, the job runner (which stops and joins its threads when the
process exits, see ``runner``) and the index of the jobs started so far. Beside it, the loaded datasets, their
splits and the loaded models, so that no session loads or splits anything twice. Background jobs never touch
Streamlit; pages poll them (``ui.jobs``).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

import streamlit as st

from distill_core import Dataset, RunStore, Split, SplitOptions, load_sample, split_dataset, views
from distill_core.models import Recommender
from distill_core.runner import JobRunner
from distill_core.runs import ROLE_LABELS, Distillation
from distill_core.store import RunRecord, default_home
from distill_core.workflows import load_model

MAX_DATASETS = 8  # loaded datasets kept in memory (the sample is always kept)


# ----------------------------------------------------------------------------- store, runner, jobs
@dataclass(frozen=True)
class JobInfo:
    """What the dashboard knows of a job besides its progress: its kind, dataset and teacher."""

    job_id: str
    kind: str  # demo | teacher | distill
    dataset: str  # fingerprint
    teacher: str | None = None  # the teacher run a distillation job reads


class _JobIndex:
    """Jobs in the order they were started (lock-guarded: every session reads and adds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, JobInfo] = {}

    def add(self, info: JobInfo) -> None:
        with self._lock:
            self._jobs[info.job_id] = info

    def get(self, job_id: str) -> JobInfo | None:
        with self._lock:
            return self._jobs.get(job_id)

    def latest(self, kind: str, dataset: str) -> str | None:
        with self._lock:
            infos = list(self._jobs.values())
        return next((i.job_id for i in reversed(infos) if i.kind == kind and i.dataset == dataset), None)


class Registry:
    """One run store, one job runner and its job index per store folder."""

    def __init__(self, home: str) -> None:
        self.store = RunStore(home)
        self.runner = JobRunner()
        self.jobs = _JobIndex()


@st.cache_resource(show_spinner=False)
def _registry(home: str) -> Registry:
    return Registry(home)


def shared() -> Registry:
    """The registry of ``$RECDISTILL_HOME`` (default ``~/.recdistill``)."""
    return _registry(str(default_home()))


def store() -> RunStore:
    return shared().store


def runner() -> JobRunner:
    return shared().runner


# ----------------------------------------------------------------------------- datasets
class _Datasets:
    """Loaded datasets by fingerprint, the least recently used dropped beyond ``MAX_DATASETS``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_fp: OrderedDict[str, Dataset] = OrderedDict()

    def put(self, ds: Dataset) -> None:
        with self._lock:
            self._by_fp[ds.fingerprint] = ds
            self._by_fp.move_to_end(ds.fingerprint)
            while len(self._by_fp) > MAX_DATASETS:
                self._by_fp.popitem(last=False)

    def get(self, fingerprint: str) -> Dataset | None:
        with self._lock:
            return self._by_fp.get(fingerprint)


@st.cache_resource(show_spinner=False)
def datasets() -> _Datasets:
    """The datasets the sessions loaded (a session keeps only the fingerprint of its own, ``ui.session``)."""
    return _Datasets()


@st.cache_resource(show_spinner="Loading the bundled sample…")
def sample() -> Dataset:
    """The bundled sample, loaded once per process."""
    return load_sample()


# ----------------------------------------------------------------------------- splits, models, runs
@st.cache_resource(max_entries=8, show_spinner=False)
def _split(fingerprint: str, options: tuple[tuple[str, Any], ...], _ds: Dataset) -> Split:
    return split_dataset(_ds, SplitOptions(**dict(options)))


def split(ds: Dataset, options: dict[str, Any] | None = None) -> Split:
    """The split of ``ds`` with ``options`` (a run's stored ``config["split"]``; default: the default split)."""
    opts = options if options is not None else asdict(SplitOptions())
    return _split(ds.fingerprint, tuple(sorted(opts.items())), ds)


@st.cache_resource(max_entries=12, show_spinner=False)
def _model(home: str, run_id: str, fingerprint: str, _ds: Dataset) -> Recommender:
    return load_model(_registry(home).store, run_id, _ds)


def model(run_id: str, ds: Dataset) -> Recommender:
    """A stored model, loaded once per process (read-only: views never change its context)."""
    return _model(str(default_home()), run_id, ds.fingerprint, ds)


def teachers(ds: Dataset) -> list[RunRecord]:
    """Finished teachers of ``ds`` with weights, newest first."""
    return [r for r in store().runs(dataset=ds.fingerprint, kind="teacher", status="done") if r.weights]


def latest_teacher(ds: Dataset) -> RunRecord | None:
    found = teachers(ds)
    return found[0] if found else None


@st.cache_data(max_entries=64, show_spinner="Comparing the rankings over the test users…")
def _mean_agreement(home: str, run_a: str, run_b: str, fingerprint: str, split_key: str, k: int, _ds: Dataset,
                    _sp: Split) -> dict[str, float]:
    return views.mean_agreement(_model(home, run_a, fingerprint, _ds), _model(home, run_b, fingerprint, _ds),
                                _sp, k=k)


def mean_agreement(run_a: str, run_b: str, ds: Dataset, sp: Split, k: int) -> dict[str, float]:
    """Mean overlap@k and Spearman of two stored models over the test users (cached by run ids and k)."""
    return _mean_agreement(str(default_home()), run_a, run_b, ds.fingerprint, repr(sp.options), k, ds, sp)


def models_of(ds: Dataset, teacher: RunRecord, pair: Distillation | None) -> dict[str, Recommender]:
    """The teacher's model, and the distilled and plain students' when there is a pair, by display name."""
    out = {ROLE_LABELS["teacher"]: model(teacher.id, ds)}
    if pair is not None:
        out[ROLE_LABELS["student_kd"]] = model(pair.student_kd.id, ds)
        out[ROLE_LABELS["student_plain"]] = model(pair.student_plain.id, ds)
    return out


def remeasure_latency(ds: Dataset, run_ids: Collection[str]) -> None:
    """Re-measure each stored model's scoring latency now (median of 7) and keep it in the run's info."""
    from distill_core import compare
    for rid in run_ids:
        m = compare.measure_latency(model(rid, ds))
        store().update_info(rid, {"score_ms_per_1k_users": m["ms_per_1k_users"], "device": m["device"],
                                  "latency_repeats": m["repeats"]})

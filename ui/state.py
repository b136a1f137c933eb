"""The process-wide registry and what one session keeps.

Process-wide (``st.cache_resource``, shared by every session and kept across reloads): the job
runner, the run store, the jobs started so far, the loaded datasets, their splits and the loaded
models. A session keeps only small ids in ``st.session_state``: the active dataset's fingerprint
and the ids of the jobs it started. Background jobs never touch Streamlit; pages poll them.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import streamlit as st

from distill_core import (Dataset, RecDistillError, RunConfig, RunStore, Split, SplitOptions, TrainConfig, load_dataset,
                          load_sample, split_dataset)
from distill_core import views
from distill_core.errors import StoreError
from distill_core.jobs import load_model
from distill_core.models import Recommender
from distill_core.runner import JobRunner, ProgressSnapshot
from distill_core.runs import ROLE_LABELS, Distillation
from distill_core.store import RunRecord, default_home

from ui.uploads import load_upload, resolve_path

LIVE_SECONDS = 1.0  # how often a live section polls its job
_D = RunConfig()
# The Overview's demo: the default models with fewer epochs, so the demo ends within a minute on 2 CPU cores
# with a browser watching (measured 4 + 10 + 10 epochs; the teacher's validation NDCG@10 levels off after 4).
DEMO = replace(_D, teacher_train=replace(_D.teacher_train, epochs=4), student_train=replace(_D.student_train, epochs=10))
if _cap := int(os.environ.get("RECDISTILL_DEMO_EPOCHS") or 0):  # tests, screenshots: cap the demo's epochs
    DEMO = replace(DEMO, teacher_train=replace(DEMO.teacher_train, epochs=min(DEMO.teacher_train.epochs, _cap)),
                   student_train=replace(DEMO.student_train, epochs=min(DEMO.student_train.epochs, _cap)))
MAX_DATASETS = 8  # loaded datasets kept in memory (the sample is always kept)
FOLDER_FORMATS = ("auto", "movielens", "recbole", "ml-100k", "ml-1m", "ml-latest", "csv", "sequences", "parquet")
UPLOAD_TYPES = ["csv", "tsv", "txt", "parquet", "pq"]
PAUSE_KEY = "live_paused"
DATASET_KEY = "dataset_fingerprint"
DATA_ERROR_KEY = "data_error"


# ----------------------------------------------------------------------------- registry
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


def registry() -> Registry:
    """The registry of ``$RECDISTILL_HOME`` (default ``~/.recdistill``)."""
    return _registry(str(default_home()))


def store() -> RunStore:
    return registry().store


def runner() -> JobRunner:
    return registry().runner


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
def _datasets() -> _Datasets:
    return _Datasets()


@st.cache_resource(show_spinner="Loading the bundled sample…")
def sample() -> Dataset:
    """The bundled sample, loaded once per process."""
    return load_sample()


def active_dataset() -> Dataset:
    """The session's dataset: the last one it loaded, else the sample."""
    fp = st.session_state.get(DATASET_KEY)
    ds = _datasets().get(fp) if fp else None
    return ds if ds is not None else sample()


def activate(ds: Dataset) -> None:
    _datasets().put(ds)
    st.session_state[DATASET_KEY] = ds.fingerprint
    st.session_state.pop(DATA_ERROR_KEY, None)


def take_data_error() -> str | None:
    """The message of the last failed load (shown once)."""
    return st.session_state.pop(DATA_ERROR_KEY, None)


def _try_load(load: Callable[[], Dataset]) -> None:
    try:
        ds = load()
    except RecDistillError as e:  # the loader's message, as it is; the active dataset stays
        st.session_state[DATA_ERROR_KEY] = str(e)
        return
    activate(ds)


def use_sample() -> None:
    """Callback: make the bundled sample the active dataset."""
    activate(sample())


def on_upload(key: str) -> None:
    """Callback of the file uploader ``key``: load the file; a bad file leaves the dataset as it was."""
    f = st.session_state.get(key)
    if f is not None:
        _try_load(lambda: load_upload(f.name, f.getvalue()))


def on_load_folder(path_key: str, format_key: str) -> None:
    """Callback: load the folder (or file) typed in ``path_key`` in the format chosen in ``format_key``."""
    path = str(st.session_state.get(path_key) or "").strip()
    if not path:
        st.session_state[DATA_ERROR_KEY] = "Type the path of a dataset folder (or file) first."
        return
    # resolve_path: absolute, links followed, and only an existing readable folder or file gets to a loader
    _try_load(lambda: load_dataset(resolve_path(path), st.session_state.get(format_key, "auto")))


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


# ----------------------------------------------------------------------------- jobs
def start_job(kind: str, ds: Dataset, build: Callable[[], Callable[..., Any]], description: str,
              teacher: str | None = None) -> None:
    """Build a job function (its settings are validated here: a bad one is shown with st.error and
    nothing starts), submit it, remember its id in the session and rerun so every part shows it."""
    try:
        fn = build()
    except RecDistillError as e:
        st.error(f"Not started: {e}")
        return
    job_id = runner().submit(kind, fn, description)
    registry().jobs.add(JobInfo(job_id, kind, ds.fingerprint, teacher))
    st.session_state[f"job:{kind}:{ds.fingerprint}"] = job_id
    st.rerun()


def current_job(kind: str, ds: Dataset) -> str | None:
    """The job of ``kind`` on ``ds`` this session started, else the newest one in the process
    (so a reload, or another tab, finds a running job)."""
    own = st.session_state.get(f"job:{kind}:{ds.fingerprint}")
    if own is not None and registry().jobs.get(own) is not None:
        return own
    return registry().jobs.latest(kind, ds.fingerprint)


def own_job_running(kind: str, ds: Dataset) -> bool:
    """Whether the job of ``kind`` on ``ds`` that *this session* started is still running. A page offers
    Train unless it is: another session's job shown through ``current_job`` does not block this one,
    so two sessions can train at once."""
    own = st.session_state.get(f"job:{kind}:{ds.fingerprint}")
    return own is not None and registry().jobs.get(own) is not None and runner().snapshot(own).active


def snapshot(job_id: str | None) -> ProgressSnapshot | None:
    return runner().snapshot(job_id) if job_id is not None else None


def job_info(job_id: str | None) -> JobInfo | None:
    return registry().jobs.get(job_id) if job_id is not None else None


def cancel(job_id: str | None) -> None:
    if job_id is not None:
        runner().cancel(job_id)


def job_runs(snap: ProgressSnapshot | None, teacher: str | None = None) -> dict[str, RunRecord]:
    """The finished runs of a job, by display name (Teacher, Distilled student, Plain student)."""
    ids = dict(snap.runs) if snap is not None else {}
    if teacher is not None:
        ids = {"teacher": teacher, **ids}
    recs = {role: store().find(rid) for role, rid in ids.items()}  # None: deleted on the Run history page
    return {ROLE_LABELS.get(role, role): rec for role, rec in recs.items()
            if rec is not None and rec.status == "done"}


def job_teacher(job_id: str | None) -> RunRecord | None:
    """The teacher run a distillation job reads (None for other jobs)."""
    info = job_info(job_id)
    return store().find(info.teacher) if info is not None and info.teacher is not None else None  # None if deleted


def models_of(ds: Dataset, teacher: RunRecord, pair: Distillation | None) -> dict[str, Recommender]:
    """The teacher's model, and the distilled and plain students' when there is a pair, by display name."""
    out = {ROLE_LABELS["teacher"]: model(teacher.id, ds)}
    if pair is not None:
        out[ROLE_LABELS["student_kd"]] = model(pair.student_kd.id, ds)
        out[ROLE_LABELS["student_plain"]] = model(pair.student_plain.id, ds)
    return out


def paused() -> bool:
    return bool(st.session_state.get(PAUSE_KEY, False))


def live_interval(active: bool) -> float | None:
    """``run_every`` of a live section: poll while its job runs, unless the user paused live updates."""
    return LIVE_SECONDS if active and not paused() else None


def new_rng() -> np.random.Generator:
    return np.random.default_rng()


# ----------------------------------------------------------------------------- the selected student
SELECTED_STUDENT_KEY = "selected_student"


def select_student(run_id: str | None) -> None:
    """Remember a distilled student chosen on one page (e.g. a sweep cell) for the Distill and
    Recommendations pages to show."""
    st.session_state[SELECTED_STUDENT_KEY] = run_id


def selected_student() -> str | None:
    return st.session_state.get(SELECTED_STUDENT_KEY)


def follow_selected_student(key: str, options: Collection[str], teacher: bool = False) -> None:
    """Point the picker ``key`` at the selected student (or, with ``teacher``, at its teacher) once per
    new selection, so the user can still pick another run afterwards; ignored when not in ``options``."""
    sel, seen = selected_student(), f"{key}:followed"
    if sel is None or st.session_state.get(seen) == sel:
        return
    st.session_state[seen] = sel
    try:
        rec = store().get(sel)
    except StoreError:  # deleted since it was selected
        return
    value = rec.parent if teacher else rec.id
    if value in options:
        st.session_state[key] = value


def remeasure_latency(ds: Dataset, run_ids: Collection[str]) -> None:
    """Re-measure each stored model's scoring latency now (median of 7) and keep it in the run's info."""
    from distill_core import compare
    for rid in run_ids:
        m = compare.measure_latency(model(rid, ds))
        store().update_info(rid, {"score_ms_per_1k_users": m["ms_per_1k_users"], "device": m["device"],
                                  "latency_repeats": m["repeats"]})

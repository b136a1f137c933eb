"""The session's background jobs: starting one, finding it again, its progress, its runs, stopping it.

A job runs in the process-wide runner (``ui.registry``), so it outlives the page and the session that started
it; the session keeps only its id (``job:<kind>:<dataset>`` in ``st.session_state``), and a reload or another tab
finds the newest job of a kind through the registry's job index.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from distill_core import Dataset, RecDistillError
from distill_core.runner import ProgressSnapshot
from distill_core.runs import ROLE_LABELS
from distill_core.store import RunRecord
from distill_core.workflows import JobFn

from ui import registry
from ui.registry import JobInfo


def _key(kind: str, ds: Dataset) -> str:
    return f"job:{kind}:{ds.fingerprint}"


def start_job(kind: str, ds: Dataset, build: Callable[[], JobFn[Any]], description: str,
              teacher: str | None = None) -> None:
    """Build a job function (its settings are validated here: a bad one is shown with st.error and
    nothing starts), submit it, remember its id in the session and rerun so every part shows it."""
    try:
        fn = build()
    except RecDistillError as e:
        st.error(f"Not started: {e}")
        return
    job_id = registry.runner().submit(kind, fn, description)
    registry.shared().jobs.add(JobInfo(job_id, kind, ds.fingerprint, teacher))
    st.session_state[_key(kind, ds)] = job_id
    st.rerun()


def current_job(kind: str, ds: Dataset) -> str | None:
    """The job of ``kind`` on ``ds`` this session started, else the newest one in the process
    (so a reload, or another tab, finds a running job)."""
    own = st.session_state.get(_key(kind, ds))
    if own is not None and registry.shared().jobs.get(own) is not None:
        return own
    return registry.shared().jobs.latest(kind, ds.fingerprint)


def own_job_running(kind: str, ds: Dataset) -> bool:
    """Whether the job of ``kind`` on ``ds`` that *this session* started is still running. A page offers
    Train unless it is: another session's job shown through ``current_job`` does not block this one,
    so two sessions can train at once."""
    own = st.session_state.get(_key(kind, ds))
    return own is not None and registry.shared().jobs.get(own) is not None and registry.runner().snapshot(own).active


def snapshot(job_id: str | None) -> ProgressSnapshot | None:
    return registry.runner().snapshot(job_id) if job_id is not None else None


def job_info(job_id: str | None) -> JobInfo | None:
    return registry.shared().jobs.get(job_id) if job_id is not None else None


def cancel(job_id: str | None) -> None:
    if job_id is not None:
        registry.runner().cancel(job_id)


def job_runs(snap: ProgressSnapshot | None, teacher: str | None = None) -> dict[str, RunRecord]:
    """The finished runs of a job, by display name (Teacher, Distilled student, Plain student)."""
    ids = dict(snap.runs) if snap is not None else {}
    if teacher is not None:
        ids = {"teacher": teacher, **ids}
    recs = {role: registry.store().find(rid) for role, rid in ids.items()}  # None: deleted on the Run history page
    return {ROLE_LABELS.get(role, role): rec for role, rec in recs.items()
            if rec is not None and rec.status == "done"}


def job_teacher(job_id: str | None) -> RunRecord | None:
    """The teacher run a distillation job reads (None for other jobs)."""
    info = job_info(job_id)
    return registry.store().find(info.teacher) if info is not None and info.teacher is not None else None  # None if deleted

"""Background jobs: training in threads, observed through lock-guarded progress snapshots.

A job is a function ``fn(ctx) -> result`` run in its own (non-daemon) thread. It reports through
``ctx.callback`` (the trainer's events) and ``ctx.set_phase``, and stops when ``ctx.control``
says so; the page that started it only keeps the job id and polls ``snapshot(job_id)``.
Every runner is stopped and joined at interpreter exit, so no thread is killed inside a torch op.

A job ends "cancelled" only if Stop took effect: if the job's own thread read the stop flag as set (the
trainer at a batch boundary, or the job between runs) and so stopped short. Stop pressed after the
last such check (during the last batch, or while the result is being stored) comes too late: the job
ends "done" with a note saying so, just as the run store has every run it trained as "done".
"""
from __future__ import annotations

import atexit
import itertools
import logging
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from distill_core.trainer import TrainerControl, warm_up

log = logging.getLogger(__name__)

MAX_STEP_POINTS = 2000  # step losses kept per job (older points are thinned out)


@dataclass(frozen=True)
class ProgressSnapshot:
    """An immutable copy of a job's progress, safe to read from any thread."""

    job_id: str
    kind: str
    description: str
    status: str  # queued | running | done | failed | cancelled
    phase: str = ""
    phase_index: int = 0
    n_phases: int = 1
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    fraction: float = 0.0  # of the whole job, 0..1
    eta_s: float | None = None
    started: float = 0.0
    ended: float | None = None
    latest: dict[str, float] = field(default_factory=dict)  # ce, kl, total of the last step
    steps: tuple[dict[str, Any], ...] = ()  # {"phase", "t", "ce", "kl", "total"}, thinned
    epochs_log: tuple[dict[str, Any], ...] = ()  # one row per epoch: phase, epoch, losses, val metrics
    runs: dict[str, str] = field(default_factory=dict)  # role -> run id in the store
    error: str | None = None
    result: Any = None
    note: str | None = None  # e.g. a Stop that came after the job's last check of it
    steps_per_s: float | None = None  # recent training speed (a moving average over about 20 steps)
    epoch_eta_s: float | None = None  # time left in the current epoch at that speed
    preparing: str | None = None  # what the job does before its model's first step (e.g. soft labels)

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


class _JobControl(TrainerControl):
    """A job's ``TrainerControl`` that also remembers whether the job saw Stop (``seen``).

    Everyone who reads ``should_stop`` as True stops short (the trainer at the next batch, a job before
    its next run), so a True read is Stop taking effect. Only the job's own thread reads it.
    """

    def __init__(self) -> None:  # not the dataclass __init__: the flag lives behind the property
        self._stop = False
        self.seen = False

    @property  # type: ignore[override]
    def should_stop(self) -> bool:
        if self._stop:
            self.seen = True
        return self._stop

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        self._stop = bool(value)

    @property
    def requested(self) -> bool:
        """Whether Stop was pressed, read without counting as the job seeing it."""
        return self._stop

    def __repr__(self) -> str:  # the dataclass repr would read should_stop
        return f"_JobControl(requested={self._stop}, seen={self.seen})"


class JobContext:
    """What a job function gets: its control flag and its progress reporter."""

    def __init__(self, job: "_Job") -> None:
        self._job = job
        self.control = job.control
        self.callback = _ProgressCallback(job)

    def set_phase(self, phase: str, index: int, n_phases: int) -> None:
        self._job.update(phase=phase, phase_index=index, n_phases=n_phases, epoch=0, step=0)

    def add_run(self, role: str, run_id: str) -> None:
        with self._job.lock:
            self._job.snap = replace(self._job.snap, runs={**self._job.snap.runs, role: run_id})

    @property
    def cancelled(self) -> bool:
        """Whether to stop now; a job that reads True here stops short, and ends "cancelled"."""
        return self.control.should_stop


class _Job:
    def __init__(self, job_id: str, kind: str, description: str) -> None:
        self.lock = threading.Lock()
        self.control = _JobControl()
        self.snap = ProgressSnapshot(job_id=job_id, kind=kind, description=description, status="queued",
                                     started=time.time())
        self.steps: list[dict[str, Any]] = []
        self.stride = 1
        self.thread: threading.Thread | None = None

    def update(self, **kw: Any) -> None:
        with self.lock:
            self.snap = replace(self.snap, **kw)


class _ProgressCallback:
    """Trainer callback writing into a job's progress under its lock."""

    def __init__(self, job: _Job) -> None:
        self.job = job
        self._count = 0
        self._last: float | None = None
        self._rate: float | None = None

    def _speed(self, step: int) -> float | None:
        """Steps per second, a moving average (the first step of an epoch follows validation: not counted)."""
        now = time.perf_counter()
        if self._last is not None and step > 1:
            r = 1.0 / max(now - self._last, 1e-9)
            self._rate = r if self._rate is None else 0.9 * self._rate + 0.1 * r
        self._last = now
        return self._rate

    def on_event(self, name: str, payload: dict[str, Any]) -> None:
        job = self.job
        if name == "step_end":
            self._count += 1
            rate = self._speed(payload["step"])
            with job.lock:
                s = job.snap
                frac_phase = ((payload["epoch"] - 1) + payload["step"] / payload["steps_per_epoch"]) / max(s.epochs, 1)
                frac = (s.phase_index + min(frac_phase, 1.0)) / max(s.n_phases, 1)
                elapsed = time.time() - s.started
                eta = elapsed * (1 - frac) / frac if frac > 0 else None
                latest = {"ce": payload["ce"], "kl": payload["kl"], "total": payload["total"]}
                if self._count % job.stride == 0:
                    job.steps.append({"phase": s.phase, "t": self._count, **latest})
                    if len(job.steps) > MAX_STEP_POINTS:
                        job.steps = job.steps[::2]
                        job.stride *= 2
                left = (payload["steps_per_epoch"] - payload["step"]) / rate if rate else None
                job.snap = replace(s, epoch=payload["epoch"], step=payload["step"],
                                   steps_per_epoch=payload["steps_per_epoch"], fraction=frac, eta_s=eta,
                                   latest=latest, steps=tuple(job.steps), steps_per_s=rate, epoch_eta_s=left)
        elif name == "preparing":
            job.update(preparing=payload["what"])
        elif name == "train_start":
            self._last = self._rate = None
            job.update(epochs=payload["epochs"], steps_per_epoch=payload["steps_per_epoch"], preparing=None)
        elif name == "epoch_end":
            with job.lock:
                row = {"phase": job.snap.phase, **payload["metrics"]}
                job.snap = replace(job.snap, epochs_log=job.snap.epochs_log + (row,))


class JobRunner:
    """Starts, observes, cancels and joins background jobs (one per thread)."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        _RUNNERS.add(self)
        warm_up()  # the first job's first loss would otherwise wait for torch's lazy imports

    def submit(self, kind: str, fn: Callable[[JobContext], Any], description: str = "") -> str:
        """Start ``fn`` in a background thread and return its job id at once."""
        job_id = f"{kind}-{next(self._ids)}-{int(time.time() * 1000) % 100000}"
        job = _Job(job_id, kind, description or kind)
        with self._lock:
            self._jobs[job_id] = job
        job.thread = threading.Thread(target=self._run, args=(job, fn), name=f"recdistill-{job_id}")
        job.thread.start()
        return job_id

    @staticmethod
    def _run(job: _Job, fn: Callable[[JobContext], Any]) -> None:
        job.update(status="running", started=time.time())
        try:
            result = fn(JobContext(job))
            # decided by what the job saw, not by the flag now: a Stop after its last check changed nothing
            status = "cancelled" if job.control.seen else "done"
            note = ("Stop came after the last training step had run: the job finished and its runs are "
                    "stored" if job.control.requested and status == "done" else None)
            job.update(status=status, result=result, ended=time.time(), note=note,
                       fraction=1.0 if status == "done" else job.snap.fraction, eta_s=0.0)
        except Exception as e:  # the job's error is its result: kept and shown, never raised here
            log.debug("job %s failed:\n%s", job.snap.job_id, traceback.format_exc())
            job.update(status="failed", error=f"{type(e).__name__}: {e}" if not str(e).startswith(type(e).__name__)
                       else str(e), ended=time.time())

    def snapshot(self, job_id: str) -> ProgressSnapshot:
        job = self._get(job_id)
        with job.lock:
            return job.snap

    def snapshots(self) -> list[ProgressSnapshot]:
        with self._lock:
            jobs = list(self._jobs.values())
        return [j.snap for j in jobs]

    def cancel(self, job_id: str) -> None:
        self._get(job_id).control.should_stop = True

    def wait(self, job_id: str, timeout: float | None = None) -> ProgressSnapshot:
        job = self._get(job_id)
        if job.thread is not None:
            job.thread.join(timeout)
        return self.snapshot(job_id)

    def _get(self, job_id: str) -> _Job:
        with self._lock:
            if job_id not in self._jobs:
                raise KeyError(f"no job with id {job_id!r}")
            return self._jobs[job_id]

    def shutdown(self, timeout: float = 30.0) -> None:
        """Ask every job to stop and join its thread."""
        with self._lock:
            jobs = list(self._jobs.values())
        for j in jobs:
            j.control.should_stop = True
        for j in jobs:
            if j.thread is not None:
                j.thread.join(timeout)

    def alive_threads(self) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.thread is not None and j.thread.is_alive())


_RUNNERS: "weakref.WeakSet[JobRunner]" = weakref.WeakSet()


def _shutdown_all() -> None:
    for r in list(_RUNNERS):
        r.shutdown()


# Non-daemon threads are joined *before* atexit handlers run, so register where
# concurrent.futures does: called at interpreter shutdown before the threads are joined.
_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_shutdown_all)
else:  # pragma: no cover - other Pythons
    atexit.register(_shutdown_all)

"""Sweeps on Ray: the cells of ``sweep.plan`` trained as Ray tasks, one task per cell, on a local Ray or a cluster.

Why tasks and not Ray Tune: a sweep's grid is fixed and known (no search algorithm, no scheduler stopping trials
early), each cell already stops early on its own validation NDCG@10, and resumption lives in the run store, not in
Tune's experiment folder. ``tune.Tuner`` would add a second record of the same cells (its results folder and
checkpoints) beside the store and its own trial names; a task per cell keeps one record. The cluster does what
Tune's trial runner would: it places each task on a free CPU.

The driver (this module's job, in the runner's thread as a local sweep is) owns the store: it creates each cell's
run ("running") when it submits the task, and writes what the task returns (history, test metrics, info,
weights) when it ends. Workers never open the store, so SQLite never sees two machines, and the Sweep page's
heatmap, which reads the store, fills in cell by cell as with a local sweep. Shared across cells, as locally:
the dataset and the stored teacher's weights are put in Ray's object store once; each worker process builds the
split and the teacher once and keeps them for the next cell; the plain cells are cells like any other, each
trained once and reused from the store. A cell trains with the same ``train_model`` call, config and seed as in
``sweep.sweep_job``, so its metrics are the same (tests/test_ray_sweep.py).

Ray is the optional extra ``dist`` (``pip install -r requirements-dist.txt``); this module imports it only when a
sweep is sent to Ray. ``address``: ``local`` starts a private Ray on this machine (``ray.init(num_cpus=2)``,
no dashboard), ``auto`` joins the cluster this machine belongs to (``ray start``), ``HOST:PORT`` (or
``ray://HOST:10001``) a given one. Ray's own processes listen on the machine's interfaces, token-authenticated.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import socket
import threading
from dataclasses import asdict, replace
from typing import Any

from distill_core.config import ModelSpec, SplitOptions
from distill_core.data.dataset import Dataset, Split, split_dataset
from distill_core.distill import train_model
from distill_core.errors import ConfigError
from distill_core.models import Recommender, build_model
from distill_core.runner import JobContext
from distill_core.store import RunStore
from distill_core.sweep import Cell, SweepSpec, cell_runs, plan, teacher_split
from distill_core.trainer import TrainingError
from distill_core.workflows.jobs import JobFn
from distill_core.workflows.record import run_info

log = logging.getLogger(__name__)

INSTALL = "pip install -r requirements-dist.txt (the optional extra 'dist': ray[tune])"
LOCAL = "local"
LOCAL_CPUS = 2  # a private Ray on this machine: two workers, the CI machine's cores
_lock = threading.Lock()
_connected: str | None = None  # the address this process connected to (None: not by us)


def available() -> bool:
    """Whether Ray is installed (the ``dist`` extra)."""
    return importlib.util.find_spec("ray") is not None


def require(what: str = "--backend ray") -> Any:
    """The ``ray`` module, or a ConfigError saying what to install."""
    if not available():
        raise ConfigError(f"{what} needs Ray, which is not installed: {INSTALL}")
    import ray
    return ray


def check_address(address: str, name: str = "--address") -> str:
    """``local``, ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``; else a ConfigError naming ``name``."""
    address = (address or "").strip()
    if address in (LOCAL, "auto"):
        return address
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{name}: {address!r} is not a Ray address (local, auto, HOST:PORT or ray://HOST:PORT)")
    return address


def connect(address: str = LOCAL, num_cpus: int = LOCAL_CPUS) -> bool:
    """Connect this process to Ray at ``address`` once; True when this call started or joined it (the
    caller may then ``ray.shutdown()``), False when Ray was already up (e.g. started by a test or a script)."""
    global _connected
    ray = require()
    address = check_address(address)
    with _lock:
        if ray.is_initialized():
            if _connected is not None and _connected != address:
                raise ConfigError(f"this process is connected to Ray at {_connected!r}; restart it to send "
                                  f"sweeps to {address!r}")
            return False
        try:
            if address == LOCAL:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING)
            else:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError) as e:  # no cluster there, or a malformed address
            raise ConfigError(f"cannot connect to Ray at {address!r}: {e}. Start a cluster with `ray start "
                              f"--head` (then use auto or its HOST:PORT), or use local") from e
        _connected = address
        return True


def disconnect() -> None:
    """``ray.shutdown()`` when ``connect`` started or joined Ray (a Ray started by someone else stays up)."""
    global _connected
    with _lock:
        if _connected is not None:
            import ray
            ray.shutdown()
            _connected = None


def check_max_concurrent(n: int | None) -> int | None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"--max-concurrent must be an integer >= 1 (got {n!r})")
    return n


# ----------------------------------------------------------------------------- on a worker
_worker_cache: dict[tuple, Any] = {}  # one split and teacher per worker process, reused by its next cells


def _cached(key: tuple, make: Any) -> Any:
    if key not in _worker_cache:
        if len(_worker_cache) > 4:  # another sweep's: drop them
            _worker_cache.clear()
        _worker_cache[key] = make()
    return _worker_cache[key]


def _train_cell(ds: Dataset, split_opts: dict[str, Any], cell: Cell, student: ModelSpec,
                teacher: tuple[str, dict[str, Any], dict[str, Any]] | None) -> dict[str, Any]:
    """One cell on a Ray worker: what ``train_and_record`` would store (history, metrics, info, weights)."""
    split: Split = _cached(("split", ds.fingerprint, tuple(sorted(split_opts.items()))),
                           lambda: split_dataset(ds, SplitOptions(**split_opts)))
    model: Recommender | None = None
    if cell.distill is not None and teacher is not None:
        run, spec, state = teacher

        def build() -> Recommender:
            m = build_model(ModelSpec(**spec), split)
            m.load_state_dict(state)
            return m.eval()
        model = _cached(("teacher", run), build)
    train = cell.train
    if train.device == "auto":  # a task that was given no GPU trains on CPU even where the node has one
        import ray
        train = replace(train, device="cuda" if ray.get_gpu_ids() else "cpu")
    tm = train_model(split, student, train, role=cell.role, teacher=model, distill=cell.distill)
    where = {"backend": "ray", "worker": f"{socket.gethostname()}:{os.getpid()}"}  # where the cell trained
    return {"history": tm.fit.history, "metrics": tm.test,
            "info": run_info(tm) | where,
            "state_dict": {k: v.detach().cpu() for k, v in tm.model.state_dict().items()}}


# ----------------------------------------------------------------------------- the driver
def ray_sweep_job(ds: Dataset, teacher_run: str, spec: SweepSpec, store: RunStore, address: str = LOCAL,
                  max_concurrent: int | None = None) -> JobFn[dict[str, Any]]:
    """``sweep.sweep_job`` with each cell a Ray task at ``address`` (connected here, so a bad address or a
    missing extra is refused before the job starts). At most ``max_concurrent`` cells train at once (default:
    the cluster's CPUs). The result is ``sweep_job``'s plus ``backend``, ``address`` and ``max_concurrent``."""
    check_max_concurrent(max_concurrent)
    split_opts = teacher_split(store, teacher_run, ds)
    ray = require()
    connect(address)
    if spec.train.device == "cuda" and ray.cluster_resources().get("GPU", 0) < 1:  # a task would wait forever
        raise ConfigError(f"device 'cuda' was asked for but the Ray cluster at {address!r} has no GPU "
                          f"(use auto or cpu)")

    def fn(ctx: JobContext) -> dict[str, Any]:
        steps = plan(store, ds, split_opts, spec, teacher_run)
        queue = [s for s, done in steps if done is None]
        out: dict[str, Any] = {"student_plain": steps[0][1].id if steps[0][1] else None, "trained": [],
                               "failed": {}, "reused": [done.id for _, done in steps if done is not None],
                               "backend": "ray", "address": address}
        limit = max_concurrent or max(1, int(ray.cluster_resources().get("CPU", 1)))
        out["max_concurrent"] = limit
        log.info("sweep on Ray (%s): %d cells stored, %d to train, %d at once", address, len(out["reused"]),
                 len(queue), limit)
        if not queue:
            return _finish(ctx, out)
        ds_ref = ray.put(ds)
        teacher_ref = (ray.put((teacher_run, store.get(teacher_run).config["model"], store.load_weights(teacher_run)))
                       if any(s.distill for s in queue) else None)
        task = ray.remote(_train_cell).options(num_cpus=1, num_gpus=1 if spec.train.device == "cuda" else 0)
        total, pending = len(queue), {}  # ObjectRef -> (cell, run id)
        try:
            while queue or pending:
                if ctx.cancelled:
                    break
                while queue and len(pending) < limit:
                    s = queue.pop(0)
                    stored, _ = cell_runs(store, ds, [s.config], s.role)[0]
                    if stored is not None:  # finished meanwhile by another sweep
                        out["reused"].append(stored.id)
                        _plain_twin(out, s, steps, stored.id)
                        continue
                    rid = store.create_run(s.role, ds.fingerprint, ds.name, s.config,
                                           parent=teacher_run if s.distill else None)
                    pending[task.remote(ds_ref, asdict(split_opts), s, spec.student,
                                        teacher_ref if s.distill else None)] = (s, rid)
                _phase(ctx, pending, total - len(queue) - len(pending), total)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    s, rid = pending.pop(ref)
                    if _record(ray, ref, s, rid, store, out):
                        ctx.add_run(s.label, rid)
                        _plain_twin(out, s, steps, rid)
        finally:  # a Stop, or an error in the driver: cells in flight are stopped and stored as cancelled
            for ref, (s, rid) in pending.items():
                ray.cancel(ref)
                store.finish_run(rid, "cancelled", error="the sweep was stopped while this cell trained on Ray")
        return _finish(ctx, out)
    return fn


def _record(ray: Any, ref: Any, cell: Cell, rid: str, store: RunStore, out: dict[str, Any]) -> bool:
    """Store what a finished task returned; a TrainingError (e.g. a NaN loss) is a failed cell, as locally;
    any other error fails the run and the sweep. True when the cell is done."""
    try:
        r = ray.get(ref)
    except Exception as e:
        cause = getattr(e, "cause", None) or e  # a RayTaskError carries the task's own exception
        store.finish_run(rid, "failed", error=f"{type(cause).__name__}: {cause}")
        if isinstance(cause, TrainingError):
            log.warning("sweep cell %s failed: %s", cell.label, cause)
            out["failed"][cell.label] = str(cause)
            return False
        raise
    store.finish_run(rid, "done", history=r["history"], metrics=r["metrics"], info=r["info"],
                     state_dict=r["state_dict"])
    out["trained"].append(rid)
    return True


def _plain_twin(out: dict[str, Any], cell: Cell, steps: list[tuple[Cell, Any]], rid: str) -> None:
    if cell is steps[0][0]:  # the plain cell with the sweep's own settings: every distilled cell's twin
        out["student_plain"] = rid


def _phase(ctx: JobContext, pending: dict[Any, tuple[Cell, str]], done: int, total: int) -> None:
    labels = ", ".join(s.label for s, _ in pending.values())
    ctx.set_phase(f"{labels} on Ray" if labels else "on Ray", done, total)


def _finish(ctx: JobContext, out: dict[str, Any]) -> dict[str, Any]:
    if out["student_plain"] is not None:
        ctx.add_run("student_plain", out["student_plain"])
    return out

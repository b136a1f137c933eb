"""The run store: one SQLite file with every run, and a folder of weight files beside it.

It makes every path inside the store home (``$RECDISTILL_HOME``, default ``~/.recdistill``): the database
and the weight files. Other paths are made where they belong: the text-embedding cache under the same home
(``text_embed``), the dataset files a loader reads (``data/``), a temporary folder per upload (the UI's upload code)
or per ONNX export (``export``), and the CLI's report file. Weight files are state dicts written to a temporary
name and renamed into place, and are read back with ``torch.load(..., weights_only=True)``.
A run still marked "running" by a process that no longer exists is marked "interrupted" when
the store is opened. A process is known by its pid *and* its start time (Linux: ``/proc/<pid>/stat``),
so a pid reused by another process after a crash (common in containers) does not keep a run "running".
A run whose result cannot be recorded (e.g. a full disk while its weights are written) ends "failed",
with no weight file left behind, so it can be deleted like any other.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distill_core.errors import StoreError

log = logging.getLogger(__name__)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,            -- teacher | student_kd | student_plain
    dataset TEXT NOT NULL,         -- dataset fingerprint
    dataset_name TEXT NOT NULL,
    parent TEXT,                   -- the teacher run of a distilled student
    config TEXT NOT NULL,          -- JSON
    status TEXT NOT NULL,          -- running | done | failed | cancelled | interrupted
    pid INTEGER,
    pid_start INTEGER,             -- the process's start time (clock ticks since boot); NULL: unknown
    started REAL NOT NULL,
    ended REAL,
    history TEXT NOT NULL DEFAULT '[]',
    metrics TEXT NOT NULL DEFAULT '{}',
    info TEXT NOT NULL DEFAULT '{}',   -- params, bytes, latency, ...
    weights TEXT,                  -- file name inside the weights folder
    error TEXT
);
"""


def default_home() -> Path:
    """``$RECDISTILL_HOME`` or ``~/.recdistill``."""
    return Path(os.environ.get("RECDISTILL_HOME") or Path.home() / ".recdistill")


@dataclass(frozen=True)
class RunRecord:
    id: str
    kind: str
    dataset: str
    dataset_name: str
    parent: str | None
    config: dict[str, Any]
    status: str
    started: float
    ended: float | None
    history: list[dict[str, float]]
    metrics: dict[str, float]
    info: dict[str, Any]
    weights: str | None
    error: str | None


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a process, from ``/proc/<pid>/stat`` fields 3
    and 22 (see proc(5)); None where there is no such file (not Linux, or no such process)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 1:].split()  # the name (field 2) may hold spaces and parentheses
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot), or None where it cannot be read."""
    stat = _proc_stat(pid)
    return stat[1] if stat is not None else None


def _run_process_alive(pid: int | None, start: int | None) -> bool:
    """Whether the process that started a run still runs: its pid is alive and, where both are known,
    was started at the same moment (else the pid was reused). Rows stored without a start time, and
    systems without /proc, are judged by the pid alone, as before."""
    if not _pid_alive(pid):
        return False
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, now = stat
    if state in ("Z", "X"):  # a zombie has ended; only its exit status waits to be collected
        return False
    return start is None or now == start


class RunStore:
    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home) if home is not None else default_home()
        self.weights_dir = self.home / "weights"
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.home / "runs.sqlite"
        with self._tx() as db:
            db.executescript(_SCHEMA)
            if "pid_start" not in {r["name"] for r in db.execute("PRAGMA table_info(runs)")}:  # a store from before
                db.execute("ALTER TABLE runs ADD COLUMN pid_start INTEGER")
        self.interrupted = self._mark_interrupted()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One connection per transaction: safe from any thread, committed or rolled back whole."""
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        except sqlite3.DatabaseError as e:
            raise StoreError(f"run store {self.path}: {e}") from e
        finally:
            db.close()

    def _mark_interrupted(self) -> list[str]:
        with self._tx() as db:
            rows = db.execute("SELECT id, pid, pid_start FROM runs WHERE status = 'running'").fetchall()
            dead = [r["id"] for r in rows if not _run_process_alive(r["pid"], r["pid_start"])]
            for rid in dead:
                db.execute("UPDATE runs SET status = 'interrupted', ended = ?, error = ? "
                           "WHERE id = ? AND status = 'running'",
                           (time.time(), "the process running this job ended before it finished", rid))
        if dead:
            log.warning("marked %d run(s) interrupted: %s", len(dead), ", ".join(dead))
        return dead

    def create_run(self, kind: str, dataset: str, dataset_name: str, config: dict[str, Any],
                   parent: str | None = None) -> str:
        rid = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        with self._tx() as db:
            db.execute("INSERT INTO runs (id, kind, dataset, dataset_name, parent, config, status, pid, pid_start, "
                       "started) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                       (rid, kind, dataset, dataset_name, parent, json.dumps(config), os.getpid(),
                        process_start(os.getpid()), time.time()))
        return rid

    def update_history(self, rid: str, history: list[dict[str, float]]) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET history = ? WHERE id = ?", (json.dumps(history), rid))

    def finish_run(self, rid: str, status: str, *, history: list[dict[str, float]] | None = None,
                   metrics: dict[str, float] | None = None, info: dict[str, Any] | None = None,
                   state_dict: dict[str, torch.Tensor] | None = None, error: str | None = None) -> None:
        """Record the end of a run; weights (if given) are on disk before the row says so.

        If the weights cannot be written (a full disk, ...) the run is marked failed with the reason, no
        weight file is left, and StoreError is raised; likewise if the row cannot be updated after them.
        """
        try:
            weights = self._write_weights(rid, state_dict) if state_dict is not None else None
        except Exception as e:
            err = e if isinstance(e, StoreError) else StoreError(f"cannot write the weights of run {rid}: "
                                                                 f"{type(e).__name__}: {e}")
            try:
                self.finish_run(rid, "failed", history=history, error=str(err))
            except StoreError:  # the row cannot be written either: the error below says why
                log.exception("run %s could not be marked failed", rid)
            raise err from e
        sets = {"status": status, "ended": time.time(), "error": error}
        if history is not None:
            sets["history"] = json.dumps(history)
        if metrics is not None:
            sets["metrics"] = json.dumps(metrics)
        if info is not None:
            sets["info"] = json.dumps(info)
        if weights is not None:
            sets["weights"] = weights
        cols = ", ".join(f"{k} = ?" for k in sets)
        try:
            with self._tx() as db:
                db.execute(f"UPDATE runs SET {cols} WHERE id = ?", (*sets.values(), rid))
        except StoreError:  # a weight file no row points to would never be deleted
            if weights is not None:
                self._weights_path(weights).unlink(missing_ok=True)
            raise

    def update_info(self, rid: str, info: dict[str, Any]) -> None:
        """Merge ``info`` into the run's info (e.g. a latency re-measured on this machine)."""
        with self._tx() as db:
            row = db.execute("SELECT info FROM runs WHERE id = ?", (rid,)).fetchone()
            if row is None:
                raise StoreError(f"no run with id {rid!r} in {self.path}")
            db.execute("UPDATE runs SET info = ? WHERE id = ?", (json.dumps(json.loads(row["info"]) | info), rid))

    def _weights_path(self, name: str) -> Path:
        path = (self.weights_dir / name).resolve()
        if path.parent != self.weights_dir.resolve():
            raise StoreError(f"weight file name {name!r} would leave the store's folder")
        return path

    def _write_weights(self, rid: str, state_dict: dict[str, torch.Tensor]) -> str:
        safe = "".join(c for c in rid if c in _NAME_CHARS)
        if safe != rid or len(rid) > 100:  # short, ASCII, and still unique whatever the run id holds
            safe = f"{safe[:64]}-{hashlib.sha1(rid.encode('utf-8', 'replace')).hexdigest()[:12]}"
        name = f"{safe}.pt"
        final = self._weights_path(name)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)  # atomic: a reader sees the old file or the whole new one
        except Exception as e:  # disk full (OSError, or torch's RuntimeError), ...: no half-written file is left
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write weight file {final}: {e}") from e
        return name

    def weights_path(self, rid: str) -> Path | None:
        """Where the run's weight file is (None for a run without weights); for downloads."""
        rec = self.get(rid)
        return self._weights_path(rec.weights) if rec.weights else None

    def find(self, rid: str) -> RunRecord | None:
        """The run, or None when the store has no such run (e.g. it was deleted)."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (rid,)).fetchone()
        return _record(row) if row is not None else None

    def load_weights(self, rid: str) -> dict[str, torch.Tensor]:
        """The run's state dict, loaded with ``weights_only=True``; anything else is refused."""
        rec = self.get(rid)
        if not rec.weights:
            raise StoreError(f"run {rid} has no weights (status {rec.status})")
        return load_state_dict_file(self._weights_path(rec.weights))

    def get(self, rid: str) -> RunRecord:
        with self._tx() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (rid,)).fetchone()
        if row is None:
            raise StoreError(f"no run with id {rid!r} in {self.path}")
        return _record(row)

    def runs(self, dataset: str | None = None, kind: str | None = None, status: str | None = None) -> list[RunRecord]:
        """Runs, newest first, optionally filtered."""
        where, args = [], []
        for col, val in (("dataset", dataset), ("kind", kind), ("status", status)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY started DESC"
        with self._tx() as db:
            return [_record(r) for r in db.execute(sql, args).fetchall()]

    def delete(self, rid: str) -> None:
        """Delete a run and its weight file."""
        rec = self.get(rid)
        with self._tx() as db:
            db.execute("DELETE FROM runs WHERE id = ?", (rid,))
        if rec.weights:
            self._weights_path(rec.weights).unlink(missing_ok=True)


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict with ``weights_only=True``; a corrupt file or another object is refused."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise StoreError(f"weight file {path} cannot be loaded safely: {type(e).__name__}: {e}") from e
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise StoreError(f"weight file {path} is not a state dict (name -> tensor)")
    return obj


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(id=row["id"], kind=row["kind"], dataset=row["dataset"], dataset_name=row["dataset_name"],
                     parent=row["parent"], config=json.loads(row["config"]), status=row["status"],
                     started=row["started"], ended=row["ended"], history=json.loads(row["history"]),
                     metrics=json.loads(row["metrics"]), info=json.loads(row["info"]), weights=row["weights"],
                     error=row["error"])

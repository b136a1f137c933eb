"""What every benchmark shares: the machine's description, thread settings, interleaved timing with
medians, peak-memory probes, the sample (and its scaled copies, cached under ``bench/.cache``),
table printing and the JSON written to ``bench/results/<name>.json``.

The machines these run on are shared and noisy, so every comparison runs its variants interleaved
in one process (A B, B A, A B, ...) and reports medians and ratios, never a lone absolute figure.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from distill_core.data import build_dataset, load_raw, load_sample, split_dataset
from distill_core.data.dataset import Dataset, Split
from distill_core.data.sample import SampleSpec, write_sample

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a short run (fewer repeats and sizes) for development")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: steadier on a shared machine; 0 = torch's default)")
    p.add_argument("--repeats", type=int, default=None, help="override the number of interleaved repeats")
    p.add_argument("--no-write", action="store_true", help="print the table only, write no JSON")
    return p


def setup_threads(n: int) -> int:
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The machine a figure was measured on (the JSON names it beside every figure)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    mem = ""
    try:
        mem = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    return {"cpu": _cpu_model(), "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "memory": mem.split(":", 1)[-1].strip(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "device": "cpu", "cuda_available": torch.cuda.is_available(), "python": platform.python_version(),
            "platform": platform.platform(), "load_average_at_start": list(os.getloadavg()),
            "git_commit": commit, "time": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


# ------------------------------------------------------------------------------------------- timing
def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if len(xs) else float("nan")


def interleave(variants: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[Any]]:
    """Run each variant ``repeats`` times, rotating the order every round (A B, B A, ...), so a
    slow spell of the shared machine hits every variant alike. Returns each variant's results."""
    names = list(variants)
    out: dict[str, list[Any]] = {n: [] for n in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            out[n].append(variants[n]())
    return out


def timed(fn: Callable[[], Any], inner: int = 1) -> float:
    """Seconds per call of ``fn`` over ``inner`` calls."""
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


# ------------------------------------------------------------------------------------------- memory
def _vm(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class PeakRSS:
    """Peak resident memory while the block runs, and its rise over the RSS at the start.

    Linux resets the process's high-water mark (VmHWM) when "5" is written to clear_refs; where that
    is refused, a thread samples VmRSS every 2 ms instead (which can miss a short spike)."""

    def __enter__(self) -> "PeakRSS":
        self.start = _vm("VmRSS") or 0
        self._stop = threading.Event()
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.method = "VmHWM"
        except OSError:
            self.method = "sampled VmRSS"
            self._peak = self.start
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, _vm("VmRSS") or 0)

    def __exit__(self, *exc: object) -> None:
        if self.method == "VmHWM":
            self.peak = _vm("VmHWM") or 0
        else:
            self._stop.set()
            self._thread.join()
            self.peak = self._peak
        self.rise = max(self.peak - self.start, 0)


class LargestTensor(TorchDispatchMode):
    """Watches every tensor a torch op creates inside the block: the largest one (shape, bytes, op)
    and the peak of the bytes they hold alive at once (a storage counts until Python frees it).
    This is the proof that a chunked computation never materialises more than one chunk, and a
    memory figure that the heap's reuse of freed pages cannot hide (unlike RSS)."""

    def __init__(self) -> None:
        super().__init__()
        self.numel, self.shape, self.bytes, self.op = 0, (), 0, ""
        self.live = self.peak = 0
        self._held: set[int] = set()

    def _free(self, key: int, n: int) -> None:
        self._held.discard(key)
        self.live -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if not isinstance(t, torch.Tensor):
                continue
            if t.numel() > self.numel:
                self.numel, self.shape, self.bytes, self.op = (t.numel(), tuple(t.shape),
                                                               t.numel() * t.element_size(), str(func))
            st = t.untyped_storage()
            key, n = st.data_ptr(), st.nbytes()
            if n and key not in self._held:
                self._held.add(key)
                self.live += n
                self.peak = max(self.peak, self.live)
                weakref.finalize(st, self._free, key, n)
        return out


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


# --------------------------------------------------------------------------------------------- data
def sample_split() -> tuple[Dataset, Split]:
    ds = load_sample()
    return ds, split_dataset(ds)


def scaled_split(factor: int, scale_items: bool = True) -> tuple[Dataset, Split]:
    """The sample generator at ``factor`` x users and interactions (and items unless
    ``scale_items`` is False), generated once and cached under ``bench/.cache``."""
    if factor == 1:  # the bundled sample is SampleSpec()'s output
        return sample_split()
    spec = SampleSpec().scaled(factor) if scale_items else SampleSpec(n_users=SampleSpec().n_users * factor)
    folder = CACHE / f"sample_u{spec.n_users}_i{spec.n_items}_s{spec.seed}"
    if not (folder / "ratings.csv").exists():
        print(f"  generating {spec.n_users} users x {spec.n_items} items into {folder} (once) ...", flush=True)
        tmp = folder.with_name(folder.name + ".tmp")
        write_sample(tmp, spec)
        tmp.rename(folder)  # only a complete folder is ever seen as the cache
    ds = build_dataset(load_raw(folder, "ml-latest"), name=f"sample x{factor}")
    return ds, split_dataset(ds)


# ------------------------------------------------------------------------------------------- output
def fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def table(title: str, rows: list[dict[str, Any]], columns: Sequence[str] | None = None, echo: bool = True) -> str:
    """A markdown table of ``rows`` (also printed unless ``echo`` is False)."""
    cols = list(columns or (rows[0].keys() if rows else []))
    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    line = lambda xs: "| " + " | ".join(x.ljust(w) for x, w in zip(xs, widths)) + " |"  # noqa: E731
    text = "\n".join([f"\n### {title}\n", line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in cells])
    if echo:
        print(text, flush=True)
    return text


def bounds(lo: float | None, hi: float | None) -> str:
    """An interval as the tables print it: ``[lo, hi]`` to 3 digits, or n/a."""
    return f"[{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "n/a"


def judged(value: float, lo: float | None, hi: float | None, target: float) -> str:
    """Whether the test set resolves a target: the whole 95% interval on one side of it, or not."""
    if lo is None or hi is None:
        return "n/a"
    if lo >= target:
        return "met beyond the test set's noise"
    if hi < target:
        return "missed beyond the test set's noise"
    return f"not resolved: the interval holds {target:g}" + (" (the point estimate meets it)" if value >= target else "")


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and x != x:
        return None
    if hasattr(x, "__dataclass_fields__"):
        return _jsonable(asdict(x))
    if isinstance(x, Path):  # an argument such as methods.py --cells-from
        return str(x)
    return x


def write_json(name: str, args: argparse.Namespace, payload: dict[str, Any], started: float) -> Path | None:
    """``bench/results/<name>.json``: the machine, the arguments, the figures (written atomically)."""
    if args.no_write:
        return None
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {"benchmark": name, "machine": machine_info, "args": vars(args),
           "wall_seconds": round(time.perf_counter() - started, 1), **payload}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(doc), indent=2) + "\n")
    tmp.replace(path)
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path


machine_info: dict[str, Any] = {}


def start(args: argparse.Namespace) -> float:
    """Apply the thread setting and record the machine; returns the start time."""
    setup_threads(args.threads)
    machine_info.update(machine())
    m = machine_info
    print(f"{m['cpu']} · {m['usable_cores']} cores · torch {m['torch']} · {m['torch_threads']} thread(s) · "
          f"load {m['load_average_at_start'][0]:.2f}", flush=True)
    return time.perf_counter()


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


@contextmanager
def quiet_logs() -> Iterator[None]:
    import logging
    level = logging.getLogger("distill_core").level
    logging.getLogger("distill_core").setLevel(logging.WARNING)
    try:
        yield
    finally:
        logging.getLogger("distill_core").setLevel(level)

"""Background jobs under stress, on the bundled sample: Stop pressed at a random moment ends the thread
within about one batch; 20 jobs started and stopped leave no thread and bounded memory. The figures are
printed (``pytest -s``) and listed in docs/RELIABILITY.md.
"""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from distill_core import ModelSpec, RunConfig, RunStore, TrainConfig, load_sample
from distill_core.runner import JobRunner
from distill_core.workflows import teacher_job
from ui import registry


@pytest.fixture(autouse=True)
def _stop_jobs():
    yield
    registry.runner().shutdown()  # jobs an AppTest started in this test's private store


def recdistill_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("recdistill-") and t.is_alive()]


class StepClock:
    """Trainer callback recording when each batch ended."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, int]] = []  # (perf_counter, epoch)

    def on_event(self, name: str, payload: dict) -> None:
        if name == "step_end":
            self.steps.append((time.perf_counter(), payload["epoch"]))

    def intervals(self) -> tuple[list[float], list[float]]:
        """Seconds between consecutive batches within an epoch, and across an epoch end (validation)."""
        within, across = [], []
        for (t0, e0), (t1, e1) in zip(self.steps, self.steps[1:]):
            (within if e0 == e1 else across).append(t1 - t0)
        return within, across


def timed(fn, clock: StepClock):
    """The job ``fn`` with ``clock`` beside the job's own progress callback."""
    def job(ctx):
        real = ctx.callback

        class Tee:
            def on_event(self, name: str, payload: dict) -> None:
                real.on_event(name, payload)
                clock.on_event(name, payload)
        ctx.callback = Tee()
        return fn(ctx)
    return job


def test_stop_ends_the_job_thread_within_one_batch_on_the_sample():
    """Stop pressed at a random moment of training (the UI's defaults on the bundled sample): at most the
    batch in flight completes, and the thread ends within about one batch (or one validation pass)."""
    ds, d = load_sample(), RunConfig()
    runner, store = JobRunner(), RunStore()
    rng = np.random.default_rng(0)
    cases = [("teacher sasrec dim 64", d.teacher, d.teacher_train), ("student mf dim 6", d.student, d.student_train)]
    report = []
    for label, spec, train in cases:
        train = TrainConfig(epochs=1000, lr=train.lr, batch_size=train.batch_size, patience=0, device="cpu")
        latencies, batches, validations = [], [], []
        for _ in range(4):
            clock = StepClock()
            jid = runner.submit("teacher", timed(teacher_job(ds, spec, train, store), clock))
            deadline = time.monotonic() + 120
            while len(clock.steps) < 3 and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(float(rng.uniform(0, 0.4)))  # anywhere in a batch, or in a validation pass
            t_stop = time.perf_counter()
            runner.cancel(jid)
            snap = runner.wait(jid, 60)
            latencies.append(time.perf_counter() - t_stop)
            assert snap.status == "cancelled" and runner.alive_threads() == 0
            assert sum(1 for t, _ in clock.steps if t > t_stop) <= 1  # only the batch in flight finished
            within, across = clock.intervals()
            batches += within
            validations += across
        worst_batch = max(batches)
        bound = max([worst_batch] + validations) + 0.5  # one batch (or validation pass) + thread/store teardown
        report.append(f"{label}: stop -> thread ended, worst {max(latencies) * 1000:.0f} ms, median "
                      f"{np.median(latencies) * 1000:.0f} ms over {len(latencies)} stops; batch median "
                      f"{np.median(batches) * 1000:.0f} ms, worst {worst_batch * 1000:.0f} ms; epoch end "
                      f"(validation) worst {max(validations, default=0) * 1000:.0f} ms")
        assert max(latencies) <= bound, report[-1]
    print("\n" + "\n".join(report))


def rss_mb() -> float:
    """Resident memory after handing freed heap pages back to the OS: glibc keeps what finished threads freed
    in per-thread arenas, which is reuse, not a leak, and varies with what ran before in the process."""
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def live_tensor_bytes() -> tuple[int, int]:
    """(count, bytes) of the torch tensors Python can still reach: the exact signal of a leaked model."""
    import warnings
    n = size = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance on deprecated torch.distributed aliases warns
        objects = gc.get_objects()
        for obj in objects:
            try:
                if isinstance(obj, torch.Tensor):
                    numel = obj.nelement()
                    # symbolic-shaped fake tensors (kept by torch's exporter caches after an ONNX export in
                    # the same process) hold no memory: only tensors of concrete size count
                    if not isinstance(numel, int) or obj.device.type == "meta":
                        continue
                    n += 1
                    size += obj.element_size() * numel
            except Exception:  # noqa: BLE001 - some objects refuse isinstance/introspection
                continue
    return n, size


# A leak of each job's model, gradients and Adam state (mf dim 64 on the sample: 181,000 parameters x 4 copies
# x 4 bytes = 2.9 MB) shows exactly in the live tensors (asserted below to within 1 MB). RSS is the coarse
# check: over 100 jobs in a row it wandered between 463 and 515 MB with no trend (glibc arenas of finished
# threads), so its bound catches only leaks larger than about 4 MB per job that hold no tensor.
RSS_BOUND_MB = 80


def test_twenty_jobs_started_and_stopped_leave_no_thread_and_bounded_memory():
    """Run in a fresh pytest process of its own: the RSS bound is about this test's jobs, and in the full suite the
    memory the earlier tests left to the allocator (Ray, torchrun, pages) moved the process's RSS by 160 MB during
    the 20 jobs while no tensor was kept (the tensor check passed; alone the growth is about 10 MB)."""
    if not os.environ.get("RECDISTILL_STRESS_CHILD"):
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                               f"{__file__}::test_twenty_jobs_started_and_stopped_leave_no_thread_and_bounded_memory"],
                              env={**os.environ, "RECDISTILL_STRESS_CHILD": "1"}, capture_output=True, text=True,
                              timeout=900)
        print(proc.stdout[-2000:])
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return
    runner, store = JobRunner(), RunStore()
    job = teacher_job(registry.sample(), ModelSpec("mf", 64), TrainConfig(epochs=1000, batch_size=1024, device="cpu"),
                      store)

    def start_and_stop() -> None:
        clock = StepClock()
        jid = runner.submit("teacher", timed(job, clock))
        deadline = time.monotonic() + 30
        while not clock.steps and time.monotonic() < deadline:
            time.sleep(0.002)
        runner.cancel(jid)
        assert runner.wait(jid, 30).status == "cancelled"

    for _ in range(3):  # warm-up: allocator pools, torch kernels, caches
        start_and_stop()
    before, threads_before = rss_mb(), threading.active_count()
    tensors_before = live_tensor_bytes()
    probe = torch.zeros(181_000 * 4)  # what one leaked job would keep: the detector must see it
    assert live_tensor_bytes()[1] - tensors_before[1] >= probe.nelement() * 4
    del probe
    for _ in range(20):
        start_and_stop()
    growth = rss_mb() - before
    tensors_after = live_tensor_bytes()
    tensor_growth_mb = (tensors_after[1] - tensors_before[1]) / 2**20
    print(f"\n20 jobs started and stopped: RSS {before:.0f} MB -> {before + growth:.0f} MB "
          f"(growth {growth:+.1f} MB, bound {RSS_BOUND_MB} MB); live tensors {tensors_before[0]} -> "
          f"{tensors_after[0]} ({tensor_growth_mb:+.2f} MB); threads {threads_before} -> {threading.active_count()}")
    assert runner.alive_threads() == 0 and not recdistill_threads()
    assert threading.active_count() <= threads_before
    assert tensor_growth_mb < 1.0, "a job's model or optimiser state outlives the job"
    assert growth < RSS_BOUND_MB
    assert len(store.runs(status="cancelled")) == 23 and not store.runs(status="running")

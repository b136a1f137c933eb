"""Helpers shared by several test files (fixtures live in conftest.py)."""
from __future__ import annotations

from pathlib import Path

from distill_core import DistillConfig, ModelSpec, RunStore, TrainConfig, load_dataset
from distill_core.runner import JobRunner
from distill_core.workflows import distill_job, teacher_job


def tiny_catalogue_dataset(tmp_path: Path, n_items: int):
    path = tmp_path / "few.csv"
    path.write_text("user,item,ts\n" + "".join(f"u{u},i{(u + k) % n_items},{k}\n"
                                                for u in range(6) for k in range(n_items)))
    return load_dataset(path)


TINY = TrainConfig(epochs=2, batch_size=128, device="cpu")


def make_runs(ds, store: RunStore, runner: JobRunner | None = None, teacher_dim: int = 16) -> dict[str, str]:
    """A teacher (mf), a student distilled from it and its plain twin (mf dim 4), through the real jobs."""
    runner = runner or JobRunner()
    t = runner.wait(runner.submit("teacher", teacher_job(ds, ModelSpec("mf", teacher_dim), TINY, store)), 60)
    tid = t.result
    s = runner.wait(runner.submit("distill", distill_job(ds, tid, ModelSpec("mf", 4), TINY,
                                                          DistillConfig(0.5, 2.0), store)), 60)
    assert t.status == "done" and s.status == "done", (t.error, s.error)
    return {"teacher": tid, **s.result}


def files(store: RunStore) -> set[str]:
    return {p.name for p in store.weights_dir.iterdir()}

"""Shared fixtures: a tiny generated dataset and a private run store per test; for the sweep's tests
(test_sweep.py, test_cli.py, test_page_sweep.py) a stored teacher and a record of the trainer's calls."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from distill_core import ModelSpec, RunStore, TrainConfig
from distill_core.data import build_dataset, split_dataset
from distill_core.data.loaders import load_raw
from distill_core.data.sample import SampleSpec, write_sample
from distill_core.runner import JobRunner
from distill_core.workflows import teacher_job
from distill_core.workflows import record as record_module

ROOT = Path(__file__).resolve().parents[1]
TINY = SampleSpec(n_users=80, n_items=120, mean_activity=25, n_niches=12, n_taste_groups=6, seed=7)


@pytest.fixture(autouse=True)
def _private_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECDISTILL_HOME", str(tmp_path_factory.mktemp("store")))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tiny")
    write_sample(d, TINY)
    return d


@pytest.fixture(scope="session")
def tiny_ds(tiny_dir: Path):
    return build_dataset(load_raw(tiny_dir), name="tiny")


@pytest.fixture(scope="session")
def tiny_split(tiny_ds):
    return split_dataset(tiny_ds)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "2")


# ----------------------------------------------------------------------------- the sweep's
@pytest.fixture
def store() -> RunStore:
    return RunStore()  # $RECDISTILL_HOME: a private folder per test (_private_store)


@pytest.fixture
def teacher(tiny_ds, store) -> str:
    runner = JobRunner()
    snap = runner.wait(runner.submit("teacher", teacher_job(tiny_ds, ModelSpec("mf", 16), TrainConfig(epochs=2),
                                                            store)))
    assert snap.status == "done", snap.error
    return snap.result


@pytest.fixture
def train_calls(monkeypatch) -> list[tuple]:
    """Every call of the trainer behind the sweep and the teacher job, as (role, alpha, T) for a distilled
    student and (role, lr, weight decay) otherwise; the real training still runs."""
    calls, real = [], record_module.train_model

    def counting(split, spec, train, *, role="teacher", distill=None, **kw):
        calls.append((role, distill.alpha, distill.temperature) if distill else (role, train.lr, train.weight_decay))
        return real(split, spec, train, role=role, distill=distill, **kw)
    monkeypatch.setattr(record_module, "train_model", counting)
    return calls


# ----------------------------------------------------------------------------- the method pages'
@pytest.fixture
def stop_jobs():
    """Stop the jobs an AppTest started in this test's private store (``usefixtures("stop_jobs")``)."""
    yield
    from ui import registry
    registry.runner().shutdown()


@pytest.fixture
def sample_teacher() -> str:
    """The run id of an mf teacher of the bundled sample, one epoch, in this test's private store."""
    from _pages import stored_sample_teacher
    return stored_sample_teacher()

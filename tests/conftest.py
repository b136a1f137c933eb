"""Shared fixtures: a tiny generated dataset and a private run store per test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from distill_core.data import build_dataset, split_dataset
from distill_core.data.loaders import load_raw
from distill_core.data.sample import SampleSpec, write_sample

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

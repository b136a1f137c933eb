"""What one browser session keeps in ``st.session_state``: small ids and the user's picks, never data.

The active dataset (its fingerprint; the dataset itself is in ``ui.registry``) and the message of a failed
load, whether live updates are paused, the distilled student picked on one page for the others to show, and
the Ray address sweeps go to (off by default).
"""
from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
import streamlit as st

from distill_core import Dataset, RecDistillError, load_dataset
from distill_core.errors import StoreError

from ui import registry
from ui.uploads import load_upload, resolve_path

LIVE_SECONDS = 1.0  # how often a live section polls its job
FOLDER_FORMATS = ("auto", "movielens", "recbole", "ml-100k", "ml-1m", "ml-latest", "csv", "sequences", "parquet")
UPLOAD_TYPES = ["csv", "tsv", "txt", "parquet", "pq"]
PAUSE_KEY = "live_paused"
DATASET_KEY = "dataset_fingerprint"
DATA_ERROR_KEY = "data_error"
SELECTED_STUDENT_KEY = "selected_student"
RAY_ADDRESS_KEY = "ray_address"


# ----------------------------------------------------------------------------- the active dataset
def active_dataset() -> Dataset:
    """The session's dataset: the last one it loaded, else the sample."""
    fp = st.session_state.get(DATASET_KEY)
    ds = registry.datasets().get(fp) if fp else None
    return ds if ds is not None else registry.sample()


def activate(ds: Dataset) -> None:
    registry.datasets().put(ds)
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
    activate(registry.sample())


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


# ----------------------------------------------------------------------------- live updates
def paused() -> bool:
    return bool(st.session_state.get(PAUSE_KEY, False))


def live_interval(active: bool) -> float | None:
    """``run_every`` of a live section: poll while its job runs, unless the user paused live updates."""
    return LIVE_SECONDS if active and not paused() else None


def ray_address() -> str | None:
    """Where the Sweep page sends its cells (the sidebar's settings): a Ray address, or None (off, the default:
    the cells train in this process)."""
    return str(st.session_state.get(RAY_ADDRESS_KEY) or "").strip() or None


def new_rng() -> np.random.Generator:
    return np.random.default_rng()


# ----------------------------------------------------------------------------- the selected student
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
        rec = registry.store().get(sel)
    except StoreError:  # deleted since it was selected
        return
    value = rec.parent if teacher else rec.id
    if value in options:
        st.session_state[key] = value

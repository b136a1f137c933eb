"""Which format a dataset path holds, and loading it: detection and dispatch over the readers.

Formats (:data:`FORMATS`): generic CSV/TSV/TXT or Parquet tables and headerless ``user item [timestamp]``
files (``sequences``), read by :mod:`distill_core.data.tables`; MovieLens folders (ml-100k, ml-1m,
ml-latest, :mod:`distill_core.data.movielens`); RecBole atomic files (:mod:`distill_core.data.recbole`).
A folder is recognised by its marker files, a file by its name and first line. Every problem is reported
as :class:`DataError` naming the file, the column or line, and what is wrong; an unexpected error of
pandas, pyarrow or the OS is wrapped in one too. Nothing below this module imports it.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from distill_core.config import DataOptions
from distill_core.data import movielens, recbole, sequences
from distill_core.data.columns import GENRE_NAMES, ITEM_NAMES, TITLE_NAMES, USER_NAMES, RawData, empty_items
from distill_core.data.dataset import Dataset, build_dataset
from distill_core.data.tables import (CSV_SUFFIXES, PARQUET_SUFFIXES, header_columns, read_interactions_file,
                                      read_items_file, sniff_sep)
from distill_core.errors import DataError

log = logging.getLogger(__name__)

FORMATS = ("csv", "sequences", "parquet", "ml-100k", "ml-1m", "ml-latest", "recbole")


def _has(columns: list[str], names: tuple[str, ...]) -> bool:
    return any(c.lower() in names for c in columns)


def _scan_tables(folder: Path) -> tuple[list[Path], list[Path]]:
    """CSV/Parquet files of ``folder`` with a user+item header, and those that look like item tables."""
    interactions, items = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in CSV_SUFFIXES + PARQUET_SUFFIXES:
            continue
        columns = header_columns(path)
        if _has(columns, USER_NAMES) and _has(columns, ITEM_NAMES):
            interactions.append(path)
        elif _has(columns, ITEM_NAMES) and (_has(columns, TITLE_NAMES) or _has(columns, GENRE_NAMES)):
            items.append(path)
    return interactions, items


def _data_folder(path: Path) -> Path:
    """The folder holding the data: the folder itself, or its only subfolder if it has no files."""
    if path.is_file():
        return path.parent
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return path


def _folder_format(folder: Path, movielens_only: bool = False) -> str | None:
    names = {p.name.lower() for p in folder.iterdir() if p.is_file()}
    for marker, fmt in (("u.data", "ml-100k"), ("ratings.dat", "ml-1m"), ("ratings.csv", "ml-latest")):
        if marker in names:
            return fmt
    if movielens_only:
        return None
    if any(n.endswith(".inter") for n in names):
        return "recbole"
    tables, _ = _scan_tables(folder)
    if len(tables) == 1:
        return "parquet" if tables[0].suffix.lower() in PARQUET_SUFFIXES else "csv"
    return None


LOOKED_FOR = ("a folder with u.data (ml-100k), ratings.dat (ml-1m), ratings.csv (ml-latest), "
              "a *.inter file (RecBole) or exactly one CSV/Parquet table with user and item columns; "
              f"or a file ending in {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)} or .inter")


def _file_format(path: Path) -> str | None:
    suffix, name = path.suffix.lower(), path.name.lower()
    if name == "u.data":
        return "ml-100k"
    if name == "ratings.dat":
        return "ml-1m"
    if suffix == ".inter":
        return "recbole"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        try:  # a headerless table of numbers is a sequences file
            with path.open("rb") as fh:
                text = fh.read(65536).decode("utf-8-sig", errors="replace")
            return "sequences" if sequences.looks_like_sequences(text, sniff_sep(text)) else "csv"
        except Exception:  # an unreadable file is left to the csv reader, which reports the problem
            return "csv"
    return None


def shorten(path: object, limit: int = 200) -> str:
    """A path for a message: at most ``limit`` characters, then how long it was."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def detect_format(path: str | os.PathLike) -> str:
    """The format of a dataset file or folder: one of :data:`FORMATS`; DataError if unknown."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: path does not exist")
    if p.is_dir():
        fmt = _folder_format(_data_folder(p))
        if fmt is None:
            found = sorted(c.name for c in p.iterdir())[:20]
            raise DataError(f"{path}: cannot tell the dataset format; looked for {LOOKED_FOR}; "
                            f"found: {found or 'an empty folder'}")
        return fmt
    fmt = _file_format(p)
    if fmt is None:
        raise DataError(f"{path}: cannot tell the dataset format from the file name; looked for {LOOKED_FOR}")
    return fmt


def load_raw(path: str | os.PathLike, format: str = "auto", *, user_col: str | None = None,
             item_col: str | None = None, rating_col: str | None = None,
             timestamp_col: str | None = None, items_path: str | os.PathLike | None = None,
             sep: str | None = None, max_bytes: int | None = None, no_header: bool = False) -> RawData:
    """Load interactions and item metadata from a file or folder; see the module docstring.

    ``format`` is "auto", "movielens" or one of :data:`FORMATS`. The ``*_col`` names, ``sep`` and
    ``items_path`` apply to csv/sequences/parquet (the ``*_col`` names also to RecBole); ``no_header``
    (the first line is data, whatever it holds) to csv and sequences; ``max_bytes`` limits the size of
    each file read. Every problem raises :class:`DataError`.
    """
    p = Path(path)
    try:
        exists = p.exists()
    except (OSError, ValueError) as exc:  # a name too long for the OS, a NUL byte, ...
        raise DataError(f"{shorten(path)}: cannot use this path: {exc}") from exc
    if not exists:
        raise DataError(f"{path}: path does not exist")
    fmt = format.lower().strip()
    cols = {"user_col": user_col, "item_col": item_col, "rating_col": rating_col,
            "timestamp_col": timestamp_col}
    try:  # detection lists folders, which can fail too (permissions)
        if fmt == "auto":
            fmt = detect_format(p)
        elif fmt == "movielens":
            found = _folder_format(_data_folder(p), movielens_only=True)
            if found is None:
                raise DataError(f"{path}: not a MovieLens folder; looked for u.data (ml-100k), "
                                f"ratings.dat (ml-1m) or ratings.csv (ml-latest)")
            fmt = found
        elif fmt not in FORMATS:
            raise DataError(f"{path}: unknown format {format!r}; use auto, movielens or {', '.join(FORMATS)}")
        if no_header and fmt not in ("csv", "sequences"):
            raise DataError(f"{path}: no_header applies to csv and sequences files, not to format {fmt!r}")
        interactions, items, fmt = _load(p, fmt, cols, items_path, sep, max_bytes, no_header)
    except DataError:
        raise
    except Exception as exc:  # never let a pandas/pyarrow/OS error escape unexplained
        log.exception("unexpected error loading %s", path)
        raise DataError(f"{path}: cannot load as {fmt}: {type(exc).__name__}: {exc}") from exc
    log.info("loaded %s (%s): %d interactions, %d items", path, fmt, len(interactions), len(items))
    return RawData(interactions=interactions, items=items, format=fmt, source=str(path))


def _load(p: Path, fmt: str, cols: dict[str, str | None], items_path: str | os.PathLike | None,
          sep: str | None, max_bytes: int | None,
          no_header: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    if fmt in ("ml-100k", "ml-1m", "ml-latest"):
        folder = _data_folder(p)
        reader = {"ml-100k": movielens.load_ml100k, "ml-1m": movielens.load_ml1m,
                  "ml-latest": movielens.load_mllatest}[fmt]
        return (*reader(folder, max_bytes), fmt)
    if fmt == "recbole":
        target = _data_folder(p) if p.is_dir() else p
        return (*recbole.load_recbole(target, max_bytes, **cols), fmt)
    file, auto_items = p, None
    if p.is_dir() and fmt == "sequences":
        raise DataError(f"{p}: format 'sequences' reads one file; give the file, not the folder")
    if p.is_dir():
        tables, item_tables = _scan_tables(_data_folder(p))
        if len(tables) != 1:
            raise DataError(f"{p}: expected exactly one CSV/Parquet table with user and item columns "
                            f"in the folder, found {[t.name for t in tables] or 'none'}")
        file = tables[0]
        fmt = "parquet" if file.suffix.lower() in PARQUET_SUFFIXES else "csv"
        auto_items = item_tables[0] if len(item_tables) == 1 else None
    interactions = read_interactions_file(file, fmt, max_bytes, sep, no_header, **cols)
    item_file = Path(items_path) if items_path is not None else auto_items
    if item_file is None:
        return interactions, empty_items(), fmt
    return interactions, read_items_file(item_file, max_bytes), fmt


def load_dataset(path: str | os.PathLike[str], format: str = "auto", options: DataOptions = DataOptions(),
                 name: str | None = None, **loader_kwargs: object) -> Dataset:
    """Load ``path`` (a file or a folder) in ``format`` and index it (see ``load_raw``)."""
    return build_dataset(load_raw(path, format, **loader_kwargs), options, name=name)  # type: ignore[arg-type]

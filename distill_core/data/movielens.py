"""Readers for MovieLens folders: ml-100k (``u.data``, ``u.item``), ml-1m and ml-10m (``ratings.dat``,
``movies.dat``) and ml-latest (``ratings.csv``, ``movies.csv``), as laid out by GroupLens' README files.

Each reader returns ``(interactions, items)`` frames in the standard layout of
:class:`distill_core.data.columns.RawData`; the item file is optional (a warning, no titles). The layouts
are fixed, so every line must have a rating and a timestamp; problems raise :class:`DataError`.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import pandas as pd

from distill_core.data.columns import Frames, build_interactions, build_items, empty_items
from distill_core.data.tables import read_items_file, read_table, read_text
from distill_core.errors import DataError

log = logging.getLogger(__name__)

GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
               "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
               "Romance", "Sci-Fi", "Thriller", "War", "Western")
FIELDS = ["user_id", "item_id", "rating", "timestamp"]


def _complete(df: pd.DataFrame, source: str, line_base: int) -> pd.DataFrame:
    """Fixed MovieLens layouts must have a rating and a timestamp on every line."""
    for col in ("rating", "timestamp"):
        missing = df[col].isna()
        if missing.any():
            raise DataError(f"{source}: column {col!r}, line {int(missing.idxmax()) + line_base}: "
                            f"missing {col}")
    return df


def _headerless(text: str, source: str, sep: str, what: str) -> pd.DataFrame:
    df = read_table(text, source, sep, header=False, quoting=csv.QUOTE_NONE)
    if df.shape[1] != len(FIELDS):
        raise DataError(f"{source}: line 1: expected {len(FIELDS)} {what}-separated fields "
                        f"(user, item, rating, timestamp), found {df.shape[1]}")
    df.columns = FIELDS
    return _complete(build_interactions(df, source, line_base=1), source, 1)


def _lines(text: str):
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield number, line


def _items_frame(rows: list[tuple[int, str, str, str]], source: str) -> pd.DataFrame:
    if not rows:
        raise DataError(f"{source}: no data rows")
    df = pd.DataFrame([r[1:] for r in rows], columns=["item_id", "title", "genres"],
                      index=[r[0] - 1 for r in rows])
    return build_items(df, source, line_base=1)


def load_ml100k(folder: Path, max_bytes: int | None = None) -> Frames:
    """``u.data`` (tab-separated, no header) and ``u.item`` (pipe-separated, genre flags)."""
    data = folder / "u.data"
    interactions = _headerless(read_text(data, max_bytes), str(data), "\t", "tab")
    path = folder / "u.item"
    if not path.exists():
        log.warning("%s not found; no item titles or genres", path)
        return interactions, empty_items()
    rows = []
    for number, line in _lines(read_text(path, max_bytes)):
        fields = line.split("|")
        if len(fields) < 24:
            raise DataError(f"{path}: line {number}: expected 24 '|'-separated fields (id|title|"
                            f"release date|video release date|IMDb URL|19 genre flags), "
                            f"found {len(fields)}")
        flags = [f.strip() for f in fields[-19:]]
        bad = next((f for f in flags if f not in ("0", "1")), None)
        if bad is not None:
            raise DataError(f"{path}: line {number}: genre flag {bad!r} is not 0 or 1")
        genres = "|".join(g for g, flag in zip(GENRES_100K, flags) if flag == "1")
        rows.append((number, fields[0], "|".join(fields[1:-22]), genres))
    return interactions, _items_frame(rows, str(path))


def load_ml1m(folder: Path, max_bytes: int | None = None) -> Frames:
    """``ratings.dat`` and ``movies.dat`` with ``::`` separators (also ml-10m)."""
    data = folder / "ratings.dat"
    text = read_text(data, max_bytes)
    first = text.lstrip().splitlines()[0]
    if "::" not in first or "\t" in text[:65536]:
        raise DataError(f"{data}: line 1: expected '::'-separated fields "
                        f"(UserID::MovieID::Rating::Timestamp), found {first[:80]!r}")
    interactions = _headerless(text.replace("::", "\t"), str(data), "\t", "'::'")
    path = folder / "movies.dat"
    if not path.exists():
        log.warning("%s not found; no item titles or genres", path)
        return interactions, empty_items()
    rows = []
    for number, line in _lines(read_text(path, max_bytes)):
        head, sep, genres = line.rpartition("::")
        item, sep2, title = head.partition("::")
        if not sep or not sep2:
            raise DataError(f"{path}: line {number}: expected MovieID::Title::Genres, "
                            f"found {line[:80]!r}")
        rows.append((number, item, title, genres))
    return interactions, _items_frame(rows, str(path))


def load_mllatest(folder: Path, max_bytes: int | None = None) -> Frames:
    """``ratings.csv`` (userId,movieId,rating,timestamp) and ``movies.csv`` (movieId,title,genres)."""
    data = folder / "ratings.csv"
    df = read_table(read_text(data, max_bytes), str(data), ",")
    interactions = _complete(build_interactions(df, str(data), line_base=2), str(data), 2)
    path = folder / "movies.csv"
    if not path.exists():
        log.warning("%s not found; no item titles or genres", path)
        return interactions, empty_items()
    return interactions, read_items_file(path, max_bytes, sep=",")

"""The standard frames every reader returns, how their columns are recognised, and how cells are validated.

Whatever the format, a reader ends with two frames: interactions (user_id, item_id, rating, timestamp) and
item metadata (item_id, title, genres), wrapped in :class:`RawData`. This module turns a frame of raw
cells into them: it finds the columns by their usual spellings (any case) and checks every cell, so a
problem is a :class:`DataError` naming the source, the column, the line (or row) and what is wrong; a
blank timestamp among others too, rather than a silent fall back to file order for every user. It reads
no file: that is :mod:`distill_core.data.tables`' job.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from distill_core.errors import DataError

log = logging.getLogger(__name__)

USER_NAMES = ("user_id", "userid", "user", "uid", "visitorid")
ITEM_NAMES = ("item_id", "itemid", "movieid", "movie_id", "item", "iid", "product_id", "productid", "asin")
RATING_NAMES = ("rating", "score", "stars", "preference")
TIME_NAMES = ("timestamp", "ts", "time", "datetime", "date", "unix_timestamp")
TITLE_NAMES = ("title", "name", "movie_title", "item_name", "product_name")
GENRE_NAMES = ("genres", "genre", "category", "categories", "class")
MISSING = frozenset({"", "nan", "na", "n/a", "null", "none"})
# In seconds, not nanoseconds: subtracting a ns epoch would overflow for dates before 1677 or after 2262.
EPOCH = pd.Timestamp(0, tz="UTC").as_unit("s")
INTERACTION_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
ITEM_COLUMNS = ["item_id", "title", "genres"]
Frames = tuple[pd.DataFrame, pd.DataFrame]  # (interactions, items), what each format's reader returns


@dataclass(frozen=True)
class RawData:
    """Interactions (user_id, item_id, rating, timestamp) and item metadata (item_id, title, genres)."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    format: str
    source: str


def find_column(columns: list[str], names: tuple[str, ...], explicit: str | None, what: str,
                source: str, required: bool) -> str | None:
    """The column for ``what``: ``explicit`` if given, else the first spelling in ``names`` found."""
    lower = {c.lower(): c for c in reversed(columns)}
    if explicit is not None:
        if explicit in columns:
            return explicit
        if explicit.lower() in lower:
            return lower[explicit.lower()]
        raise DataError(f"{source}: {what} column {explicit!r} not found; columns found: {columns}")
    for name in names:
        if name in lower:
            return lower[name]
    if required:
        raise DataError(f"{source}: no {what} column; columns found: {columns}; "
                        f"accepted spellings (any case): {', '.join(names)}")
    return None


def _first_bad(mask: pd.Series, values: pd.Series, line_base: int, unit: str) -> tuple[str, object]:
    pos = int(np.argmax(mask.to_numpy()))
    return f"{unit} {int(mask.index[pos]) + line_base}", values.iloc[pos]


def ids_column(col: pd.Series, name: str, source: str, line_base: int, unit: str) -> pd.Series:
    """Ids as stripped strings (integral floats lose their '.0'); DataError on empty ids."""
    if pd.api.types.is_float_dtype(col.dtype):
        col = col.map(lambda v: "" if pd.isna(v) else f"{v:.0f}" if float(v).is_integer() else str(v))
    missing = col.isna()
    out = col.astype(object).where(~missing, "").astype(str).str.strip()
    bad = missing | out.eq("")
    if bad.any():
        where, _ = _first_bad(bad, col, line_base, unit)
        raise DataError(f"{source}: column {name!r}, {where}: empty or missing id")
    return out.astype(str)


def numbers_column(col: pd.Series, name: str, source: str, line_base: int, unit: str,
                   dates: bool = False) -> pd.Series:
    """A float64 column (NaN where missing); with ``dates``, ISO date strings become unix seconds."""
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        if col.dt.tz is None:
            col = col.dt.tz_localize("UTC")
        values = (col - EPOCH).dt.total_seconds()
    elif pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        values = pd.Series(col.to_numpy(dtype="float64", na_value=np.nan), index=col.index)
    else:
        text = col.astype(str).str.strip()
        missing = col.isna() | text.str.lower().isin(MISSING)
        values = pd.to_numeric(text.where(~missing), errors="coerce").astype("float64")
        bad = ~missing & values.isna()
        expected = "a number (unix seconds) or an ISO date" if dates else "a number"
        kind = "non-numeric value"
        if dates and bad.any() and bad.iloc[int(np.argmax((~missing).to_numpy()))]:
            # the first value present is not a number: read the whole column as ISO dates
            stamps = pd.to_datetime(text.where(~missing), format="ISO8601", utc=True, errors="coerce")
            values = (stamps - EPOCH).dt.total_seconds().astype("float64")
            bad = ~missing & values.isna()
            expected = "an ISO date, like the first value"
            kind = "invalid date"
        if bad.any():
            where, value = _first_bad(bad, col, line_base, unit)
            raise DataError(f"{source}: column {name!r}, {where}: {kind} {value!r} "
                            f"(expected {expected})")
    infinite = np.isinf(values)
    if infinite.any():
        where, value = _first_bad(infinite, col, line_base, unit)
        raise DataError(f"{source}: column {name!r}, {where}: non-finite value {value!r}")
    return values.astype("float64")


def build_interactions(df: pd.DataFrame, source: str, *, line_base: int, unit: str = "line",
                       user_col: str | None = None, item_col: str | None = None,
                       rating_col: str | None = None, timestamp_col: str | None = None) -> pd.DataFrame:
    """Recognise the columns of ``df`` and return the standard, validated interactions frame."""
    columns = list(df.columns)
    ucol = find_column(columns, USER_NAMES, user_col, "user", source, True)
    icol = find_column(columns, ITEM_NAMES, item_col, "item", source, True)
    rcol = find_column(columns, RATING_NAMES, rating_col, "rating", source, False)
    tcol = find_column(columns, TIME_NAMES, timestamp_col, "timestamp", source, False)
    nan = pd.Series(np.nan, index=df.index, dtype="float64")
    out = pd.DataFrame({
        "user_id": ids_column(df[ucol], ucol, source, line_base, unit),
        "item_id": ids_column(df[icol], icol, source, line_base, unit),
        "rating": nan if rcol is None else numbers_column(df[rcol], rcol, source, line_base, unit),
        "timestamp": nan if tcol is None else numbers_column(df[tcol], tcol, source, line_base, unit,
                                                             dates=True),
    })
    gaps = out["timestamp"].isna()
    if gaps.any() and not gaps.all():  # refused: a silent fallback to file order would reorder every user
        where, _ = _first_bad(gaps, df[tcol], line_base, unit)
        raise DataError(f"{source}: column {tcol!r}, {where}: missing timestamp ({int(gaps.sum())} of "
                        f"{len(out)} missing); fill it in or remove the row, or drop the column to use file order")
    return out.reset_index(drop=True)


def empty_items() -> pd.DataFrame:
    """An item table with no rows and the standard columns."""
    return pd.DataFrame({c: pd.Series([], dtype=str) for c in ITEM_COLUMNS})


def build_items(df: pd.DataFrame, source: str, *, line_base: int, unit: str = "line",
                genre_sep: str | None = None) -> pd.DataFrame:
    """Recognise item id, title and genres columns; genres are normalised to '|'-joined text."""
    columns = list(df.columns)
    icol = find_column(columns, ITEM_NAMES, None, "item", source, True)
    tcol = find_column(columns, TITLE_NAMES, None, "title", source, False)
    gcol = find_column(columns, GENRE_NAMES, None, "genres", source, False)
    lower = [c.lower() for c in columns]
    if tcol is None:
        tcol = next((c for c, low in zip(columns, lower) if "title" in low or "name" in low), None)
    if gcol is None:
        gcol = next((c for c, low in zip(columns, lower)
                     if any(k in low for k in ("genre", "class", "categor"))), None)
    if tcol is None and gcol is None:
        raise DataError(f"{source}: no title or genres column; columns found: {columns}; accepted "
                        f"spellings: {', '.join(TITLE_NAMES)} / {', '.join(GENRE_NAMES)}")
    blank = pd.Series("", index=df.index, dtype=str)
    title = blank if tcol is None else df[tcol].fillna("").astype(str).str.strip()
    genres = blank if gcol is None else df[gcol].fillna("").astype(str).str.strip()
    genres = genres.where(genres.str.lower() != "(no genres listed)", "")
    pattern = r"\s+" if genre_sep == " " else r"\s*[|,;]\s*"
    genres = genres.str.split(pattern, regex=True).map(lambda g: "|".join(x for x in g if x))
    out = pd.DataFrame({"item_id": ids_column(df[icol], icol, source, line_base, unit),
                        "title": title.astype(str), "genres": genres.astype(str)})
    dup = out["item_id"].duplicated()
    if dup.any():
        log.warning("%s: %d duplicate item ids; keeping the first of each", source, int(dup.sum()))
        out = out[~dup]
    return out.reset_index(drop=True)

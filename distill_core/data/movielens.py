"""Readers for MovieLens folders (ml-100k, ml-1m, ml-latest), RecBole atomic files and item tables.

Each reader returns ``(interactions, items)`` frames in the standard layout of
:class:`distill_core.data.loaders.RawData`; problems raise :class:`DataError`.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import pandas as pd

from distill_core.data.loaders import (
    GENRE_NAMES,
    ITEM_COLUMNS,
    ITEM_NAMES,
    PARQUET_SUFFIXES,
    TITLE_NAMES,
    build_interactions,
    find_column,
    ids_column,
    read_parquet,
    read_table,
    read_text,
    sniff_sep,
    unique_columns,
)
from distill_core.errors import DataError

log = logging.getLogger(__name__)

GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
               "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
               "Romance", "Sci-Fi", "Thriller", "War", "Western")
FIELDS = ["user_id", "item_id", "rating", "timestamp"]
Frames = tuple[pd.DataFrame, pd.DataFrame]


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


def read_items_file(path: Path, max_bytes: int | None = None, sep: str | None = None) -> pd.DataFrame:
    """An item metadata table (CSV or Parquet) with item id and title and/or genres."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return build_items(read_parquet(path, max_bytes), str(path), line_base=1, unit="row")
    text = read_text(path, max_bytes)
    return build_items(read_table(text, str(path), sep or sniff_sep(text)), str(path), line_base=2)



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


def _strip_types(df: pd.DataFrame, source: str) -> dict[str, str]:
    """Drop RecBole ``:type`` suffixes from the column names; return name -> type."""
    types = {}
    names = []
    for col in df.columns:
        name, _, kind = col.partition(":")
        names.append(name.strip())
        types[name.strip()] = kind.strip()
    df.columns = names
    unique_columns(df, source)  # "user_id:token" and "user_id:float" are one name without their types
    return types


def _pick(folder: Path, suffix: str, stem: str | None) -> list[Path]:
    files = sorted(p for p in folder.glob(f"*{suffix}") if p.is_file() and not p.name.startswith("."))
    preferred = [p for p in files if p.stem == stem]
    return preferred or files


def load_recbole(path: Path, max_bytes: int | None = None, **cols: str | None) -> Frames:
    """RecBole atomic files: ``NAME.inter`` (required) and ``NAME.item`` (optional)."""
    if path.is_dir():
        candidates = _pick(path, ".inter", path.name)
        if len(candidates) != 1:
            raise DataError(f"{path}: expected one .inter file, found "
                            f"{[p.name for p in candidates] or 'none'}; pass the file itself")
        inter = candidates[0]
    else:
        inter = path
    text = read_text(inter, max_bytes)
    df = read_table(text, str(inter), "\t", quoting=csv.QUOTE_NONE)
    _strip_types(df, str(inter))
    cols = {k: (v.partition(":")[0] if v else v) for k, v in cols.items()}
    interactions = build_interactions(df, str(inter), line_base=2, **cols)
    items_files = _pick(inter.parent, ".item", inter.stem)
    if len(items_files) != 1:
        if items_files:
            log.warning("%s: several .item files and none named %s.item; no item metadata",
                        inter.parent, inter.stem)
        return interactions, empty_items()
    item_path = items_files[0]
    idf = read_table(read_text(item_path, max_bytes), str(item_path), "\t", quoting=csv.QUOTE_NONE)
    types = _strip_types(idf, str(item_path))
    token_seq_genres = any(t == "token_seq" and any(k in n.lower() for k in ("genre", "class", "categor"))
                           for n, t in types.items())
    items = build_items(idf, str(item_path), line_base=2, genre_sep=" " if token_seq_genres else None)
    return interactions, items

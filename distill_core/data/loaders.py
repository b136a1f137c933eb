"""Load raw interaction data (and optional item metadata) from the common dataset layouts.

Supported: generic CSV/TSV/TXT or Parquet tables, headerless ``user item [timestamp]`` files (the
SASRec/BERT4Rec layout, see :mod:`distill_core.data.sequences`), MovieLens folders (ml-100k, ml-1m,
ml-latest) and RecBole atomic files. Every problem is reported as :class:`DataError` naming the file,
the column or line, and what is wrong; a blank timestamp among others too (line and column), rather
than a silent fall back to file order for every user. The MovieLens and RecBole readers live in
:mod:`distill_core.data.movielens`.
"""
from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from distill_core.data import sequences
from distill_core.data.sequences import WHITESPACE
from distill_core.errors import DataError

log = logging.getLogger(__name__)

FORMATS = ("csv", "sequences", "parquet", "ml-100k", "ml-1m", "ml-latest", "recbole")
USER_NAMES = ("user_id", "userid", "user", "uid", "visitorid")
ITEM_NAMES = ("item_id", "itemid", "movieid", "movie_id", "item", "iid", "product_id", "productid", "asin")
RATING_NAMES = ("rating", "score", "stars", "preference")
TIME_NAMES = ("timestamp", "ts", "time", "datetime", "date", "unix_timestamp")
TITLE_NAMES = ("title", "name", "movie_title", "item_name", "product_name")
GENRE_NAMES = ("genres", "genre", "category", "categories", "class")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
SEPARATORS = (",", "\t", ";", "|")
MISSING = frozenset({"", "nan", "na", "n/a", "null", "none"})
# In seconds, not nanoseconds: subtracting a ns epoch would overflow for dates before 1677 or after 2262.
EPOCH = pd.Timestamp(0, tz="UTC").as_unit("s")
INTERACTION_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
ITEM_COLUMNS = ["item_id", "title", "genres"]


@dataclass(frozen=True)
class RawData:
    """Interactions (user_id, item_id, rating, timestamp) and item metadata (item_id, title, genres)."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    format: str
    source: str


# ----------------------------------------------------------------------------- reading files
def check_file(path: Path, max_bytes: int | None) -> int:
    """Raise DataError unless ``path`` is a regular, non-empty file within ``max_bytes``."""
    if not path.exists():
        raise DataError(f"{path}: file does not exist")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path}: file is empty (0 bytes)")
    if max_bytes is not None and size > max_bytes:
        raise DataError(f"{path}: file is {size} bytes, larger than the limit of {max_bytes} bytes")
    return size


def read_text(path: Path, max_bytes: int | None = None) -> str:
    """The decoded text of a file (UTF-8, else Latin-1); DataError for binary or empty files."""
    check_file(path, max_bytes)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file: {exc}") from exc
    if raw.startswith(b"PAR1"):
        raise DataError(f"{path}: this is a Parquet file, not text; load it with format='parquet'")
    if b"\x00" in raw[:65536]:
        raise DataError(f"{path}: binary data (NUL bytes), not a text table")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        log.info("%s is not valid UTF-8 (byte %d); decoding as Latin-1", path, exc.start)
        text = raw.decode("latin-1")
    sample = text[:65536]
    controls = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\t\n\r\f") or 127 <= ord(ch) < 160)
    if controls > 0.05 * len(sample):
        raise DataError(f"{path}: binary data ({controls} control characters in the first "
                        f"{len(sample)}), not a text table")
    if not text.strip():
        raise DataError(f"{path}: file is empty (only whitespace)")
    return text


def sniff_sep(text: str) -> str:
    """Pick the delimiter among comma, tab, semicolon and pipe that splits lines most consistently;
    runs of whitespace (:data:`WHITESPACE`) when none of them splits the first line but spaces do."""
    lines = [ln for ln in text[:65536].splitlines() if ln.strip()]
    if len(text) > 65536 and len(lines) > 1:
        lines = lines[:-1]  # the last sampled line may be cut short
    lines = lines[:50]
    best, best_score = ",", (-1.0, 0)
    for sep in SEPARATORS:
        counts = [len(row) for row in csv.reader(lines, delimiter=sep)]
        if not counts or counts[0] < 2:
            continue
        score = (sum(c == counts[0] for c in counts) / len(counts), counts[0])
        if score > best_score:
            best, best_score = sep, score
    if best_score[1] == 0 and sequences.whitespace_splits(text):
        return WHITESPACE
    return best


def _name(sep: str) -> str:
    return {"\t": "tab", ",": "','", ";": "';'", "|": "'|'", WHITESPACE: "whitespace"}.get(sep, repr(sep))


def read_table(text: str, source: str, sep: str, *, header: bool = True,
               quoting: int = csv.QUOTE_MINIMAL) -> pd.DataFrame:
    """Parse delimited text into a frame of stripped strings ('' for empty cells).

    Blank lines are dropped but the index keeps each row's position, so the line of row ``i`` is
    ``i + 2`` with a header and ``i + 1`` without. Raises DataError for parse errors, a header
    without rows, or a single column when a wrong delimiter seems to be the cause.
    """
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, header=0 if header else None, dtype=str,
                         na_filter=False, skip_blank_lines=False, quoting=quoting)
    except Exception as exc:  # pandas raises several types; report them all the same way
        raise DataError(f"{source}: cannot parse as {_name(sep)}-separated text: {str(exc).strip()}") from exc
    if header and not isinstance(df.index, pd.RangeIndex):
        # pandas silently makes the first field(s) an index when every data line has more fields than the
        # header, which would shift every column by one: refuse instead.
        raise DataError(f"{source}: the data lines have more fields than the {df.shape[1]} columns of the "
                        f"header {[str(c).strip() for c in df.columns][:10]}; check the header and the delimiter")
    df.columns = [str(c).strip() for c in df.columns]
    unique_columns(df, source)
    if df.shape[1] == 1:
        first = text.lstrip().splitlines()[0]
        others = [s for s in SEPARATORS if s != sep and s in first]
        if not others and sep != WHITESPACE and sequences.whitespace_splits(first):
            others = [WHITESPACE]
        hint = f"; the file seems to use {_name(others[0])} as delimiter" if others else ""
        raise DataError(f"{source}: only one column was found with delimiter {_name(sep)} "
                        f"(first line: {first[:80]!r}){hint}")
    df = df.apply(lambda col: col.str.strip())
    df = df[df.ne("").any(axis=1)]
    if df.empty:
        raise DataError(f"{source}: {'header only, ' if header else ''}no data rows")
    return df


def unique_columns(df: pd.DataFrame, source: str) -> None:
    """DataError when two columns share a name (after stripping): ``df[name]`` would be a frame."""
    dup = df.columns[df.columns.duplicated()]
    if len(dup):
        raise DataError(f"{source}: column {str(dup[0])!r} appears more than once in the header")


def read_parquet(path: Path, max_bytes: int | None = None) -> pd.DataFrame:
    """Read a Parquet file; DataError if unreadable or without rows."""
    check_file(path, max_bytes)
    try:
        import pyarrow.parquet as pq

        df = pq.read_table(path).to_pandas()
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise DataError(f"{path}: cannot read as Parquet: {exc}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    unique_columns(df, str(path))
    if df.empty:
        raise DataError(f"{path}: no data rows (columns: {list(df.columns)})")
    return df.reset_index(drop=True)


# ----------------------------------------------------------------------------- columns
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


def read_interactions_file(path: Path, fmt: str, max_bytes: int | None, sep: str | None,
                           no_header: bool = False, **cols: str | None) -> pd.DataFrame:
    """Interactions from a generic CSV-like, ``sequences`` or Parquet file.

    A csv file whose first line is all numbers, a ``sequences`` file, or any of them with ``no_header``,
    is read without a header, its columns named by position (:func:`sequences.positional_columns`).
    """
    if fmt == "parquet":
        return build_interactions(read_parquet(path, max_bytes), str(path), line_base=1, unit="row",
                                  **cols)
    text = read_text(path, max_bytes)
    sep = sep or sniff_sep(text)
    header = not no_header and sequences.has_header(text, sep)
    df = read_table(text, str(path), sep, header=header)
    if header and fmt == "sequences":
        sequences.header_skipped(str(path), text)
    if not header or fmt == "sequences":
        df.columns = sequences.positional_columns(df.shape[1], str(path), 1)
    return build_interactions(df, str(path), line_base=2 if header else 1, **cols)


# ----------------------------------------------------------------------------- formats
def _header_columns(path: Path) -> list[str]:
    """The column names of a CSV-like or Parquet file ([] if unreadable)."""
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            return [str(n) for n in pq.read_schema(path).names]
        with path.open("rb") as fh:
            head = fh.read(65536)
        text = head.decode("utf-8-sig", errors="replace")
        return sequences.split_line(sequences.first_line(text), sniff_sep(text))
    except Exception:  # any unreadable file simply does not count as a table
        return []


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
        columns = _header_columns(path)
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


def _short(path: object, limit: int = 200) -> str:
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def resolve_path(text: str) -> Path:
    """A dataset path typed by a user: ``~`` expanded, made absolute with links resolved, and checked
    to be an existing, readable folder or regular file. Every problem is a DataError (a NUL byte, a
    name too long, an unknown ``~user``, a link loop, a device or pipe that would block a read)."""
    shown = str(text).strip()
    if not shown:
        raise DataError("dataset path: empty; type the path of a dataset folder or file")
    if "\x00" in shown:
        raise DataError(f"{_short(shown)!r}: the path contains a NUL character")
    try:
        p = Path(shown).expanduser().resolve(strict=True)
    except FileNotFoundError as exc:
        raise DataError(f"{_short(shown)}: path does not exist") from exc
    except (OSError, RuntimeError, ValueError) as exc:  # RuntimeError: unknown ~user, link loop
        raise DataError(f"{_short(shown)}: cannot use this path: {exc}") from exc
    if not (p.is_dir() or p.is_file()):
        raise DataError(f"{p}: neither a folder nor a regular file")
    if not os.access(p, os.R_OK | (os.X_OK if p.is_dir() else 0)):
        raise DataError(f"{p}: not readable (permission denied)")
    return p


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
        raise DataError(f"{_short(path)}: cannot use this path: {exc}") from exc
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
    from distill_core.data import movielens  # imports this module, so not at the top

    if fmt in ("ml-100k", "ml-1m", "ml-latest"):
        folder = _data_folder(p)
        reader = {"ml-100k": movielens.load_ml100k, "ml-1m": movielens.load_ml1m,
                  "ml-latest": movielens.load_mllatest}[fmt]
        return (*reader(folder, max_bytes), fmt)
    if fmt == "recbole":
        target = _data_folder(p) if p.is_dir() else p
        return (*movielens.load_recbole(target, max_bytes, **cols), fmt)
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
        return interactions, movielens.empty_items(), fmt
    return interactions, movielens.read_items_file(item_file, max_bytes), fmt

"""Reading table files: CSV/TSV/TXT text (delimiter sniffed) and Parquet, into frames of raw cells.

Every reader of a format builds on these: a file is checked (exists, regular, not empty, within
``max_bytes``), decoded (UTF-8, else Latin-1; binary refused), split on its delimiter and handed to
:mod:`distill_core.data.columns`, which recognises the columns and validates the cells. The generic
formats (``csv``, ``sequences``, ``parquet``) and item tables are read here in full; whether a first
line is a header, and the column names of a headerless file, are :mod:`distill_core.data.sequences`'
decisions. Every problem is a :class:`DataError` naming the file.
"""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import pandas as pd

from distill_core.data import sequences
from distill_core.data.columns import build_interactions, build_items
from distill_core.data.sequences import WHITESPACE
from distill_core.errors import DataError

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
SEPARATORS = (",", "\t", ";", "|")


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


def header_columns(path: Path) -> list[str]:
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


def read_items_file(path: Path, max_bytes: int | None = None, sep: str | None = None) -> pd.DataFrame:
    """An item metadata table (CSV or Parquet) with item id and title and/or genres."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return build_items(read_parquet(path, max_bytes), str(path), line_base=1, unit="row")
    text = read_text(path, max_bytes)
    return build_items(read_table(text, str(path), sep or sniff_sep(text)), str(path), line_base=2)

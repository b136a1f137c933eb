"""Headerless ``user item [timestamp]`` files: the layout of the SASRec, BERT4Rec and Caser datasets.

Those files (for example SASRec's ``data/ml-1m.txt``) hold one interaction per line, two
space-separated integer ids and no header, each user's lines in chronological order, so the file
order *is* the time order when there is no timestamp column. Columns are named by position:

=========  ======================================================
fields     read as
=========  ======================================================
2          user item
3          user item timestamp
4          user item rating timestamp (MovieLens ``u.data`` order)
=========  ======================================================

A header is told from data by its content: a first line whose fields are all numbers is data.
This module only decides the layout (header or not, whitespace delimiter, column names); reading and
validating the cells is :mod:`distill_core.data.tables`' job, which imports this module.
"""
from __future__ import annotations

import csv
import logging
import re

from distill_core.errors import DataError

log = logging.getLogger(__name__)

WHITESPACE = r"\s+"  # runs of spaces and tabs, as pandas reads them (leading and trailing ones ignored)
POSITIONAL = {2: ["user_id", "item_id"], 3: ["user_id", "item_id", "timestamp"],
              4: ["user_id", "item_id", "rating", "timestamp"]}
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def first_line(text: str) -> str:
    """The first line that is not blank ('' if there is none)."""
    return next((ln for ln in text[:65536].splitlines() if ln.strip()), "")


def split_line(line: str, sep: str) -> list[str]:
    """The stripped fields of one line for delimiter ``sep`` (:data:`WHITESPACE` or one character)."""
    if sep == WHITESPACE:
        return line.split()
    return [f.strip() for f in next(csv.reader([line], delimiter=sep), [])]


def whitespace_splits(text: str) -> bool:
    """Whether whitespace splits the first line into two or more fields."""
    return len(first_line(text).split()) >= 2


def is_data_row(fields: list[str]) -> bool:
    """A header names columns, so a row of two or more fields that are all finite numbers is data."""
    return len(fields) >= 2 and all(_NUMBER.fullmatch(f) for f in fields)


def has_header(text: str, sep: str) -> bool:
    """Whether the first non-blank line of ``text`` is a header (not all numbers)."""
    return not is_data_row(split_line(first_line(text), sep))


def looks_like_sequences(text: str, sep: str) -> bool:
    """A headerless table of numbers with 2 to 4 fields: what ``format="auto"`` reads as ``sequences``."""
    fields = split_line(first_line(text), sep)
    return is_data_row(fields) and len(fields) in POSITIONAL


def positional_columns(n_fields: int, source: str, line: int) -> list[str]:
    """The column names of a headerless table by the number of fields (see the module docstring)."""
    if n_fields not in POSITIONAL:
        raise DataError(f"{source}: line {line}: a file without a header needs 2 (user item), 3 (user item "
                        f"timestamp) or 4 (user item rating timestamp) fields, found {n_fields}")
    return POSITIONAL[n_fields]


def header_skipped(source: str, text: str) -> None:
    """Say that the first line of a ``sequences`` file was taken for a header, and how to keep it."""
    log.warning("%s: the first line %r is not all numbers, so it is read as a header and skipped; "
                "pass no_header=True (--no-header) to read it as data", source, first_line(text)[:80])

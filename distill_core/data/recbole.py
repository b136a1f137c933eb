"""Reader for RecBole atomic files: ``NAME.inter`` (required) and ``NAME.item`` (optional).

The files are tab-separated with typed headers (``user_id:token``, ``rating:float``, ``genre:token_seq``);
the ``:type`` suffixes are dropped before the columns are recognised, and a ``token_seq`` genre column is
split on spaces. See RecBole's "Atomic Files" documentation. Returns ``(interactions, items)`` frames in
the standard layout of :class:`distill_core.data.columns.RawData`; problems raise :class:`DataError`.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import pandas as pd

from distill_core.data.columns import Frames, build_interactions, build_items, empty_items
from distill_core.data.tables import read_table, read_text, unique_columns
from distill_core.errors import DataError

log = logging.getLogger(__name__)


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

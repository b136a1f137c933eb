"""What a user hands the Data page, made safe before a loader sees it: an uploaded file and a typed path.

An upload's name comes from the browser, so it is reduced to a plain file name and written into a private
temporary folder (never beside it, never over anything); a typed path is expanded, resolved and checked
to be a readable folder or regular file. The engine's loaders take any path they are given; this
sanitising is the dashboard's, which is why it lives here and not in ``distill_core``.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from distill_core import Dataset, DataError, RecDistillError, load_dataset
from distill_core.data.loaders import shorten


def safe_name(name: str) -> str:
    """An uploaded file's name reduced to ``[A-Za-z0-9._-]`` without folders; ``upload.csv`` when nothing
    of it is left ("" or ".." would name the temporary folder or its parent, not a file)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name)
    return safe if safe.strip(".") else "upload.csv"


def load_upload(name: str, data: bytes) -> Dataset:
    """Load uploaded bytes: written under their own (sanitised) name in a temporary folder, loaded,
    removed; messages name the file, not the temporary folder."""
    safe = safe_name(name)
    with tempfile.TemporaryDirectory(prefix="recdistill-upload-") as d:
        path = Path(d) / safe
        path.write_bytes(data)
        try:
            return load_dataset(path, name=Path(safe).stem)
        except RecDistillError as e:
            raise type(e)(str(e).replace(f"{d}/", "")) from e


def resolve_path(text: str) -> Path:
    """A dataset path typed by a user: ``~`` expanded, made absolute with links resolved, and checked
    to be an existing, readable folder or regular file. Every problem is a DataError (a NUL byte, a
    name too long, an unknown ``~user``, a link loop, a device or pipe that would block a read)."""
    shown = str(text).strip()
    if not shown:
        raise DataError("dataset path: empty; type the path of a dataset folder or file")
    if "\x00" in shown:
        raise DataError(f"{shorten(shown)!r}: the path contains a NUL character")
    try:
        p = Path(shown).expanduser().resolve(strict=True)
    except FileNotFoundError as exc:
        raise DataError(f"{shorten(shown)}: path does not exist") from exc
    except (OSError, RuntimeError, ValueError) as exc:  # RuntimeError: unknown ~user, link loop
        raise DataError(f"{shorten(shown)}: cannot use this path: {exc}") from exc
    if not (p.is_dir() or p.is_file()):
        raise DataError(f"{p}: neither a folder nor a regular file")
    if not os.access(p, os.R_OK | (os.X_OK if p.is_dir() else 0)):
        raise DataError(f"{p}: not readable (permission denied)")
    return p

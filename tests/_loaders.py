"""Helpers of the loader tests (test_loaders.py, test_movielens.py, test_recbole.py, test_sequences.py)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distill_core.data import RawData
from distill_core.errors import DataError


def write(path: Path, content: str | bytes, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode(encoding)
    path.write_bytes(content)
    return path


def assert_standard(raw: RawData) -> None:
    assert list(raw.interactions.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert list(raw.items.columns) == ["item_id", "title", "genres"]
    assert raw.interactions["rating"].dtype == np.float64
    assert raw.interactions["timestamp"].dtype == np.float64
    for col in ("user_id", "item_id"):
        assert all(isinstance(v, str) for v in raw.interactions[col])
    assert all(isinstance(v, str) for v in raw.items["item_id"])


def rows(df: pd.DataFrame) -> list[tuple]:
    return [tuple(None if isinstance(v, float) and math.isnan(v) else v for v in r)
            for r in df.itertuples(index=False)]


def raises(match_parts: list[str], fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    for part in match_parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message

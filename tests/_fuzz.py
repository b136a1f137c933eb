"""The harness and the strategies of the fuzzed loader tests (test_fuzz_loaders.py, test_fuzz_formats.py).

``outcome`` runs one load under a hang alarm: it must end in DataError with a message, or in a valid
dataset (its invariants checked) that splits or refuses with DataError. ``COUNTS`` tallies the cases and
outcomes of both files; test_fuzz_loaders.py's last test prints them and checks that enough cases ran.
"""
from __future__ import annotations

import os
import signal
import string
import tempfile
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow  # noqa: F401  imported once here so the first example is not slowed by it
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from distill_core.data import split_dataset
from distill_core.data.dataset import Dataset
from distill_core.errors import DataError


HANG_S = 20.0  # an example that takes this long is a hang (the hypothesis deadline below is 5 s)
FUZZ = settings(max_examples=int(os.environ.get("RECDISTILL_FUZZ_EXAMPLES", "120")), deadline=timedelta(seconds=5), derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
COUNTS: Counter[str] = Counter()
CATCH_ALL: list[str] = []  # messages of errors that only load_raw's catch-all turned into DataError


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that no loader's ``except Exception`` swallows it."""


@contextmanager
def no_hang(seconds: float = HANG_S):
    def on_alarm(signum, frame):
        raise Hang(f"a load took more than {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check_dataset(ds: Dataset) -> None:
    """Invariants of every dataset a loader lets through."""
    assert ds.n_users >= 1 and ds.n_items >= 1 and ds.n_interactions >= 1
    assert len(ds.users) == len(ds.items) == len(ds.timestamps) == ds.n_interactions
    assert ds.users.dtype == np.int64 and ds.items.dtype == np.int64
    assert set(np.unique(ds.users)) == set(range(ds.n_users))  # contiguous, every user used
    assert set(np.unique(ds.items)) == set(range(ds.n_items))
    assert np.all(np.diff(ds.users) >= 0)  # grouped by user
    assert len(set(zip(ds.users.tolist(), ds.items.tolist()))) == ds.n_interactions  # duplicates collapsed
    assert len(set(ds.user_ids.tolist())) == ds.n_users and len(set(ds.item_ids.tolist())) == ds.n_items
    assert all(isinstance(u, str) and u for u in ds.user_ids) and all(isinstance(i, str) and i for i in ds.item_ids)
    assert len(ds.titles) == len(ds.genres) == ds.n_items
    assert ds.order_source == ("timestamps" if ds.has_timestamps else "file order")
    if ds.has_timestamps:
        assert np.isfinite(ds.timestamps).all()
        for u in range(ds.n_users):  # time order within each user
            assert np.all(np.diff(ds.timestamps[ds.users == u]) >= 0)


def outcome(kind: str, load: Callable[[], Dataset]) -> str:
    """Run ``load``: a DataError with a message, or a valid dataset that splits or refuses with DataError."""
    COUNTS[f"{kind}:cases"] += 1
    with no_hang():
        try:
            ds = load()
        except DataError as e:
            assert str(e).strip(), "a DataError without a message"
            COUNTS[f"{kind}:DataError"] += 1
            if isinstance(e.__cause__, Exception) and not isinstance(e.__cause__, (DataError, OSError)) \
                    and "cannot load as" in str(e):  # load_raw's catch-all: an unforeseen error, worth a look
                COUNTS[f"{kind}:DataError from the catch-all"] += 1
                CATCH_ALL.append(str(e)[:300])
            return "error"
        check_dataset(ds)
        try:
            sp = split_dataset(ds)
        except DataError as e:
            assert "too small to split" in str(e)
            COUNTS[f"{kind}:valid, too small to split"] += 1
            return "valid"
        assert len(sp.train_items) + len(sp.valid_items) + len(sp.test_items) == ds.n_interactions
    COUNTS[f"{kind}:valid"] += 1
    return "valid"


@contextmanager
def folder():
    with tempfile.TemporaryDirectory(prefix="fuzz-") as d:
        yield Path(d)


# ----------------------------------------------------------------------------- strategies
ID_POOL = ["1", "2", "3", "u", "i", "007", "1.0", " 4 ", "é", "ユーザー"]
ids = st.one_of(st.sampled_from(ID_POOL), st.integers(-5, 10**12).map(str),
                st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
                st.text(string.ascii_letters, min_size=300, max_size=3000))  # very long ids
numbers = st.one_of(st.integers(-10**10, 10**10).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str),
                    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "NULL", "none", "abc", "1e309", "4,5", "0x1A"]))
stamps = st.one_of(numbers, st.sampled_from(["2020-01-01", "2020-02-30", "1969-12-31T23:59:59", "-1", "-86400",
                                             "2021-13-01", "yesterday"]))
# well-formed cells: the same files without the noise, so that valid datasets are reached too (few users,
# so that users have the 3 interactions a split needs; very long and unicode ids among them)
clean_users = st.one_of(st.integers(1, 4).map(str), st.sampled_from(["ü1", "ユーザー2", "a" * 500, "b" * 3000]))
clean_items = st.one_of(st.integers(1, 40).map(str), st.text(string.ascii_letters + "éß中", min_size=1, max_size=8),
                        st.text(string.ascii_letters, min_size=300, max_size=1000))
clean_numbers = st.one_of(st.integers(0, 5).map(str), st.floats(-1e6, 1e6).map(lambda x: f"{x:.3f}"))
clean_stamps = st.integers(-10**9, 10**10).map(str)  # negative timestamps included
SPECIALS = ["nan", "NaN", "", "inf", "-inf", "1e400"]  # missing (allowed) or non-finite (refused)
USER_HEADS = ["user_id", "userId", "user", "uid", "USER_ID", "visitorid"]
ITEM_HEADS = ["item_id", "itemId", "movieId", "item", "asin", "product_id"]
RATING_HEADS = ["rating", "score", "stars"]
TIME_HEADS = ["timestamp", "ts", "date", "time"]
SEPS = [",", "\t", ";", "|", " ", "::"]


@st.composite
def table_text(draw: st.DrawFn, heads: tuple[str, ...] | None = None, sep: str | None = None) -> str:
    """A delimited table with a random header and cells, duplicate rows; half of the tables are well formed
    (one delimiter, cells without delimiters), the others get noisy cells, ragged lines, mixed delimiters."""
    clean = draw(st.booleans())
    if heads is None and clean:
        cols = [draw(st.sampled_from(USER_HEADS)), draw(st.sampled_from(ITEM_HEADS))]
        cols += draw(st.lists(st.sampled_from([RATING_HEADS[0], TIME_HEADS[0], "extra"]), max_size=3, unique=True))
        cols = draw(st.permutations(cols))
    elif heads is None:
        cols = []
        for pool, p_keep in ((USER_HEADS, 0.9), (ITEM_HEADS, 0.9), (RATING_HEADS, 0.6), (TIME_HEADS, 0.6)):
            if draw(st.floats(0, 1)) < p_keep:
                cols.append(draw(st.sampled_from(pool)))
        cols += draw(st.lists(st.sampled_from(["extra", "title", "genres", "", "user_id"]), max_size=2))
        cols = draw(st.permutations(cols))
    else:
        cols = list(heads)
    sep = sep or draw(st.sampled_from(SEPS[:4] if clean else SEPS))
    def strategy(col: str) -> st.SearchStrategy[str]:
        name = col.split(":")[0]
        if name in USER_HEADS:
            return clean_users if clean else ids
        if name in ITEM_HEADS:
            return clean_items if clean else ids
        if name in TIME_HEADS:
            return (iso if iso_dates else clean_stamps) if clean else stamps
        return clean_numbers if clean else numbers

    iso_dates = draw(st.floats(0, 1)) < 0.2
    iso = st.dates().map(str)
    rows = draw(st.lists(st.tuples(*[strategy(c) for c in cols]) if cols else st.just(()),
                         min_size=1 if clean else 0, max_size=40 if clean else 25))
    numeric = [j for j, c in enumerate(cols) if c.split(":")[0] in RATING_HEADS + TIME_HEADS]
    if clean and rows and numeric and draw(st.floats(0, 1)) < 0.3:  # one missing or non-finite value
        r, j = draw(st.integers(0, len(rows) - 1)), draw(st.sampled_from(numeric))
        rows[r] = rows[r][:j] + (draw(st.sampled_from(SPECIALS)),) + rows[r][j + 1:]
    if rows and draw(st.booleans()):  # duplicate rows
        rows += draw(st.lists(st.sampled_from(rows), max_size=10))
    if not clean and draw(st.floats(0, 1)) < 0.15:  # a ragged line: one cell more or less
        rows.append(tuple(rows[0][:-1]) if rows and rows[0] else ("x",) * (len(cols) + 1))
    mixed = not clean and draw(st.floats(0, 1)) < 0.1  # another delimiter on some lines
    lines = [sep.join(cols)] + [(draw(st.sampled_from(SEPS)) if mixed else sep).join(map(str, r)) for r in rows]
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n", "\n\n"]))


def encode(draw: st.DrawFn, text: str) -> bytes:
    data = text.encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"])), errors="replace")
    if data and draw(st.floats(0, 1)) < 0.2:  # truncated at any byte
        data = data[:draw(st.integers(0, len(data)))]
    return data


NAMES = ["data.csv", "data.tsv", "data.txt", "data.parquet", "data.pq", "x.inter", "u.data", "ratings.dat",
         "ratings.csv", "movies.csv", "noext", "data.CSV"]
FORMATS = ["auto", "csv", "sequences", "parquet", "movielens", "ml-100k", "ml-1m", "ml-latest", "recbole"]


def _lines(draw: st.DrawFn, n_fields: int, sep: str, field: st.SearchStrategy[str]) -> str:
    """Headerless lines of ``n_fields`` fields (well formed), or of noisy fields and counts."""
    if draw(st.booleans()):
        row = st.tuples(st.integers(1, 6).map(str), st.integers(1, 30).map(str), st.integers(1, 5).map(str),
                        st.integers(-10**6, 10**9).map(str))
        rows = draw(st.lists(row, min_size=1, max_size=40))
    else:
        rows = draw(st.lists(st.lists(field, min_size=max(n_fields - 1, 0), max_size=n_fields + 1), max_size=20))
    return "\n".join(sep.join(r) for r in rows)


small_ints = st.one_of(st.integers(-3, 30).map(str), numbers, st.sampled_from(["1", "2", "3"]))

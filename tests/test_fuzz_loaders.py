"""Property-based tests of every loader: whatever the bytes, a load ends in DataError with a message,
or in a valid dataset; never another exception, never a hang.

Covered: random byte strings under every recognised file name, generated CSV/TSV tables (wrong
delimiters, missing or extra columns, unicode and very long ids, NaN/inf/garbage ratings, negative or
ISO timestamps, duplicate rows, one user, one item, 0 rows, truncation at any byte), Parquet files of
random dtypes (also truncated), headerless ``user item [timestamp]`` files (SASRec layout), MovieLens
ml-100k / ml-1m / ml-latest folders, RecBole atomic folders and format auto-detection over random folder
trees. A valid dataset is checked for its invariants
and then split (which may also only end in DataError). ``COUNTS`` tallies the cases and outcomes; the
last test prints them (``pytest -s``) and checks that enough cases ran.
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
import pandas as pd
import pyarrow  # noqa: F401  imported once here so the first example is not slowed by it
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill_core.data import detect_format, load_dataset, split_dataset
from distill_core.data.dataset import Dataset
from distill_core.data.loaders import load_raw
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


# ----------------------------------------------------------------------------- tests
NAMES = ["data.csv", "data.tsv", "data.txt", "data.parquet", "data.pq", "x.inter", "u.data", "ratings.dat",
         "ratings.csv", "movies.csv", "noext", "data.CSV"]
FORMATS = ["auto", "csv", "sequences", "parquet", "movielens", "ml-100k", "ml-1m", "ml-latest", "recbole"]


@FUZZ
@given(data=st.binary(max_size=3000), name=st.sampled_from(NAMES), fmt=st.sampled_from(FORMATS),
       via_folder=st.booleans())
def test_random_bytes_under_any_name_and_format(data: bytes, name: str, fmt: str, via_folder: bool) -> None:
    with folder() as d:
        (d / name).write_bytes(data)
        target = d if via_folder else d / name
        outcome("random bytes", lambda: load_dataset(target, fmt))


@FUZZ
@given(st.data())
def test_generated_csv_tables(data: st.DataObject) -> None:
    raw = encode(data.draw, data.draw(table_text()))
    name = data.draw(st.sampled_from(["t.csv", "t.tsv", "t.txt"]))
    sep = data.draw(st.sampled_from([None, None, ",", "\t", ";"]))
    with folder() as d:
        (d / name).write_bytes(raw)
        outcome("generic csv", lambda: load_dataset(d / name, "csv", sep=sep))


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 20))
    columns = {}
    for head in draw(st.lists(st.sampled_from(USER_HEADS[:3] + ITEM_HEADS[:3] + RATING_HEADS[:1] + TIME_HEADS[:1]
                                              + ["title"]), min_size=1, max_size=5, unique=True)):
        kind = draw(st.sampled_from(["int", "float", "str", "datetime", "bool", "none"]))
        if kind == "int":
            col = draw(st.lists(st.integers(-2**62, 2**62), min_size=n, max_size=n))
        elif kind == "float":
            col = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n))
        elif kind == "str":
            col = draw(st.lists(st.one_of(ids, st.none()), min_size=n, max_size=n))
        elif kind == "datetime":
            col = pd.to_datetime(draw(st.lists(st.integers(-2**40, 2**40), min_size=n, max_size=n)), unit="s")
        elif kind == "bool":
            col = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        else:
            col = [None] * n
        columns[head] = col
    return pd.DataFrame(columns)


@FUZZ
@given(df=frames(), cut=st.one_of(st.none(), st.floats(0, 1)), via_folder=st.booleans())
def test_generated_parquet_files(df: pd.DataFrame, cut: float | None, via_folder: bool) -> None:
    with folder() as d:
        path = d / "t.parquet"
        df.to_parquet(path)
        if cut is not None:  # truncated file
            raw = path.read_bytes()
            path.write_bytes(raw[:int(cut * len(raw))])
        outcome("parquet", lambda: load_dataset(d if via_folder else path, "auto"))


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


@FUZZ
@given(st.data())
def test_headerless_sequence_files(data: st.DataObject) -> None:
    """SASRec/BERT4Rec-style ``user item [timestamp]`` lines: runs of spaces or tabs, 2 or 3 fields, an
    optional header; well formed ones keep every line."""
    draw = data.draw
    sep = draw(st.sampled_from([" ", " ", "\t", "  ", " \t"]))
    n_fields = draw(st.sampled_from([2, 3]))
    text = _lines(draw, n_fields, sep, small_ints)
    if text and draw(st.booleans()):  # the fixed layouts have 4 fields: keep the first 2 or 3
        text = "\n".join(sep.join(line.split(sep)[:n_fields]) for line in text.split("\n"))
    if draw(st.floats(0, 1)) < 0.2:
        text = sep.join(["user", "item", "timestamp"][:n_fields]) + "\n" + text
    name = draw(st.sampled_from(["seq.txt", "seq.csv", "seq.tsv"]))
    fmt = draw(st.sampled_from(["auto", "sequences", "csv"]))
    no_header = draw(st.booleans())
    with folder() as d:
        (d / name).write_bytes(encode(draw, text))
        outcome("sequences", lambda: load_dataset(d / name, fmt, no_header=no_header))


@FUZZ
@given(st.data())
def test_movielens_100k_folders(data: st.DataObject) -> None:
    draw = data.draw
    sep = draw(st.sampled_from(["\t", "\t", ",", " "]))
    udata = _lines(draw, 4, sep, small_ints)
    if draw(st.booleans()):  # a well-formed u.item
        flags = st.lists(st.sampled_from(["0", "1"]), min_size=19, max_size=19).map("|".join)
        uitem_line = st.tuples(st.integers(1, 40).map(str), clean_items, flags)
        lines = st.lists(uitem_line.map(lambda t: f"{t[0]}|{t[1]}|01-Jan-1995||http://x|{t[2]}"), max_size=10)
    else:
        flags = st.lists(st.sampled_from(["0", "1", "2", ""]), min_size=18, max_size=20).map("|".join)
        uitem_line = st.tuples(small_ints, ids, flags).map(lambda t: f"{t[0]}|{t[1]}|01-Jan-1995||http://x|{t[2]}")
        lines = st.lists(st.one_of(uitem_line, ids), max_size=10)
    uitem = "\n".join(draw(lines))
    with folder() as d:
        (d / "u.data").write_bytes(encode(draw, udata))
        if draw(st.booleans()):
            (d / "u.item").write_bytes(encode(draw, uitem))
        fmt = draw(st.sampled_from(["auto", "movielens", "ml-100k"]))
        outcome("ml-100k", lambda: load_dataset(d, fmt))


@FUZZ
@given(st.data())
def test_movielens_1m_folders(data: st.DataObject) -> None:
    draw = data.draw
    ratings = _lines(draw, 4, draw(st.sampled_from(["::", "::", ":", "\t"])), small_ints)
    movies = "\n".join(draw(st.lists(st.tuples(small_ints, ids, ids).map("::".join), max_size=10)))
    with folder() as d:
        (d / "ratings.dat").write_bytes(encode(draw, ratings))
        if draw(st.booleans()):
            (d / "movies.dat").write_bytes(encode(draw, movies))
        fmt = draw(st.sampled_from(["auto", "movielens", "ml-1m"]))
        outcome("ml-1m", lambda: load_dataset(d, fmt))


@FUZZ
@given(st.data())
def test_movielens_latest_folders(data: st.DataObject) -> None:
    draw = data.draw
    heads = draw(st.sampled_from([("userId", "movieId", "rating", "timestamp"), ("userId", "movieId", "rating"),
                                  ("userId", "movieId", "timestamp", "rating", "extra"), ("a", "b", "c", "d")]))
    ratings = draw(table_text(heads, sep=","))
    movies = draw(table_text(("movieId", "title", "genres"), sep=","))
    with folder() as d:
        (d / "ratings.csv").write_bytes(encode(draw, ratings))
        if draw(st.booleans()):
            (d / "movies.csv").write_bytes(encode(draw, movies))
        fmt = draw(st.sampled_from(["auto", "movielens", "ml-latest"]))
        outcome("ml-latest", lambda: load_dataset(d, fmt))


RECBOLE_HEADS = ["user_id:token", "item_id:token", "rating:float", "timestamp:float", "user_id", "item_id:float",
                 "extra:token_seq", "uid:token"]


@FUZZ
@given(st.data())
def test_recbole_atomic_folders(data: st.DataObject) -> None:
    draw = data.draw
    heads = draw(st.one_of(st.just(RECBOLE_HEADS[:4]), st.just(RECBOLE_HEADS[:2]),
                           st.lists(st.sampled_from(RECBOLE_HEADS), min_size=1, max_size=5, unique=True)))
    inter = draw(table_text(tuple(heads), sep=draw(st.sampled_from(["\t", "\t", ",", " "]))))
    item = draw(table_text(("item_id:token", "movie_title:token_seq", "genre:token_seq"), sep="\t"))
    with folder() as d:
        sub = d / "ds"
        sub.mkdir()
        (sub / "ds.inter").write_bytes(encode(draw, inter))
        if draw(st.booleans()):
            (sub / "ds.item").write_bytes(encode(draw, item))
        if draw(st.floats(0, 1)) < 0.1:
            (sub / "other.inter").write_bytes(b"user_id:token\titem_id:token\n1\t2\n")
        target = draw(st.sampled_from([d, sub, sub / "ds.inter"]))
        fmt = draw(st.sampled_from(["auto", "recbole"]))
        outcome("recbole", lambda: load_dataset(target, fmt))


TREE_NAMES = NAMES + ["ratings.dat", "u.item", "movies.dat", "a.inter", "b.inter", "items.csv", ".hidden.csv", "README"]


@FUZZ
@given(st.data())
def test_format_detection_on_random_folder_trees(data: st.DataObject) -> None:
    draw = data.draw
    files = draw(st.dictionaries(st.sampled_from(TREE_NAMES),
                                 st.one_of(st.binary(max_size=200), table_text().map(str.encode)), max_size=5))
    nested = draw(st.booleans())
    with folder() as d:
        root = d / "nested" if nested else d
        root.mkdir(exist_ok=True)
        for name, content in files.items():
            (root / name).write_bytes(content)
        if draw(st.floats(0, 1)) < 0.2:
            (root / "subdir.csv").mkdir()  # a folder named like a table
        COUNTS["detection:cases"] += 1
        with no_hang():
            try:
                fmt = detect_format(d)
            except DataError as e:
                assert str(e).strip()
                COUNTS["detection:DataError"] += 1
            else:
                assert fmt in ("csv", "sequences", "parquet", "ml-100k", "ml-1m", "ml-latest", "recbole")
                COUNTS["detection:recognised"] += 1
        outcome("auto folder", lambda: load_dataset(d))


def test_a_loader_error_of_another_type_would_fail_these_tests(monkeypatch) -> None:
    """The harness itself: an exception that is not a DataError escapes ``outcome`` (so a bug shows)."""
    def broken(*args, **kwargs):
        raise KeyError("boom")
    monkeypatch.setattr("distill_core.data.loaders._load", broken)
    with folder() as d:
        (d / "t.csv").write_text("user,item\n1,2\n")
        # load_raw converts unexpected errors into DataError naming the file and the original type
        with pytest.raises(DataError, match="KeyError"):
            load_raw(d / "t.csv")
    with pytest.raises(KeyError):
        outcome("harness", lambda: (_ for _ in ()).throw(KeyError("not a DataError")))
    with pytest.raises(Hang):
        with no_hang(0.05):
            import time
            time.sleep(1)
    COUNTS.pop("harness:cases", None)


# ----------------------------------------------------------------------------- regressions the fuzzing found
def test_lines_with_more_fields_than_the_header_are_refused_not_shifted() -> None:
    """pandas made the first field an index when every line had one field more than the header, so
    user_id silently held the item, item_id the rating, ..."""
    with folder() as d:
        (d / "t.csv").write_text("user_id,item_id,rating,timestamp\n1,2,3,4,5\n6,7,8,9,10\n")
        with pytest.raises(DataError, match="more fields than the 4 columns of the header"):
            load_raw(d / "t.csv")
        (d / "t.csv").write_text("user_id,item_id,rating,timestamp\n1,2,3,4\n6,7,8,9\n")
        assert load_raw(d / "t.csv").interactions["user_id"].tolist() == ["1", "6"]


def test_iso_dates_outside_the_nanosecond_range_load() -> None:
    """Dates before 1677 or after 2262 overflowed a nanosecond subtraction (an OutOfBoundsDatetime)."""
    with folder() as d:
        (d / "t.csv").write_text("user,item,date\n1,a,0161-10-11\n1,b,2020-01-01\n1,c,9999-12-31\n")
        ts = load_raw(d / "t.csv").interactions["timestamp"].tolist()
    assert ts == [-57062016000.0, 1577836800.0, 253402214400.0]  # seconds since 1970, by hand (proleptic calendar)


def test_a_column_named_twice_is_refused() -> None:
    """RecBole's ``user_id:token`` and ``user_id:float`` are one name once the types are dropped (and a
    CSV header may after stripping): ``df[name]`` was then a frame and an AttributeError escaped."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with folder() as d:
        (d / "x.inter").write_text("user_id:token\titem_id:token\tuser_id:float\n1\t2\t3\n")
        with pytest.raises(DataError, match="'user_id' appears more than once"):
            load_raw(d / "x.inter")
        pq.write_table(pa.table([pa.array(["1"]), pa.array(["2"]), pa.array(["3"])],
                                names=["user_id", "item_id", "item_id"]), d / "t.parquet")
        with pytest.raises(DataError, match="item_id"):  # pyarrow itself refuses it
            load_raw(d / "t.parquet")
        (d / "t.csv").write_text("user, user,item\n1,2,3\n")
        with pytest.raises(DataError, match="'user' appears more than once"):
            load_raw(d / "t.csv")


def test_zz_enough_cases_ran() -> None:
    """Print what ran (``pytest -s``); fail if the fuzz tests above ran too few cases to mean much."""
    if not any(k.endswith(":cases") for k in COUNTS):
        pytest.skip("run together with the fuzz tests above")
    total = sum(v for k, v in COUNTS.items() if k.endswith(":cases"))
    print(f"\nfuzzed loader cases: {total}")
    for key in sorted(COUNTS):
        print(f"  {key}: {COUNTS[key]}")
    for message in CATCH_ALL[:5]:
        print(f"  caught by load_raw's catch-all: {message}")
    assert total >= 500
    # both outcomes occur: the generators reach valid datasets, not only errors
    assert sum(v for k, v in COUNTS.items() if ":valid" in k) > 0
    assert sum(v for k, v in COUNTS.items() if k.endswith(":DataError")) > 0

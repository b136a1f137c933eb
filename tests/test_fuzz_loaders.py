"""Property-based tests of the generic loaders and of detection: whatever the bytes, a load ends in DataError
with a message, or in a valid dataset; never another exception, never a hang.

Covered here: random byte strings under every recognised file name and format, generated CSV/TSV tables (wrong
delimiters, missing or extra columns, unicode and very long ids, NaN/inf/garbage ratings, negative or
ISO timestamps, duplicate rows, one user, one item, 0 rows, truncation at any byte), Parquet files of
random dtypes (also truncated), headerless ``user item [timestamp]`` files (SASRec layout) and format
auto-detection over random folder trees; MovieLens and RecBole folders are in test_fuzz_formats.py, the
harness and strategies in _fuzz.py. A valid dataset is checked for its invariants
and then split (which may also only end in DataError). ``COUNTS`` tallies the cases and outcomes of both
files; the last test prints them (``pytest -s``) and checks that enough cases ran.
"""
from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from distill_core.data import detect_format, load_dataset
from distill_core.data.loaders import load_raw
from distill_core.errors import DataError

from _fuzz import (_lines, CATCH_ALL, COUNTS, encode, folder, FORMATS, FUZZ, Hang, ids, ITEM_HEADS, NAMES, no_hang,
                   outcome, RATING_HEADS, small_ints, table_text, TIME_HEADS, USER_HEADS)


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

"""Detection and dispatch (distill_core.data.loaders) and the table reader below them (distill_core.data.tables:
CSV/TSV/TXT and Parquet), with their bad input. MovieLens, RecBole and headerless files are in
test_movielens.py, test_recbole.py and test_sequences.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill_core.data import detect_format, load_raw

from _loaders import assert_standard, raises, rows, write


# ----------------------------------------------------------------------------- generic CSV / Parquet
@pytest.mark.parametrize("user,item,rating,ts", [
    ("user_id", "item_id", "rating", "timestamp"), ("userId", "itemId", "score", "ts"),
    ("user", "item", "stars", "time"), ("uid", "iid", "preference", "unix_timestamp"),
    ("visitorid", "product_id", "Rating", "TIMESTAMP"), ("USERID", "productId", "rating", "datetime"),
    ("userid", "asin", "rating", "date"), ("UserID", "MovieID", "rating", "timestamp"),
    ("user_id", "movie_id", "rating", "timestamp"),
])
def test_csv_spellings(tmp_path: Path, user: str, item: str, rating: str, ts: str) -> None:
    path = write(tmp_path / "inter.csv", f"{user},{item},{rating},{ts},extra\n007,i1,4,100,x\n 8 ,i2,2.5,200,y\n")
    assert detect_format(path) == "csv"
    raw = load_raw(path)
    assert_standard(raw)
    assert raw.format == "csv" and raw.items.empty
    assert rows(raw.interactions) == [("007", "i1", 4.0, 100.0), ("8", "i2", 2.5, 200.0)]


@pytest.mark.parametrize("sep,suffix", [("\t", ".tsv"), (";", ".csv"), ("|", ".txt"), (",", ".txt")])
def test_delimiter_sniffing(tmp_path: Path, sep: str, suffix: str) -> None:
    path = write(tmp_path / f"data{suffix}", sep.join(["user", "item", "rating"]) + "\n"
                 + sep.join(["u1", "a", "1"]) + "\n" + sep.join(["u2", "b", "2"]) + "\n")
    raw = load_raw(path)
    assert rows(raw.interactions) == [("u1", "a", 1.0, None), ("u2", "b", 2.0, None)]


def test_explicit_sep_and_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "who;what;how much;when\na;x;1;10\nb;y;2;20\n")
    raw = load_raw(path, sep=";", user_col="who", item_col="what", rating_col="how much", timestamp_col="WHEN")
    assert rows(raw.interactions) == [("a", "x", 1.0, 10.0), ("b", "y", 2.0, 20.0)]


def test_no_rating_no_timestamp_order_kept_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "user,item\nz,3\n\na,1\nm,2\n")
    raw = load_raw(path)
    assert rows(raw.interactions) == [("z", "3", None, None), ("a", "1", None, None), ("m", "2", None, None)]
    assert list(raw.interactions.index) == [0, 1, 2]


def test_iso_timestamps(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "user,item,date\na,1,2020-01-01\nb,2,2020-01-01T12:00:00Z\n"
                                     "c,3,2020-01-01 00:00:00+01:00\ne,5,1969-12-31\n")
    ts = load_raw(path).interactions["timestamp"].tolist()
    assert ts == [1577836800.0, 1577880000.0, 1577833200.0, -86400.0]


def test_missing_rating_cells_are_nan_and_negative_timestamps_allowed(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "user,item,rating,timestamp\na,1,,-100\nb,2,NaN,-1.5\n")
    assert rows(load_raw(path).interactions) == [("a", "1", None, -100.0), ("b", "2", None, -1.5)]


def test_latin1_csv(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "user,item\nJosé,Crème\n", encoding="latin-1")
    assert rows(load_raw(path).interactions) == [("José", "Crème", None, None)]


def test_utf8_bom_header(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "\ufeffuser_id,item_id\nü,1\n")
    assert rows(load_raw(path).interactions) == [("ü", "1", None, None)]


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"userId": [7, 8], "movieId": ["007", "x"], "rating": [4.5, 1.0],
                  "timestamp": pd.to_datetime(["2020-01-01 00:00:00", "1970-01-01 00:00:10"])}).to_parquet(path)
    assert detect_format(path) == "parquet"
    raw = load_raw(path)
    assert_standard(raw)
    assert raw.format == "parquet"
    assert rows(raw.interactions) == [("7", "007", 4.5, 1577836800.0), ("8", "x", 1.0, 10.0)]


def test_parquet_float_ids_and_pq_suffix(tmp_path: Path) -> None:
    path = tmp_path / "d.pq"
    pd.DataFrame({"user": [1.0, 2.0], "item": [3.0, 4.5], "ts": [1, 2]}).to_parquet(path)
    assert rows(load_raw(path).interactions) == [("1", "3", None, 1.0), ("2", "4.5", None, 2.0)]


def test_items_path(tmp_path: Path) -> None:
    inter = write(tmp_path / "d.csv", "user,item\na,1\n")
    items = write(tmp_path / "items.csv", 'item_id,name,category\n1,"Widget, large",Tools;Home\n2,Gadget,\n')
    raw = load_raw(inter, items_path=str(items))
    assert rows(raw.items) == [("1", "Widget, large", "Tools|Home"), ("2", "Gadget", "")]


def test_folder_with_one_table_and_item_table(tmp_path: Path) -> None:
    write(tmp_path / "events.csv", "visitorid,itemid,timestamp\n1,5,10\n")
    write(tmp_path / "catalog.csv", "itemid,title,genres\n5,Five,A|B\n")
    write(tmp_path / "README.md", "hello\n")
    assert detect_format(tmp_path) == "csv"
    raw = load_raw(tmp_path)
    assert rows(raw.interactions) == [("1", "5", None, 10.0)]
    assert rows(raw.items) == [("5", "Five", "A|B")]


def test_folder_with_one_parquet_table(tmp_path: Path) -> None:
    pd.DataFrame({"user_id": ["a"], "item_id": ["b"]}).to_parquet(tmp_path / "x.parquet")
    assert detect_format(tmp_path) == "parquet"
    assert rows(load_raw(tmp_path, format="csv").interactions) == [("a", "b", None, None)]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[A-Za-z0-9_]{1,6}", fullmatch=True),
                          st.from_regex(r"[A-Za-z0-9_]{1,6}", fullmatch=True),
                          st.floats(-1e6, 1e6, allow_nan=False), st.integers(-2**40, 2**40)),
                min_size=1, max_size=20))
def test_csv_round_trip(tmp_path_factory: pytest.TempPathFactory, data: list[tuple]) -> None:
    path = tmp_path_factory.mktemp("rt") / "d.csv"
    write(path, "user_id,item_id,rating,timestamp\n" + "".join(f"{u},{i},{r!r},{t}\n" for u, i, r, t in data))
    assert rows(load_raw(path).interactions) == [(u, i, r, float(t)) for u, i, r, t in data]


# ----------------------------------------------------------------------------- bad input
def test_missing_path(tmp_path: Path) -> None:
    raises(["nope.csv", "does not exist"], load_raw, tmp_path / "nope.csv")
    raises(["nope.csv", "does not exist"], detect_format, tmp_path / "nope.csv")


def test_empty_file(tmp_path: Path) -> None:
    raises(["d.csv", "empty"], load_raw, write(tmp_path / "d.csv", ""))


def test_header_only(tmp_path: Path) -> None:
    raises(["d.csv", "no data rows"], load_raw, write(tmp_path / "d.csv", "user,item,rating\n\n"))


def test_header_only_parquet(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"user": pd.Series([], dtype=str), "item": pd.Series([], dtype=str)}).to_parquet(path)
    raises(["d.parquet", "no data rows"], load_raw, path)


def test_too_large(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "user,item\na,b\n")
    raises(["d.csv", "larger than", "10"], load_raw, path, max_bytes=10)
    assert len(load_raw(path, max_bytes=1000).interactions) == 1


def test_missing_user_column(tmp_path: Path) -> None:
    msg = raises(["d.csv", "user", "customer", "user_id", "userId".lower()], load_raw,
                 write(tmp_path / "d.csv", "customer,item_id\na,b\n"))
    assert "item_id" in msg


def test_missing_item_column(tmp_path: Path) -> None:
    raises(["d.csv", "item column", "'user', 'thing'", "movieid"], load_raw,
           write(tmp_path / "d.csv", "user,thing\na,b\n"))


def test_explicit_column_not_found(tmp_path: Path) -> None:
    raises(["d.csv", "'who'", "not found", "user"], load_raw, write(tmp_path / "d.csv", "user,item\na,b\n"),
           user_col="who")


def test_non_numeric_rating(tmp_path: Path) -> None:
    raises(["d.csv", "'rating'", "line 4", "'five'"], load_raw,
           write(tmp_path / "d.csv", "user,item,rating\na,1,4\nb,2,3\nc,3,five\nd,4,x\n"))


def test_non_numeric_timestamp(tmp_path: Path) -> None:
    raises(["d.csv", "'ts'", "line 3", "'yesterday'"], load_raw,
           write(tmp_path / "d.csv", "user,item,ts\na,1,100\nb,2,yesterday\n"))


def test_bad_iso_date(tmp_path: Path) -> None:
    raises(["d.csv", "'date'", "line 3", "'2020-13-45'"], load_raw,
           write(tmp_path / "d.csv", "user,item,date\na,1,2020-01-01\nb,2,2020-13-45\n"))


def test_inf_rating(tmp_path: Path) -> None:
    raises(["d.csv", "'rating'", "line 3", "inf"], load_raw,
           write(tmp_path / "d.csv", "user,item,rating\na,1,4\nb,2,inf\n"))


def test_empty_user_id(tmp_path: Path) -> None:
    raises(["d.csv", "'user_id'", "line 3", "empty"], load_raw,
           write(tmp_path / "d.csv", "user_id,item_id\na,1\n ,2\n"))


def test_nan_item_id_parquet(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"user": ["a", "b"], "item": [1.0, np.nan]}).to_parquet(path)
    raises(["d.parquet", "'item'", "row 2"], load_raw, path)


def test_wrong_delimiter_with_sep(tmp_path: Path) -> None:
    raises(["d.csv", "only one column", "';'"], load_raw,
           write(tmp_path / "d.csv", "user;item;rating\na;1;2\n"), sep=",")


def test_single_column_file(tmp_path: Path) -> None:
    raises(["d.csv", "only one column"], load_raw, write(tmp_path / "d.csv", "user\na\nb\n"))


def test_ragged_line(tmp_path: Path) -> None:
    raises(["d.csv", "line 3"], load_raw, write(tmp_path / "d.csv", "user,item\na,1\nb,2,3\n"))


def test_binary_garbage(tmp_path: Path) -> None:
    data = bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))
    raises(["d.csv", "binary"], load_raw, write(tmp_path / "d.csv", data))
    raises(["d.csv", "binary"], load_raw, write(tmp_path / "d.csv", data.replace(b"\x00", b"\x01")))


def test_bad_parquet(tmp_path: Path) -> None:
    raises(["d.parquet", "Parquet"], load_raw, write(tmp_path / "d.parquet", "user,item\na,b\n"))


def test_parquet_read_as_csv(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame({"user": ["a"], "item": ["b"]}).to_parquet(path)
    raises(["d.csv", "Parquet"], load_raw, path)


def test_unknown_suffix_and_folder_and_format(tmp_path: Path) -> None:
    raises(["d.xlsx", "u.data", ".parquet"], load_raw, write(tmp_path / "d.xlsx", "x"))
    folder = tmp_path / "stuff"
    write(folder / "notes.md", "x")
    write(folder / "a.csv", "user,item\na,b\n")
    write(folder / "b.csv", "user,item\na,b\n")
    raises(["stuff", "u.data", "ratings.dat", ".inter", "notes.md"], detect_format, folder)
    raises(["stuff", "a.csv", "b.csv"], load_raw, folder, format="csv")
    raises(["stuff", "MovieLens", "u.data"], load_raw, folder, format="movielens")
    raises(["stuff", "'excel'"], load_raw, folder, format="excel")

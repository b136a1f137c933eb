"""Tests for distill_core.data.loaders (detection, dispatch) and the readers below it (tables, MovieLens, RecBole)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill_core import cli
from distill_core.config import DataOptions
from distill_core.data import RawData, detect_format, load_dataset, load_raw
from distill_core.data.dataset import build_dataset
from distill_core.errors import DataError

FLAGS = "0|" * 18 + "0"  # 19 genre flags, all off


def write(path: Path, content: str | bytes, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode(encoding)
    path.write_bytes(content)
    return path


def flags(*on: int) -> str:
    bits = ["0"] * 19
    for i in on:
        bits[i] = "1"
    return "|".join(bits)


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


# ----------------------------------------------------------------------------- MovieLens
@pytest.fixture
def ml100k(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-100k"
    write(folder / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n")
    write(folder / "u.item",
          f"242|Café Society (1996)|01-Jan-1996||http://imdb|{flags(1, 5)}\n"
          f"302|L.A. Confidential (1997)|01-Jan-1997||http://imdb|{flags(6, 10, 19 - 3)}\n"
          f"377|Heavyweights (1994)|01-Jan-1994||http://imdb|{flags(0)}\n", encoding="latin-1")
    write(folder / "u.user", "1|24|M|technician|85711\n")
    return folder


def test_ml100k(ml100k: Path) -> None:
    assert detect_format(ml100k) == "ml-100k"
    raw = load_raw(ml100k)
    assert_standard(raw)
    assert raw.format == "ml-100k" and raw.source == str(ml100k)
    assert rows(raw.interactions) == [("196", "242", 3.0, 881250949.0), ("186", "302", 3.0, 891717742.0),
                                      ("22", "377", 1.0, 878887116.0)]
    assert rows(raw.items) == [("242", "Café Society (1996)", "Action|Comedy"),
                               ("302", "L.A. Confidential (1997)", "Crime|Film-Noir|Thriller"),
                               ("377", "Heavyweights (1994)", "unknown")]


def test_ml100k_explicit_formats_and_file_and_nested(ml100k: Path, tmp_path: Path) -> None:
    assert load_raw(ml100k, format="movielens").format == "ml-100k"
    assert load_raw(ml100k, format="ml-100k").format == "ml-100k"
    assert detect_format(ml100k / "u.data") == "ml-100k"
    assert len(load_raw(ml100k / "u.data").items) == 3
    # a zip extracted into a folder of its own: download/ml-100k/u.data
    assert detect_format(tmp_path) == "ml-100k"


def test_ml1m(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    write(folder / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n10::1193::4::-5\n")
    write(folder / "movies.dat", "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                                 "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
                                 "3::Les Misérables: Part 1 (1995)::Drama|War\n", encoding="latin-1")
    assert detect_format(folder) == "ml-1m"
    raw = load_raw(folder)
    assert_standard(raw)
    assert raw.format == "ml-1m"
    assert rows(raw.interactions) == [("1", "1193", 5.0, 978300760.0), ("1", "661", 3.0, 978302109.0),
                                      ("10", "1193", 4.0, -5.0)]
    assert rows(raw.items) == [("1193", "One Flew Over the Cuckoo's Nest (1975)", "Drama"),
                               ("661", "James and the Giant Peach (1996)", "Animation|Children's|Musical"),
                               ("3", "Les Misérables: Part 1 (1995)", "Drama|War")]


def test_ml_latest(tmp_path: Path) -> None:
    folder = tmp_path / "ml-latest-small"
    write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,11,0.5,964981247\n"
                                  "2,1,5,964982224\n")
    write(folder / "movies.csv", 'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children\n'
                                 '11,"American President, The (1995)",Comedy|Drama|Romance\n'
                                 '99,"Quote ""Test"" (2000)",(no genres listed)\n')
    write(folder / "tags.csv", "userId,movieId,tag,timestamp\n1,1,funny,1\n")
    assert detect_format(folder) == "ml-latest"
    raw = load_raw(folder)
    assert_standard(raw)
    assert raw.format == "ml-latest"
    assert rows(raw.interactions) == [("1", "1", 4.0, 964982703.0), ("1", "11", 0.5, 964981247.0),
                                      ("2", "1", 5.0, 964982224.0)]
    assert rows(raw.items) == [("1", "Toy Story (1995)", "Adventure|Animation|Children"),
                               ("11", "American President, The (1995)", "Comedy|Drama|Romance"),
                               ("99", 'Quote "Test" (2000)', "")]


def test_movielens_without_item_file(tmp_path: Path) -> None:
    write(tmp_path / "ratings.dat", "1::2::3::4\n")
    raw = load_raw(tmp_path)
    assert raw.format == "ml-1m" and raw.items.empty and list(raw.items.columns) == ["item_id", "title", "genres"]


# ----------------------------------------------------------------------------- RecBole
@pytest.fixture
def recbole(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-100k"
    write(folder / "ml-100k.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                    "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    write(folder / "ml-100k.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                   "242\tKolya\t1996\tComedy\n"
                                   "302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
                                   "1\tToy Story\t1995\tAnimation Children's Comedy\n")
    write(folder / "ml-100k.user", "user_id:token\tage:token\n1\t24\n")
    return folder


def test_recbole_folder(recbole: Path) -> None:
    assert detect_format(recbole) == "recbole"
    raw = load_raw(recbole)
    assert_standard(raw)
    assert raw.format == "recbole"
    assert rows(raw.interactions) == [("196", "242", 3.0, 881250949.0), ("186", "302", 3.0, 891717742.0)]
    assert rows(raw.items) == [("242", "Kolya", "Comedy"),
                               ("302", "L.A. Confidential", "Crime|Film-Noir|Mystery|Thriller"),
                               ("1", "Toy Story", "Animation|Children's|Comedy")]


def test_recbole_inter_file_and_explicit_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "shop.inter", "uid:token\tasin:token\tstars:float\n u1 \tB00X\t4.5\n")
    assert detect_format(path) == "recbole"
    raw = load_raw(path, format="recbole", user_col="uid:token")
    assert rows(raw.interactions) == [("u1", "B00X", 4.5, None)]
    assert raw.items.empty


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


def test_ml100k_bad_rating_line(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "1\t2\t3\t4\n1\t3\tbad\t5\n")
    raises(["u.data", "'rating'", "line 2", "'bad'"], load_raw, tmp_path)


def test_ml100k_short_line(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "1\t2\t3\t4\n1\t3\n")
    raises(["u.data", "line 2"], load_raw, tmp_path)


def test_ml100k_bad_item_line(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "1\t2\t3\t4\n")
    write(tmp_path / "u.item", f"2|Two|||x|{FLAGS}\n3|Three|x\n")
    raises(["u.item", "line 2", "24"], load_raw, tmp_path)


def test_ml1m_wrong_separator(tmp_path: Path) -> None:
    write(tmp_path / "ratings.dat", "1,2,3,4\n")
    raises(["ratings.dat", "line 1", "'::'"], load_raw, tmp_path)


def test_ml_latest_bad_timestamp(tmp_path: Path) -> None:
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n1,3,4,\n")
    raises(["ratings.csv", "'timestamp'", "line 3", "missing"], load_raw, tmp_path)


def test_recbole_empty_user(tmp_path: Path) -> None:
    write(tmp_path / "x.inter", "user_id:token\titem_id:token\n\t5\n")
    raises(["x.inter", "'user_id'", "line 2"], load_raw, tmp_path)


# ----------------------------------------------------------------------------- headerless files, order (issue 14.5)
def sasrec_file(path: Path, sep: str = " ", n_users: int = 50, n_items: int = 30) -> list[tuple[str, str]]:
    """A file laid out like SASRec's ``data/ml-1m.txt``: ``user item`` lines, no header, each user's lines
    in time order; users interleaved in blocks so that per-user order is not just file order of blocks."""
    rng = np.random.default_rng(0)
    seqs = {u: [str(i) for i in rng.permutation(np.arange(1, n_items + 1))] for u in range(1, n_users + 1)}
    pairs = [(str(u), seqs[u][k]) for k0 in range(0, n_items, 10) for u in seqs for k in range(k0, k0 + 10)]
    write(path, "".join(f"{u}{sep}{i}\n" for u, i in pairs))
    return pairs


def per_user(users, items) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for u, i in zip(users, items):
        out.setdefault(str(u), []).append(str(i))
    return out


@pytest.mark.parametrize("sep", [" ", "\t", "   ", " \t "])
def test_sasrec_style_file_keeps_every_line_in_file_order(tmp_path: Path, sep: str) -> None:
    path = tmp_path / "ml-1m.txt"
    pairs = sasrec_file(path, sep)
    assert len(pairs) == 50 * 30 == len(path.read_text().splitlines())
    assert detect_format(path) == "sequences"
    for kwargs, fmt in ((dict(format="auto"), "sequences"), (dict(format="sequences"), "sequences"),
                        (dict(format="csv", no_header=True), "csv"), (dict(format="csv"), "csv")):
        raw = load_raw(path, **kwargs)
        assert raw.format == fmt
        assert list(zip(raw.interactions["user_id"], raw.interactions["item_id"])) == pairs, kwargs
        ds = load_dataset(path, **kwargs)
        assert ds.n_interactions == len(pairs) and ds.order_source == "file order"
        got = per_user(ds.user_ids[ds.users], ds.item_ids[ds.items])
        assert got == per_user(*zip(*pairs))


def test_a_header_is_told_by_its_content(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    numbers = write(tmp_path / "n.csv", "1,10\n2,20\n")
    assert rows(load_raw(numbers).interactions) == [("1", "10", None, None), ("2", "20", None, None)]
    named = write(tmp_path / "named.txt", "user item\n1 10\n")
    assert detect_format(named) == "csv"
    assert rows(load_raw(named).interactions) == [("1", "10", None, None)]
    with caplog.at_level("WARNING"):
        assert rows(load_raw(named, format="sequences").interactions) == [("1", "10", None, None)]
    assert "read as a header and skipped" in caplog.text and "no_header" in caplog.text
    kept = load_raw(named, format="sequences", no_header=True).interactions
    assert rows(kept) == [("user", "item", None, None), ("1", "10", None, None)]
    raises(["n.csv", "no_header", "'ml-100k'"], load_raw, numbers, format="ml-100k", no_header=True)
    raises(["only one column", "whitespace"], load_raw, named, sep=",")
    raises(["w.txt", "line 1", "found 5"], load_raw, write(tmp_path / "w.txt", "1 2 3 4 5\n"), format="sequences")


def test_three_fields_are_user_item_timestamp_and_ties_keep_file_order(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", "1 x 5\n1 y 5\n1 z 1\n1 w 5\n2 a 9\n2 b 3\n")
    assert detect_format(path) == "csv"  # the ids are not numbers: auto sees a header, sequences does not
    ds = load_dataset(path, format="sequences", no_header=True)
    assert ds.order_source == "timestamps"
    assert per_user(ds.user_ids[ds.users], ds.item_ids[ds.items]) == {"1": ["z", "x", "y", "w"], "2": ["b", "a"]}
    nums = write(tmp_path / "n.txt", "1 10 5\n1 11 5\n1 12 1\n1 13 5\n")
    ds = load_dataset(nums)
    assert ds.format == "sequences" and ds.timestamps.tolist() == [1.0, 5.0, 5.0, 5.0]
    assert ds.item_ids[ds.items].tolist() == ["12", "10", "11", "13"]


def test_a_blank_timestamp_is_refused_with_its_line_and_column(tmp_path: Path) -> None:
    raises(["d.csv", "column 'ts'", "line 4", "missing timestamp", "1 of 3"], load_raw,
           write(tmp_path / "d.csv", "user,item,ts\na,x,30\na,y,10\na,z,\n"))
    raises(["s.txt", "column 'timestamp'", "line 3", "missing timestamp"], load_raw,
           write(tmp_path / "s.txt", "1 1 30\n1 2 10\n1 3\n"))
    path = tmp_path / "d.parquet"
    pd.DataFrame({"user": ["a", "a"], "item": ["x", "y"], "ts": [1.0, np.nan]}).to_parquet(path)
    raises(["d.parquet", "column 'ts'", "row 2", "missing timestamp"], load_raw, path)
    frame = pd.DataFrame({"user_id": ["a", "a"], "item_id": ["x", "y"], "rating": [np.nan] * 2,
                          "timestamp": [1.0, np.nan]})
    raises(["mem", "row 2", "missing timestamp"], build_dataset, RawData(frame, pd.DataFrame(
        columns=["item_id", "title", "genres"]), "csv", "mem"))
    ds = load_dataset(write(tmp_path / "e.csv", "user,item,ts\na,x,\na,y,\n"))  # no time at all: file order
    assert ds.order_source == "file order" and ds.item_ids[ds.items].tolist() == ["x", "y"]


def test_duplicates_are_collapsed_before_the_rating_threshold() -> None:
    frame = pd.DataFrame({"user_id": ["a", "a", "a", "b", "b"], "item_id": ["x", "y", "x", "x", "x"],
                          "rating": [5.0, 4.0, 1.0, 1.0, 5.0], "timestamp": [1.0, 2.0, 3.0, 1.0, 4.0]})
    raw = RawData(frame, pd.DataFrame(columns=["item_id", "title", "genres"]), "csv", "mem")
    ds = build_dataset(raw, DataOptions(rating_threshold=4))
    # a re-rated x down to 1 at t=3: not a positive; b re-rated x up to 5 at t=4: a positive at t=4
    got = [(ds.user_ids[u], ds.item_ids[i], t) for u, i, t in zip(ds.users, ds.items, ds.timestamps)]
    assert got == [("a", "y", 2.0), ("b", "x", 4.0)]


@pytest.mark.parametrize("argv", [["run"], ["sweep", "--alpha", "1", "--temperature", "1"]])
def test_cli_format_sequences_and_no_header_reach_the_loader(monkeypatch, capsys, tmp_path: Path,
                                                             argv: list[str]) -> None:
    seen = {}
    argv = [*argv, "--out", str(tmp_path / "report.json")]

    def fake_load(path, fmt, options, **kwargs):
        seen.update(path=path, fmt=fmt, **kwargs)
        raise DataError("stop here")
    monkeypatch.setattr("distill_core.data.load_dataset", fake_load)
    assert cli.main([*argv, "--data", "ml-1m.txt", "--format", "sequences", "--no-header"]) == 2
    assert seen == {"path": "ml-1m.txt", "fmt": "sequences", "no_header": True}
    assert "stop here" in capsys.readouterr().err
    assert cli.main([*argv, "--data", "x.csv"]) == 2 and seen["no_header"] is False

"""The MovieLens readers (distill_core.data.movielens): ml-100k, ml-1m and ml-latest folders, detected and
read into the standard frames, and their bad input refused with the file, line and column named."""
from __future__ import annotations

from pathlib import Path

import pytest

from distill_core.data import detect_format, load_raw

from _loaders import assert_standard, raises, rows, write


FLAGS = "0|" * 18 + "0"  # 19 genre flags, all off


def flags(*on: int) -> str:
    bits = ["0"] * 19
    for i in on:
        bits[i] = "1"
    return "|".join(bits)


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


# ----------------------------------------------------------------------------- bad input
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

"""The RecBole reader (distill_core.data.recbole): atomic ``.inter`` / ``.item`` files, detected and read
into the standard frames, and their bad input refused with the file, line and column named."""
from __future__ import annotations

from pathlib import Path

import pytest

from distill_core.data import detect_format, load_raw

from _loaders import assert_standard, raises, rows, write


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


# ----------------------------------------------------------------------------- bad input
def test_recbole_empty_user(tmp_path: Path) -> None:
    write(tmp_path / "x.inter", "user_id:token\titem_id:token\n\t5\n")
    raises(["x.inter", "'user_id'", "line 2"], load_raw, tmp_path)

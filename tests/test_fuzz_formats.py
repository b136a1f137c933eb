"""Property-based tests of the MovieLens and RecBole readers: generated ml-100k, ml-1m and ml-latest folders
and RecBole atomic folders end in DataError with a message or in a valid dataset; never another
exception, never a hang. The harness and strategies are in _fuzz.py; the cases are tallied with those
of test_fuzz_loaders.py, whose last test checks that enough ran.
"""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from distill_core.data import load_dataset

from _fuzz import _lines, clean_items, encode, folder, FUZZ, ids, outcome, small_ints, table_text


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

"""Headerless ``user item [timestamp]`` files (distill_core.data.sequences, issue 14.5): every line kept in
file order, a header told by its content, ties in time keeping file order, a blank timestamp refused."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distill_core.data import RawData, detect_format, load_dataset, load_raw
from distill_core.data.dataset import build_dataset

from _loaders import raises, rows, write


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

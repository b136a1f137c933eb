"""Indexing, filters and splits of interaction data; the shipped sample."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from distill_core.config import DataOptions, SplitOptions
from distill_core.data import SAMPLE_DIR, build_dataset, load_sample, split_dataset
from distill_core.data.columns import RawData
from distill_core.data.sample import write_sample
from distill_core.errors import ConfigError, DataError


def raw(rows, items=None):
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    df["rating"] = df["rating"].astype(float)
    df["timestamp"] = df["timestamp"].astype(float)
    it = items if items is not None else pd.DataFrame({"item_id": [], "title": [], "genres": []})
    return RawData(df, it, "csv", "mem.csv")


ROWS = [("u1", "a", 5, 30), ("u1", "b", 2, 10), ("u1", "c", 4, 20), ("u1", "d", 3, 40),
        ("u2", "a", 4, 5), ("u2", "c", 1, 6), ("u2", "b", 5, 7), ("u3", "a", 5, 1), ("u3", "b", 5, 2),
        ("u1", "b", 4, 50)]  # duplicate (u1, b): the later one counts


def test_indexing_order_and_duplicates():
    ds = build_dataset(raw(ROWS))
    assert ds.n_users == 3 and ds.n_items == 4 and ds.n_interactions == 9
    u1 = ds.items[ds.users == 0]
    assert [ds.item_ids[i] for i in u1] == ["c", "a", "d", "b"]  # time order, duplicate at its latest time


def test_rating_threshold_and_kcore():
    ds = build_dataset(raw(ROWS), DataOptions(rating_threshold=4))
    assert ds.n_interactions == 7  # ratings >= 4 (u1 b keeps its later rating 4)
    core = build_dataset(raw(ROWS), DataOptions(kcore=2))  # item d (1 user) goes
    assert set(core.user_ids) == {"u1", "u2", "u3"} and set(core.item_ids) == {"a", "b", "c"}
    with pytest.raises(DataError, match="3-core"):  # c goes, then u3, then everything cascades
        build_dataset(raw(ROWS), DataOptions(kcore=3))
    with pytest.raises(DataError, match="rating_threshold"):
        build_dataset(raw(ROWS), DataOptions(rating_threshold=6))
    with pytest.raises(ConfigError, match="kcore"):
        DataOptions(kcore=-1)


def test_leave_one_out_split_is_temporal():
    ds = build_dataset(raw(ROWS))
    sp = split_dataset(ds)
    vp, vi = sp.held_out("valid")
    tp, ti = sp.held_out("test")
    u1 = 0
    assert ds.item_ids[ti[tp[u1]:tp[u1 + 1]]].tolist() == ["b"]
    assert ds.item_ids[vi[vp[u1]:vp[u1 + 1]]].tolist() == ["d"]
    assert sp.eval_users("test").tolist() == [0, 1]  # u3 has 2 interactions: training only
    assert sp.sizes() == {"train": 5, "valid": 2, "test": 2}
    # no held-out pair is also a training pair
    train = set(zip(sp.train_users, sp.train_items))
    assert not any((u, i) in train for u in range(3) for i in ti[tp[u]:tp[u + 1]])


def test_ratio_split_partitions_each_user(tiny_ds):
    sp = split_dataset(tiny_ds, SplitOptions(method="ratio", seed=1))
    total = sp.sizes()
    assert sum(total.values()) == tiny_ds.n_interactions
    ptr = np.searchsorted(tiny_ds.users, np.arange(tiny_ds.n_users + 1))
    tp, _ = sp.held_out("test")
    n = np.diff(ptr)
    assert np.all(np.diff(tp) == np.maximum(1, np.round(0.1 * n)).astype(int))


def test_too_small_to_split():
    with pytest.raises(DataError, match="too small to split"):
        split_dataset(build_dataset(raw([("u", "a", 1, 1), ("u", "b", 1, 2)])))
    with pytest.raises(DataError, match="0 rows"):
        build_dataset(raw([]))


def test_sample_file_is_what_the_generator_writes(tmp_path):
    write_sample(tmp_path)
    for name in ("ratings.csv", "movies.csv"):
        made = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        shipped = hashlib.sha256((SAMPLE_DIR / name).read_bytes()).hexdigest()
        assert made == shipped, f"sample_data/{name} differs from the generator's output; regenerate it"


def test_sample_shape():
    ds = load_sample()
    assert 900 <= ds.n_users <= 1100 and 1500 <= ds.n_items <= 2000
    assert 90_000 <= ds.n_interactions <= 110_000 and ds.has_timestamps
    pop = np.bincount(ds.items, minlength=ds.n_items)
    top10 = np.sort(pop)[::-1][: ds.n_items // 10].sum() / pop.sum()
    assert top10 > 0.25  # long tail: the top 10% of items take 2.5x their share
    assert pop.max() > 8 * np.median(pop)
    assert all(t and not t.startswith("item ") for t in ds.titles[:50]) and all(ds.genres[:50])


def test_duplicates_are_collapsed_before_the_rating_threshold() -> None:
    frame = pd.DataFrame({"user_id": ["a", "a", "a", "b", "b"], "item_id": ["x", "y", "x", "x", "x"],
                          "rating": [5.0, 4.0, 1.0, 1.0, 5.0], "timestamp": [1.0, 2.0, 3.0, 1.0, 4.0]})
    raw = RawData(frame, pd.DataFrame(columns=["item_id", "title", "genres"]), "csv", "mem")
    ds = build_dataset(raw, DataOptions(rating_threshold=4))
    # a re-rated x down to 1 at t=3: not a positive; b re-rated x up to 5 at t=4: a positive at t=4
    got = [(ds.user_ids[u], ds.item_ids[i], t) for u, i, t in zip(ds.users, ds.items, ds.timestamps)]
    assert got == [("a", "y", 2.0), ("b", "x", 4.0)]

"""The dashboard's views (distill_core.views), checked against independent computations."""
from __future__ import annotations

import collections

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import entropy as scipy_entropy
from scipy.stats import spearmanr

from distill_core import views
from distill_core.config import ModelSpec
from distill_core.errors import ConfigError
from distill_core.models import build_model
from distill_core.store import RunStore

from test_runs import _store_run


@pytest.fixture(scope="module")
def models(tiny_split):
    torch.manual_seed(0)
    return {"Teacher": build_model(ModelSpec("mf", 16), tiny_split).eval(),
            "Distilled student": build_model(ModelSpec("mf", 4), tiny_split).eval(),
            "Plain student": build_model(ModelSpec("two_tower", 4), tiny_split).eval()}


def _softmax(z: np.ndarray, t: float) -> np.ndarray:
    e = np.exp((z - z.max()) / t)
    return e / e.sum()


def _user(split) -> int:
    return int(split.eval_users("test")[3])


# ----------------------------------------------------------------------------- dataset views
def test_item_popularity_matches_counter(tiny_ds):
    pop = views.item_popularity(tiny_ds)
    counts = collections.Counter(tiny_ds.item_ids[tiny_ds.items].tolist())
    assert len(pop) == tiny_ds.n_items
    assert dict(zip(pop["item_id"], pop["interactions"])) == counts
    assert pop["interactions"].is_monotonic_decreasing and pop["rank"].tolist() == list(range(1, tiny_ds.n_items + 1))
    assert pop["cumulative_share"].iloc[-1] == pytest.approx(1.0)
    assert pop["share"].iloc[0] == pytest.approx(max(counts.values()) / tiny_ds.n_interactions)


def test_user_activity_histogram_puts_each_user_in_its_bin(tiny_ds):
    hist = views.user_activity(tiny_ds, bins=10)
    per_user = collections.Counter(tiny_ds.users.tolist())
    expected = [sum(1 for c in per_user.values() if lo <= c <= hi)
                for lo, hi in zip(hist["bin_start"], hist["bin_end"])]
    assert hist["users"].tolist() == expected and sum(expected) == tiny_ds.n_users
    assert (hist["bin_start"].iloc[1:].to_numpy() == hist["bin_end"].iloc[:-1].to_numpy() + 1).all()  # contiguous


def test_dataset_stats_head_share_by_hand(tiny_ds):
    stats = views.dataset_stats(tiny_ds)
    counts = sorted(collections.Counter(tiny_ds.items.tolist()).values(), reverse=True)
    n_head = round(0.2 * tiny_ds.n_items)
    assert stats["head_share"] == pytest.approx(sum(counts[:n_head]) / tiny_ds.n_interactions)
    per_user = list(collections.Counter(tiny_ds.users.tolist()).values())
    assert stats["median_user_interactions"] == pytest.approx(float(np.median(per_user)))
    assert (stats["users"], stats["items"], stats["interactions"]) == (tiny_ds.n_users, tiny_ds.n_items,
                                                                       tiny_ds.n_interactions)


def test_split_sizes_and_preview(tiny_ds, tiny_split):
    sizes = views.split_sizes(tiny_split).set_index("part")
    assert sizes.loc["train", "interactions"] == len(tiny_split.train_items)
    assert sizes.loc["test", "users"] == len(tiny_split.eval_users("test"))
    assert sizes["interactions"].sum() == tiny_ds.n_interactions
    prev = views.preview(tiny_ds, 5)
    assert prev["user_id"].tolist() == tiny_ds.user_ids[tiny_ds.users[:5]].tolist()
    assert prev["title"].tolist() == tiny_ds.titles[tiny_ds.items[:5]].tolist()
    assert prev["time"].iloc[0] == pd.Timestamp(tiny_ds.timestamps[0], unit="s")


# ----------------------------------------------------------------------------- users
def test_user_index_round_trip_and_message(tiny_ds):
    assert views.user_index(tiny_ds, str(tiny_ds.user_ids[7])) == 7
    assert views.user_index(tiny_ds, f"  {tiny_ds.user_ids[7]} ") == 7
    with pytest.raises(ConfigError, match="user id 'no-such-user' is not in dataset 'tiny'"):
        views.user_index(tiny_ds, "no-such-user")


def test_random_long_tail_user_is_a_low_activity_test_user(tiny_ds, tiny_split):
    activity = np.diff(tiny_split.train_ptr)
    test_users = tiny_split.eval_users("test")
    cut = np.quantile(activity[test_users], 0.2)
    rng = np.random.default_rng(0)
    drawn = {views.random_long_tail_user(tiny_ds, tiny_split, rng) for _ in range(50)}
    assert all(u in test_users and activity[u] <= cut for u in drawn)
    assert len(drawn) > 1  # random, not always the same user
    assert views.random_long_tail_user(tiny_ds, tiny_split, np.random.default_rng(3)) == \
        views.random_long_tail_user(tiny_ds, tiny_split, np.random.default_rng(3))


def test_user_history_marks_the_held_out_items(tiny_ds, tiny_split):
    u = _user(tiny_split)
    hist = views.user_history(tiny_ds, tiny_split, u)
    rows = tiny_ds.items[tiny_ds.users == u]
    assert hist["item_id"].tolist() == tiny_ds.item_ids[rows].tolist()
    # temporal leave-one-out: the last item is the test item, the one before it the validation item
    assert hist["part"].tolist() == ["train"] * (len(rows) - 2) + ["validation", "test (held out)"]
    assert (hist["time"].diff().dropna() >= pd.Timedelta(0)).all()
    newest = views.user_history(tiny_ds, tiny_split, u, newest_first=True)
    assert newest["part"].iloc[0] == "test (held out)" and newest["item_id"].tolist() == hist["item_id"].tolist()[::-1]


# ----------------------------------------------------------------------------- models
def test_soft_label_view_matches_numpy_softmax_and_entropy(tiny_ds, tiny_split, models):
    u, t = _user(tiny_split), 3.0
    view = views.soft_label_view(models, tiny_ds, tiny_split, u, t, top_n=5)
    for name, m in models.items():
        m.set_context(*tiny_split.context("train"))
        p = _softmax(m.score_all(torch.tensor([u]))[0].double().numpy(), t)
        assert view.items[name].to_numpy() == pytest.approx(p[view.items["item"].to_numpy()], rel=1e-9)
        assert view.entropy[name] == pytest.approx(scipy_entropy(p), rel=1e-9)
        assert view.mass[name] == pytest.approx(p[view.items["item"].to_numpy()].sum())
        assert set(np.argsort(-p)[:5]) <= set(view.items["item"])  # each model's top 5 is shown
    assert view.items["Teacher"].is_monotonic_decreasing
    assert len(view.items) <= 15 and view.models == tuple(models)
    seen = set(tiny_split.train_items[tiny_split.train_users == u])
    assert view.items["seen"].tolist() == [i in seen for i in view.items["item"]]


def test_soft_labels_flatten_as_t_grows(tiny_ds, tiny_split, models):
    u = _user(tiny_split)
    ents = [views.soft_label_view(models, tiny_ds, tiny_split, u, t).entropy["Teacher"] for t in (0.5, 2, 20)]
    assert ents[0] < ents[1] < ents[2] <= np.log(tiny_ds.n_items) + 1e-9
    with pytest.raises(ConfigError, match="temperature"):
        views.soft_label_view(models, tiny_ds, tiny_split, u, 0.0)


def test_scorer_gives_a_sequential_model_its_context_without_changing_it(tiny_split, models):
    m = models["Plain student"]  # two_tower reads recent items
    users = torch.tensor(tiny_split.eval_users("test")[:4])
    m.set_context(*tiny_split.context("train"))
    before = m.history.clone()
    got = views.scorer(m, tiny_split, "test")(users)
    assert torch.equal(m.history, before)
    m.set_context(*tiny_split.context("test"))
    assert torch.allclose(got, m.score_all(users))
    m.set_context(*tiny_split.context("train"))


def test_top_k_lists_match_numpy_ranking(tiny_ds, tiny_split, models):
    u, k = _user(tiny_split), 7
    lists = views.top_k_lists(models, tiny_ds, tiny_split, u, k)
    ptr, seen = tiny_split.seen("test")
    tp, ti = tiny_split.held_out("test")
    tops = {}
    for name, m in models.items():
        m.set_context(*tiny_split.context("test"))
        s = m.score_all(torch.tensor([u]))[0].double().numpy()
        s[seen[ptr[u]:ptr[u + 1]]] = -np.inf
        tops[name] = list(np.argsort(-s, kind="stable")[:k])
        m.set_context(*tiny_split.context("train"))
        df = lists[name]
        assert df["item"].tolist() == tops[name] and df["rank"].tolist() == list(range(1, k + 1))
        assert df["test"].tolist() == [i in set(ti[tp[u]:tp[u + 1]]) for i in tops[name]]
    for name, df in lists.items():
        for item, shared, n in zip(df["item"], df["shared_with"], df["in_lists"]):
            others = [o for o in tops if o != name and item in tops[o]]
            assert shared == ", ".join(others) and n == 1 + len(others)
    with pytest.raises(ConfigError, match="K must be between"):
        views.top_k_lists(models, tiny_ds, tiny_split, u, 0)


def test_top_k_lists_mark_the_test_item_when_ranked(tiny_ds, tiny_split):
    u = _user(tiny_split)
    tp, ti = tiny_split.held_out("test")
    m = build_model(ModelSpec("mf", 4), tiny_split).eval()
    with torch.no_grad():
        m.item_bias[ti[tp[u]]] = 100.0  # make the test item the top recommendation
    df = views.top_k_lists({"A": m, "B": m}, tiny_ds, tiny_split, u, 5)["A"]
    assert df["test"].tolist() == [True, False, False, False, False]
    assert (df["in_lists"] == 2).all() and (df["shared_with"] == "B").all()


def test_user_agreement_against_scipy(tiny_split, models):
    u, k = _user(tiny_split), 10
    a, b = models["Teacher"], models["Distilled student"]
    got = views.user_agreement(a, b, tiny_split, u, k)
    ptr, seen = tiny_split.seen("test")
    keep = np.setdiff1d(np.arange(tiny_split.n_items), seen[ptr[u]:ptr[u + 1]])
    sa = a.score_all(torch.tensor([u]))[0].double().numpy()[keep]
    sb = b.score_all(torch.tensor([u]))[0].double().numpy()[keep]
    top_a, top_b = set(keep[np.argsort(-sa)[:k]]), set(keep[np.argsort(-sb)[:k]])
    assert got[f"overlap@{k}"] == pytest.approx(len(top_a & top_b) / k)
    assert got["spearman"] == pytest.approx(spearmanr(sa, sb).statistic, abs=1e-9)
    same = views.user_agreement(a, a, tiny_split, u, k)
    assert same[f"overlap@{k}"] == 1.0 and same["spearman"] == pytest.approx(1.0)


def test_mean_agreement_is_the_mean_over_a_fixed_subset(tiny_split, models):
    a, b = models["Teacher"], models["Distilled student"]
    out = views.mean_agreement(a, b, tiny_split, k=5, max_users=6, seed=1)
    users = np.sort(np.random.default_rng(1).choice(tiny_split.eval_users("test"), 6, replace=False))
    per_user = [views.user_agreement(a, b, tiny_split, int(u), 5) for u in users]
    assert out["users"] == 6
    assert out["overlap@5"] == pytest.approx(np.mean([p["overlap@5"] for p in per_user]))
    assert out["spearman"] == pytest.approx(np.mean([p["spearman"] for p in per_user]))


# ----------------------------------------------------------------------------- runs table
def test_run_tables(tmp_path):
    store = RunStore(tmp_path)
    rid = _store_run(store, "student_kd", {"model": {"family": "two_tower", "dim": 4, "layers": 1},
                                           "distill": {"alpha": 0.3, "temperature": 4.0}}, metrics={"ndcg@10": 0.12345})
    rec = store.get(rid)
    assert (views.human_bytes(512), views.human_bytes(1536), views.human_bytes(3 * 2**20)) == \
        ("512 B", "1.5 KiB", "3.0 MiB")
    table = views.runs_table([rec])
    assert table.loc[0, "model"] == "Distilled student" and table.loc[0, "size"] == "1.5 KiB"
    assert table.loc[0, "NDCG@10"] == 0.12345 and table.loc[0, "run"] == rid


def test_runs_table_says_how_each_run_trained(tmp_path):
    store = RunStore(tmp_path)
    old = store.get(_store_run(store, "teacher", {"model": {"family": "mf", "dim": 4}}))
    new = store.get(_store_run(store, "teacher", {"model": {"family": "mf", "dim": 4}}))
    store.update_info(new.id, {"path_text": "sampled softmax (1024 negatives)", "stopped": "patience"})
    table = views.runs_table([old, store.get(new.id)])
    assert table["training path"].tolist() == ["full softmax", "sampled softmax (1024 negatives)"]
    assert table.loc[1, "stopped"] == "patience"

"""Segments of the test ranking (distill_core.segments) and the gain of distillation per bucket (distill_core.gains):
every figure against a hand computation in numpy (loops over users and items), the per-user metrics against
``distill.evaluate``, the bootstrap against scipy's, and the segments kept with stored runs."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from distill_core import ConfigError, ModelSpec, TrainConfig, evaluate, train_model
from distill_core.data.dataset import Split
from distill_core.gains import bootstrap_gain, bootstrap_mean_ratio, gains_frame, pair_segments
from distill_core.metrics import ScoreError
from distill_core.runs import distillations
from distill_core.diversity import diversity_space
from distill_core.segments import SegmentOptions, evaluate_segments, gini, item_buckets, model_segments, user_buckets
from distill_core.workflows import load_model

from _helpers import make_runs

# ----------------------------------------------------------------------------- a split small enough to do by hand
TRAIN = {0: [0, 1], 1: [0, 2, 3, 4, 5, 6], 2: [0, 1, 2], 3: [0]}  # user -> training items
TEST = {0: [7], 1: [1], 2: [3, 4], 3: [2]}  # user 2 has two held-out items (a ratio split)
GENRES = ["A|B", "A", "B", "A|C", "C", "", "B|C", "A|B|C"]  # item 5: unknown genre
S = np.array([[9, 9, 5, 5, 1, 0, 0, 5],  # u0: test item 7 tied with items 2 and 3 -> pessimistic rank 3
              [0, 2, 0, 0, 0, 0, 0, 3],  # u1: two unseen items only (1, 7): a list of 2, not 3
              [0, 0, 0, 4, 1, 3, 2, 0],  # u2: item 3 rank 1; item 4 has items 5 and 6 above it
              [0, 3, 1, 2, 2.5, .5, .2, 1.5]], dtype=np.float64)  # u3: test item 2 ranks 5th
K = 3
OPTS = SegmentOptions(k=K, cold_max=2, quantiles=2, head_share=0.4, tail_share=0.3, min_users=1)


def _split(genres=GENRES) -> Split:
    def csr(d):
        return np.cumsum([0] + [len(d[u]) for u in range(4)]), np.array([i for u in range(4) for i in d[u]])
    tp, ti = csr(TEST)
    return Split(n_users=4, n_items=8, train_users=np.repeat(np.arange(4), [len(TRAIN[u]) for u in range(4)]),
                 train_items=np.array([i for u in range(4) for i in TRAIN[u]]), valid_ptr=np.zeros(5, np.int64),
                 valid_items=np.zeros(0, np.int64), test_ptr=tp, test_items=ti,
                 genres=np.array(genres) if genres is not None else None)


def _scorer(users: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(S)[users]


def _by_hand(sim) -> dict:
    """Every figure with loops: pessimistic ranks by counting, lists by sorting, formulas as written."""
    pop = np.zeros(8)
    for u in TRAIN:
        for i in TRAIN[u]:
            pop[i] += 1
    before = np.array([pop[pop > pop[i]].sum() / pop.sum() for i in range(8)])
    bucket = np.where(before < 0.4, 0, np.where(before >= 0.7, 2, 1))
    user, case, lists = {}, [], {}
    for u in range(4):
        unseen = [i for i in range(8) if i not in TRAIN[u]]
        rel = sorted(TEST[u], key=lambda i: -S[u, i])
        other = [j for j in unseen if j not in TEST[u]]
        ranks = [1 + sum(S[u, j] >= S[u, r] for j in other) + p for p, r in enumerate(rel)]
        dcg = sum(1 / math.log2(r + 1) for r in ranks if r <= K)
        user[u] = (float(min(ranks) <= K), dcg / sum(1 / math.log2(i + 2) for i in range(min(len(rel), K))))
        for r in TEST[u]:
            rank = 1 + sum(S[u, j] >= S[u, r] for j in other)
            case.append((u, r, float(rank <= K), 1 / math.log2(rank + 1) if rank <= K else 0.0))
        lists[u] = sorted(unseen, key=lambda i: -S[u, i])[:K]
    counts = np.zeros(8)
    for lst in lists.values():
        counts[lst] += 1
    mad_gini = np.abs(counts[:, None] - counts[None, :]).sum() / (2 * 8 ** 2 * counts.mean())
    ild = []
    for lst in lists.values():
        d = [1 - sim(i, j) for a, i in enumerate(lst) for j in lst[a + 1:] if sim(i, j) is not None]
        if d:
            ild.append(np.mean(d))
    return {"user": user, "case": case, "bucket": bucket, "lists": lists, "counts": counts, "gini": mad_gini,
            "head": np.mean([np.mean([bucket[i] == 0 for i in lst]) for lst in lists.values()]),
            "tail": np.mean([np.mean([bucket[i] == 2 for i in lst]) for lst in lists.values()]),
            "novelty": np.mean([np.mean([-math.log2(max(pop[i], 1) / 4) for i in lst]) for lst in lists.values()]),
            "diversity": np.mean(ild)}


def _genre_sim(i: int, j: int) -> float | None:
    a, b = set(filter(None, GENRES[i].split("|"))), set(filter(None, GENRES[j].split("|")))
    return len(a & b) / math.sqrt(len(a) * len(b)) if a and b else None


def _user_set_sim(i: int, j: int) -> float | None:
    a, b = ({u for u in TRAIN if x in TRAIN[u]} for x in (i, j))
    return len(a & b) / math.sqrt(len(a) * len(b)) if a and b else None


@pytest.mark.parametrize("genres, sim, by", [(GENRES, _genre_sim, "genre"), (None, _user_set_sim, "embedding")])
def test_every_figure_matches_a_hand_computation(genres, sim, by):
    hand = _by_hand(sim)
    res = evaluate_segments(_scorer, _split(genres), OPTS)
    s = res.summary
    assert hand["user"][0] == (1.0, 0.5) and hand["case"][3][:3] == (2, 4, 1.0)  # the tie and the case rank
    assert res.user_values["hr@3"].tolist() == [hand["user"][u][0] for u in range(4)]
    np.testing.assert_allclose(res.user_values["ndcg@3"], [hand["user"][u][1] for u in range(4)])
    assert list(zip(res.case_user, res.case_item)) == [c[:2] for c in sorted(hand["case"])]
    np.testing.assert_allclose(res.case_values["ndcg@3"], [c[3] for c in sorted(hand["case"])])
    # users: cold = at most 2 training items (users 0, 3); the others (3 and 6 items) cut at their median 4.5
    ub = s["users"]["buckets"]
    assert [(b["bucket"], b["lo"], b["hi"], b["n"]) for b in ub] == [("cold (≤2)", 0, 2, 2), ("3–4", 3, 4, 1),
                                                                     ("5–6", 5, 6, 1)]
    for b, users in zip(ub, ([0, 3], [2], [1])):
        assert b["ndcg@3"] == pytest.approx(np.mean([hand["user"][u][1] for u in users]))
        assert b["hr@3"] == pytest.approx(np.mean([hand["user"][u][0] for u in users]))
    # items: head {0, 1, 2} (nothing more popular holds 40%), tail {7} (70% on more popular items)
    assert hand["bucket"].tolist() == [0, 0, 0, 1, 1, 1, 1, 2]
    ib = s["items"]["buckets"]
    assert [(b["bucket"], b["items"], b["lo"], b["hi"]) for b in ib] == [("head", 3, 2, 4), ("torso", 4, 1, 1),
                                                                        ("tail", 1, 0, 0)]
    for j, b in enumerate(ib):
        mine = [c for c in hand["case"] if hand["bucket"][c[1]] == j]
        assert b["n"] == len(mine) and b["ndcg@3"] == pytest.approx(np.mean([c[3] for c in mine]))
        assert b["hr@3"] == pytest.approx(np.mean([c[2] for c in mine]))
    lists = s["lists"]
    assert lists["coverage@3"] == pytest.approx((hand["counts"] > 0).mean()) and lists["coverage@3"] == 7 / 8
    assert lists["gini@3"] == pytest.approx(hand["gini"])
    for key in ("head", "tail", "novelty", "diversity"):
        assert lists[f"{key}{'_share' if key in ('head', 'tail') else ''}@3"] == pytest.approx(hand[key]), key
    assert lists["diversity_by"] == by


def test_gini_of_extremes_and_against_the_mean_absolute_difference():
    assert gini(np.array([0, 0, 0, 5])) == pytest.approx(3 / 4) and gini(np.ones(7)) == 0
    c = np.random.default_rng(0).integers(0, 50, 40)
    assert gini(c) == pytest.approx(np.abs(c[:, None] - c[None, :]).sum() / (2 * 40 ** 2 * c.mean()))


def test_user_buckets_merge_a_small_quantile_bucket_and_keep_a_small_cold_one():
    act = np.array([1, 2, 3] + [10] * 20 + [11] + [12] * 20)
    # quartiles of the 41 non-cold users: 10, 11, 12 (= the largest, the last edge anyway): (5,10] 20 users,
    # (10,11] 1, (11,12] 20; the 1 joins its left neighbour (a tie with the right one)
    b = user_buckets(act, SegmentOptions(min_users=5))
    assert b.names == ("cold (≤5)", "6–11", "12") and b.edges == ((0, 5), (6, 11), (12, 12))
    assert np.bincount(b.of).tolist() == [3, 21, 20]
    assert user_buckets(act, SegmentOptions(min_users=1)).names == ("cold (≤5)", "6–10", "11", "12")
    assert user_buckets(act, SegmentOptions(min_users=100)).names == ("cold (≤5)", "6–12")  # one bucket left


def test_item_buckets_keep_equal_counts_together():
    pop = np.array([10, 5, 5, 5, 1, 1, 0])  # total 27: 5s have 10/27 = 0.37 above them, 1s 25/27 = 0.93
    b = item_buckets(pop, SegmentOptions(head_share=0.2, tail_share=0.2))
    assert b.of.tolist() == [0, 1, 1, 1, 2, 2, 2] and b.edges == ((10, 10), (5, 5), (0, 1))


def test_a_too_small_bucket_is_marked_and_gets_no_gain(tiny_split):
    m = train_model(tiny_split, ModelSpec("mf", 4), TrainConfig(epochs=1, device="cpu"), role="student_plain")
    res = model_segments(m.model, tiny_split, SegmentOptions(min_users=10 ** 6))
    assert all(b["too_few"] for by in ("users", "items") for b in res.summary[by]["buckets"])
    frame = gains_frame({"teacher": res, "student_kd": res, "student_plain": res}, "users")
    assert frame["gain"].isna().all()


@pytest.mark.parametrize("family", ["mf", "sasrec"])
def test_size_weighted_bucket_means_are_evaluate_means(tiny_split, family):
    m = train_model(tiny_split, ModelSpec(family, 8, layers=1), TrainConfig(epochs=1, device="cpu"))
    ev = evaluate(m.model, tiny_split, "test")
    res = model_segments(m.model, tiny_split, SegmentOptions(min_users=5))
    for by in ("users", "items"):  # leave-one-out: one test case per user
        b = [x for x in res.summary[by]["buckets"] if x["n"]]
        n = sum(x["n"] for x in b)
        assert n == ev["users"]
        for metric in ("ndcg@10", "hr@10"):
            assert sum(x["n"] * x[metric] for x in b) / n == pytest.approx(ev[metric], abs=1e-12)
    assert res.summary["lists"]["coverage@10"] == pytest.approx(ev["coverage@10"])


def test_chunks_change_nothing_and_no_block_exceeds_a_chunk(tiny_split):
    m = train_model(tiny_split, ModelSpec("mf", 4), TrainConfig(epochs=1, device="cpu"), role="student_plain")
    rows = []

    def scorer(users):
        rows.append(len(users))
        return m.model.score_all(users)
    small = evaluate_segments(scorer, tiny_split, SegmentOptions(chunk=7))
    assert max(rows) <= 7
    assert small.summary == model_segments(m.model, tiny_split, SegmentOptions(chunk=10_000)).summary


def test_bad_input_names_the_field_or_the_model():
    for bad, field in [({"k": 0}, "k"), ({"head_share": 1.5}, "head_share"), ({"min_users": 0}, "min_users"),
                       ({"head_share": 0.6, "tail_share": 0.6}, "head_share + tail_share")]:
        with pytest.raises(ConfigError, match=re.escape(f"segments {field} must")):
            SegmentOptions(**bad)
    with pytest.raises(ConfigError, match="k=9 is larger than the catalogue"):
        evaluate_segments(_scorer, _split(), SegmentOptions(k=9))
    with pytest.raises(ScoreError, match="the broken model"):
        evaluate_segments(lambda u: torch.full((len(u), 8), float("nan")), _split(), OPTS, name="the broken model")


def test_without_genres_diversity_is_by_embeddings_and_says_so():
    vec, by, note = diversity_space(_split(genres=[""] * 8))
    assert by == "embedding" and "truncated SVD" in note and "no genres" in note
    assert vec.shape == (8, 4) and np.linalg.norm(vec[7]) == 0  # item 7: no training interaction, no vector
    _, by, note = diversity_space(_split())
    assert by == "genre" and "3 genres" in note


# ----------------------------------------------------------------------------- the bootstrap
def test_bootstrap_is_seeded_and_agrees_with_scipy():
    from scipy import stats
    rng = np.random.default_rng(1)
    x = rng.random(300)  # the same users: the two models' values go together, which only a paired draw keeps
    a, b = x + 0.1 * rng.random(300), 0.8 * x + 0.1 * rng.random(300)
    g = bootstrap_gain(a, b, n_boot=20_000, seed=3)
    assert g == bootstrap_gain(a, b, n_boot=20_000, seed=3) and g != bootstrap_gain(a, b, n_boot=20_000, seed=4)
    ref = stats.bootstrap((a, b), lambda x, y: x.mean() - y.mean(), paired=True, vectorized=False,
                          n_resamples=20_000, method="percentile", rng=np.random.default_rng(0)).confidence_interval
    assert g.diff == pytest.approx(a.mean() - b.mean())
    assert (g.lo, g.hi) == pytest.approx((ref.low, ref.high), abs=0.05 * (ref.high - ref.low))
    se = np.std(a - b) / np.sqrt(len(a))  # the normal approximation, a third opinion
    assert (g.lo, g.hi) == pytest.approx((g.diff - 1.96 * se, g.diff + 1.96 * se), abs=0.1 * (g.hi - g.lo))
    assert g.ratio == pytest.approx(a.mean() / b.mean()) and g.ratio_lo < g.ratio < g.ratio_hi


def test_bootstrap_edge_cases():
    g = bootstrap_gain(np.full(50, 0.5), np.full(50, 0.25))
    assert (g.diff, g.lo, g.hi, g.ratio) == (0.25, 0.25, 0.25, 2.0)
    assert bootstrap_gain(np.ones(5), np.zeros(5)).ratio is None
    with pytest.raises(ValueError, match="paired"):
        bootstrap_gain(np.ones(3), np.ones(4))


def test_the_mean_ratio_over_seeds_is_bootstrapped_over_shared_users():
    """bench/methods.py's gain interval: per draw the same users for every seed and both models."""
    from scipy import stats
    rng = np.random.default_rng(2)
    x, lift = rng.random(400), 0.3 * rng.random(400)  # the test users: easy or hard, helped much or little,
    a = x * (1 + lift) + 0.05 * rng.random((3, 400))  # alike on every seed, as a test set's users are
    b = x + 0.05 * rng.random((3, 400))
    r = bootstrap_mean_ratio(a, b, n_boot=20_000, seed=5, at_least=1.0)
    want = float(np.mean(a.mean(1) / b.mean(1)))
    assert (r.ratio, r.n, r.runs) == (pytest.approx(want), 400, 3) and r.lo < want < r.hi
    ref = stats.bootstrap((a, b), lambda u, v, axis=-1: (u.mean(axis) / v.mean(axis)).mean(0), paired=True,
                          axis=-1, n_resamples=20_000, method="percentile",
                          rng=np.random.default_rng(0)).confidence_interval
    assert (r.lo, r.hi) == pytest.approx((ref.low, ref.high), abs=0.05 * (ref.high - ref.low))
    # the delta method for a ratio of paired means, averaged over the seeds with the users shared: a third opinion
    ma, mb = a.mean(1, keepdims=True), b.mean(1, keepdims=True)
    infl = ((a - ma / mb * b) / mb).mean(0)  # each user's influence on the mean ratio
    se = infl.std() / np.sqrt(400)
    assert (r.lo, r.hi) == pytest.approx((want - 1.96 * se, want + 1.96 * se), abs=0.1 * (r.hi - r.lo))
    assert r.share_at_least == pytest.approx(1.0, abs=0.01)  # the interval sits well above 1
    assert bootstrap_mean_ratio(a, b, n_boot=20_000, seed=5, at_least=want).share_at_least == pytest.approx(0.5, abs=0.03)
    # one seed: the same draws and bounds as bootstrap_gain's ratio
    g, one = bootstrap_gain(a[0], b[0], n_boot=3000, seed=7), bootstrap_mean_ratio(a[0], b[0], n_boot=3000, seed=7)
    assert (one.ratio, one.lo, one.hi) == pytest.approx((g.ratio, g.ratio_lo, g.ratio_hi), rel=1e-12)
    # drawing users independently per seed would narrow the interval: sharing them is what the test set does
    assert r.hi - r.lo > 1.2 * np.mean([bootstrap_mean_ratio(a[s], b[s], 4000).hi - bootstrap_mean_ratio(
        a[s], b[s], 4000).lo for s in range(3)]) / np.sqrt(3)


def test_mean_ratio_edge_cases():
    r = bootstrap_mean_ratio(np.full((2, 30), 0.5), np.full((2, 30), 0.25), n_boot=100)
    assert (r.ratio, r.lo, r.hi) == (2.0, 2.0, 2.0)
    assert bootstrap_mean_ratio(np.ones((2, 5)), np.zeros((2, 5))).ratio is None
    few = np.zeros(5)
    few[0] = 1.0  # most draws of 5 users miss the one user the plain model ranks well: no finite ratio
    r = bootstrap_mean_ratio(np.ones(5), few, n_boot=200)
    assert r.ratio == 5.0 and r.lo is None and r.hi is None
    with pytest.raises(ValueError, match="paired"):
        bootstrap_mean_ratio(np.ones((2, 3)), np.ones((3, 3)))


# ----------------------------------------------------------------------------- stored runs
def test_stored_runs_keep_their_segments_and_old_runs_get_them(tiny_ds, tiny_split, store):
    ids = make_runs(tiny_ds, store)
    space = diversity_space(tiny_split)
    models = {role: load_model(store, rid, tiny_ds) for role, rid in ids.items()}
    for role, rid in ids.items():
        assert store.get(rid).info["segments"] == model_segments(models[role], tiny_split, space=space).summary
    pair = distillations(store, tiny_ds.fingerprint)[0]
    assert pair_segments(store, pair, tiny_split, models).computed_now == ()
    store.update_info(ids["student_plain"], {"segments": None})  # as if stored before segments existed
    got = pair_segments(store, pair, tiny_split, models)
    assert got.computed_now == ("student_plain",)
    assert store.get(ids["student_plain"]).info["segments"] == got.results["student_plain"].summary
    assert store.get(ids["student_plain"]).info["params"] == models["student_plain"].n_params()  # nothing lost

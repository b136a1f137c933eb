"""Ranking metrics against hand-computed values and sklearn."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import ndcg_score

from distill_core.metrics import ScoreError, agreement, evaluate_ranking


def _csr(lists):
    ptr = np.cumsum([0] + [len(x) for x in lists])
    items = np.array([i for x in lists for i in x], dtype=np.int64)
    return ptr, items


SCORES = torch.tensor([
    [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],  # ranking 0,1,2,3,4,5
    [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # ranking 5,4,3,2,1,0
    [0.5, 0.1, 0.9, 0.3, 0.8, 0.2],  # ranking 2,4,0,3,5,1
], dtype=torch.float64)


def scorer(users: torch.Tensor) -> torch.Tensor:
    return SCORES[users]


def test_hand_computed_values():
    # user 0: item 0 seen -> ranking 1,2,3,...; relevant {2}: rank 2
    # user 1: nothing seen; relevant {4, 0}: ranks 2 and 6
    # user 2: item 2 seen -> ranking 4,0,3,5,1; relevant {1}: rank 5
    relevant = _csr([[2], [4, 0], [1]])
    seen = _csr([[0], [], [2]])
    m = evaluate_ranking(scorer, np.arange(3), relevant, seen, 6, ks=(2, 4), chunk=2)
    d = lambda r: 1 / np.log2(r + 1)  # noqa: E731
    assert m["hr@2"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["ndcg@2"] == pytest.approx((d(2) / d(1) + d(2) / (d(1) + d(2)) + 0) / 3)
    assert m["recall@4"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 2 + 1 / 5) / 3)
    # coverage@2: top-2 lists {1,2}, {5,4}, {4,0} -> 5 distinct of 6
    assert m["coverage@2"] == pytest.approx(5 / 6)


def test_ndcg_matches_sklearn():
    rng = np.random.default_rng(3)
    scores = torch.tensor(rng.normal(size=(40, 30)))
    rel_lists = [list(rng.choice(30, size=rng.integers(1, 4), replace=False)) for _ in range(40)]
    m = evaluate_ranking(lambda u: scores[u], np.arange(40), _csr(rel_lists), _csr([[]] * 40), 30, ks=(10,),
                         chunk=7)
    y_true = np.zeros((40, 30))
    for u, r in enumerate(rel_lists):
        y_true[u, r] = 1
    assert m["ndcg@10"] == pytest.approx(ndcg_score(y_true, scores.numpy(), k=10))


def test_agreement_overlap_and_spearman():
    rng = np.random.default_rng(1)
    a = torch.tensor(rng.normal(size=(5, 12)))
    b = a + torch.tensor(rng.normal(scale=0.7, size=(5, 12)))
    seen = _csr([[0, 1], [], [3], [], [11]])
    out = agreement(lambda u: a[u], lambda u: b[u], np.arange(5), seen, 12, k=3, chunk=2)
    ov, sp = [], []
    for u in range(5):
        keep = np.setdiff1d(np.arange(12), seen[1][seen[0][u]:seen[0][u + 1]])
        ta = set(keep[np.argsort(-a[u, keep].numpy())[:3]])
        tb = set(keep[np.argsort(-b[u, keep].numpy())[:3]])
        ov.append(len(ta & tb) / 3)
        sp.append(spearmanr(a[u, keep], b[u, keep]).statistic)
    assert out["overlap@3"] == pytest.approx(np.mean(ov))
    assert out["spearman"] == pytest.approx(np.mean(sp))
    same = agreement(lambda u: a[u], lambda u: a[u], np.arange(5), seen, 12, k=3)
    assert same["overlap@3"] == 1.0 and same["spearman"] == pytest.approx(1.0)


def test_k_larger_than_catalogue_is_refused():
    with pytest.raises(ValueError, match="larger than the catalogue"):
        evaluate_ranking(scorer, np.arange(3), _csr([[1]] * 3), _csr([[]] * 3), 6, ks=(10,))


def _numpy_pessimistic(scores: np.ndarray, rel_lists, seen_lists, ks):
    """Reference by hand: order each user's unseen items by score, ties non-relevant first."""
    out = {f"{m}@{k}": [] for k in ks for m in ("hr", "ndcg", "recall")} | {"mrr": []}
    for u, (rel, seen) in enumerate(zip(rel_lists, seen_lists)):
        items = np.setdiff1d(np.arange(scores.shape[1]), seen)
        is_rel = np.isin(items, rel)
        order = np.lexsort((is_rel, -scores[u, items]))  # primary: score desc; ties: non-relevant first
        ranks = np.flatnonzero(is_rel[order]) + 1  # 1-based ranks of the relevant items
        for k in ks:
            top = ranks[ranks <= k]
            out[f"hr@{k}"].append(float(len(top) > 0))
            ideal = np.sum(1 / np.log2(np.arange(2, min(len(rel), k) + 2)))
            out[f"ndcg@{k}"].append(np.sum(1 / np.log2(top + 1)) / ideal)
            out[f"recall@{k}"].append(len(top) / len(rel))
        out["mrr"].append(1 / ranks.min())
    return {k: float(np.mean(v)) for k, v in out.items()}


def test_constant_scorer_gets_the_worst_rank_not_the_best():
    # 300 users, 200 items, one held-out item each, nothing seen: every item ties with the held-out one,
    # so it is ranked below all 199 others (was MRR 1.0 and HR@10 0.043 by item index)
    n_users, n_items = 300, 200
    held = np.random.default_rng(0).integers(0, n_items, n_users)
    m = evaluate_ranking(lambda u: torch.zeros(len(u), n_items), np.arange(n_users),
                         _csr([[i] for i in held]), _csr([[]] * n_users), n_items, ks=(10, 20), chunk=64)
    assert m["mrr"] == pytest.approx(1 / 200, rel=1e-12)
    assert m["hr@10"] == m["ndcg@10"] == m["recall@10"] == m["hr@20"] == 0.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_scores_are_refused_naming_the_model(bad):
    n_users, n_items = 30, 40
    held = np.arange(n_users) % n_items
    scores = torch.randn(n_users, n_items)
    scores[torch.arange(n_users), torch.as_tensor(held)] = bad  # was HR@10 = NDCG@10 = MRR = 1.0 for NaN
    with pytest.raises(ScoreError, match=r"student_kd \(mf\).*non-finite"):
        evaluate_ranking(lambda u: scores[u], np.arange(n_users), _csr([[i] for i in held]),
                         _csr([[]] * n_users), n_items, ks=(10,), name="student_kd (mf)")
    assert issubclass(ScoreError, ValueError)


def test_nan_from_a_trained_model_names_its_family(tiny_split):
    from distill_core.config import ModelSpec
    from distill_core.distill import evaluate
    from distill_core.models import build_model

    model = build_model(ModelSpec(family="mf", dim=4), tiny_split)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(ScoreError, match="mf model"):
        evaluate(model, tiny_split, "test")


def test_ties_by_hand():
    scores = torch.tensor([
        [1.0, 1.0, 1.0, 0.5, 0.5, 0.0],  # relevant {1}: tied with 0 and 2 -> rank 3
        [0.2, 0.9, 0.9, 0.9, 0.1, 0.9],  # 5 seen; relevant {2, 3} tied with 1 -> ranks 2 and 3
        [0.3, 0.3, 0.3, 0.3, 0.3, 0.3],  # 0, 1 seen; relevant {4} tied with 2, 3, 5 -> rank 4
    ], dtype=torch.float64)
    m = evaluate_ranking(lambda u: scores[u], np.arange(3), _csr([[1], [2, 3], [4]]), _csr([[], [5], [0, 1]]),
                         6, ks=(2, 4), chunk=2)
    d = lambda r: 1 / np.log2(r + 1)  # noqa: E731
    assert m["hr@2"] == pytest.approx((0 + 1 + 0) / 3)
    assert m["hr@4"] == pytest.approx((1 + 1 + 1) / 3)
    assert m["ndcg@2"] == pytest.approx((0 + d(2) / (d(1) + d(2)) + 0) / 3)
    assert m["ndcg@4"] == pytest.approx((d(3) + (d(2) + d(3)) / (d(1) + d(2)) + d(4)) / 3)
    assert m["recall@2"] == pytest.approx((0 + 0.5 + 0) / 3)
    assert m["recall@4"] == pytest.approx(1.0)
    assert m["mrr"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 4) / 3)


@pytest.mark.parametrize("levels", [None, 4])
def test_random_scores_match_numpy_reference(levels):
    # levels=None: continuous scores, no ties (also checked against sklearn); 4: only 4 distinct values, many ties
    rng = np.random.default_rng(11)
    n_users, n_items = 60, 35
    raw = rng.normal(size=(n_users, n_items)) if levels is None else rng.integers(0, levels, (n_users, n_items))
    scores = torch.tensor(raw, dtype=torch.float64)
    rel_lists, seen_lists = [], []
    for _ in range(n_users):
        perm = rng.permutation(n_items)
        n_rel, n_seen = rng.integers(1, 6), rng.integers(0, 8)
        rel_lists.append(list(perm[:n_rel]))
        seen_lists.append(list(perm[n_rel:n_rel + n_seen]))
    m = evaluate_ranking(lambda u: scores[u], np.arange(n_users), _csr(rel_lists), _csr(seen_lists), n_items,
                         ks=(5, 10), chunk=16)
    ref = _numpy_pessimistic(raw, rel_lists, seen_lists, (5, 10))
    for key, value in ref.items():
        assert m[key] == pytest.approx(value, rel=1e-12), key
    if levels is None:
        y_true = np.zeros((n_users, n_items))
        masked = raw.copy()
        for u, (r, s) in enumerate(zip(rel_lists, seen_lists)):
            y_true[u, r] = 1
            masked[u, s] = -1e9  # seen items last, never relevant
        assert m["ndcg@10"] == pytest.approx(ndcg_score(y_true, masked, k=10))

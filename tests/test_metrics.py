"""Ranking metrics against hand-computed values and sklearn."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import ndcg_score

from distill_core.metrics import agreement, evaluate_ranking


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

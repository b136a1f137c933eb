"""Distillation methods (distill_core.distillers): a golden value per method on a tiny example computed by hand in
numpy, and the invariants each formula promises (Hinton's term is today's loss and 0 when the student is the
teacher; RD is a weighted CE; RRD is a Plackett-Luce probability summed over the uninteresting items' orders).
Training through train_model, the config, the refusals and the CLI: test_distillers_training.py."""
from __future__ import annotations

import itertools
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distill_core.config import DistillConfig
from distill_core.distillers import View, batch_loss, build
from distill_core.distillers.de import DE, de_distance, select
from distill_core.distillers.rd import RD
from distill_core.distillers.rrd import RRD, rrd_term, sample_ranks
from distill_core.losses import kd_loss
from distill_core.models.base import Batch
from distill_core.sampled import NegativeSampler, Negatives, large_kd_loss, top_k

S = np.array([[2.0, 1.0, 0.0, -1.0, 0.5], [0.0, 3.0, 1.0, 2.0, -2.0]])  # the student's scores
T = np.array([[0.0, 5.0, 4.0, 1.0, 2.0], [6.0, 0.0, 1.0, 5.0, 2.0]])  # the teacher's: top-2 = (1, 2), (0, 3)
TARGETS = [2, 4]


def _batch(s: np.ndarray, targets: list[int]) -> Batch:
    """A batch whose logits are ``s``: hidden = s, item vectors = the identity, no bias."""
    h = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    e, bias = torch.eye(s.shape[1], dtype=torch.float64), torch.zeros(s.shape[1], dtype=torch.float64)
    return Batch(h, lambda i: (e, bias) if i is None else (e[i], bias[i]), torch.tensor(targets),
                 torch.arange(len(s)), torch.arange(len(s)))


class _Soft:
    """The teacher's side of a View from given logits (what a method reads of SoftLabels)."""

    def __init__(self, t: np.ndarray, temperature: float = 1.0, k: int | None = None, users=None, items=None) -> None:
        self.t, self.temperature, self.k, self.table = torch.tensor(t, dtype=torch.float64), temperature, k, None
        self.teacher = SimpleNamespace(n_items=t.shape[1])
        self.users, self.items = users, items

    def for_batch(self, b):
        return self.t, None

    def top_for_batch(self, b, k=None):
        return top_k(self.t, self.k or k or self.t.shape[1], self.temperature)

    def teacher_vectors(self, b):
        return self.users

    def teacher_item_vectors(self, items):
        return self.items[items]


def _view(cfg: DistillConfig, soft: _Soft, neg: Negatives | None = None, seed: int = 0, s=S, targets=TARGETS) -> View:
    return View(_batch(s, targets), soft, cfg, neg, torch.Generator().manual_seed(seed))


def _np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _nll(s: np.ndarray, i: int, neg: tuple[list[int], list[float]] | None = None) -> float:
    """-log softmax(s)_i, or its sampled-softmax form over negatives (items, log S q) without i's hits."""
    if neg is None:
        return float(np.log(np.exp(s).sum()) - s[i])
    terms = [np.exp(s[i])] + [np.exp(s[j] - lq) for j, lq in zip(*neg) if j != i]
    return float(np.log(sum(terms)) - s[i])


# ---------------------------------------------------------------------------------------------- Hinton KD
def test_logits_golden_value_and_total_by_hand():
    cfg = DistillConfig(alpha=0.3, temperature=2.0, method="logits")
    p, log_q = np.exp(_np_log_softmax(T / 2)), _np_log_softmax(S / 2)
    kl = float((p * (np.log(p) - log_q)).sum(1).mean())
    ce = float(np.mean([_nll(S[r], TARGETS[r]) for r in range(2)]))
    d = build("logits", cfg)
    out = batch_loss(d, _view(cfg, _Soft(T, 2.0)))
    assert d.scale == 4.0 and out.kl.item() == pytest.approx(kl, abs=1e-10)
    assert out.total.item() == pytest.approx(0.3 * ce + 0.7 * 4.0 * kl, abs=1e-10)


def test_logits_term_is_todays_loss_on_every_path_and_zero_when_the_student_is_the_teacher():
    cfg = DistillConfig(alpha=0.4, temperature=1.5)
    d = build("logits", cfg)
    b = _batch(S, TARGETS)
    dense = batch_loss(d, _view(cfg, _Soft(T, 1.5)))
    assert dense.total.item() == pytest.approx(kd_loss(b.logits(), b.targets, torch.tensor(T), cfg).total.item())
    labels = top_k(torch.tensor(T), 3, 1.5)
    full_k = batch_loss(d, _view(cfg, _Soft(T, 1.5, k=3)))
    assert full_k.total.item() == pytest.approx(large_kd_loss(b, labels, 0.4, 1.5, True, None)[2].item())
    s1, s2 = (NegativeSampler(np.arange(5), 4, 0.5, seed=3) for _ in range(2))  # the same draws twice
    sampled = batch_loss(d, _view(cfg, _Soft(T, 1.5, k=3), neg=s1.draw()))
    assert sampled.total.item() == pytest.approx(large_kd_loss(b, labels, 0.4, 1.5, True, s2)[2].item())
    for k in (None, 3):
        assert abs(d.term(_view(cfg, _Soft(S, 1.5, k=k))).item()) < 1e-12


# ---------------------------------------------------------------------------------------------- RD
@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_rd_golden_value_by_hand(mu):
    """K = 2, lambda = 1: w = exp(-r) normalised; row 0's second item is its target (weight 0); with mu the
    student's exact ranks (1 and 3, 1 items above) against the teacher's positions 0 and 1."""
    cfg = DistillConfig(alpha=0.5, method="rd", rank_k=2, rd_lambda=1.0, rd_mu=mu)
    w = np.exp(-np.array([1.0, 2.0]))
    w /= w.sum()
    top = np.argsort(-T, 1)[:, :2]
    want = []
    for r in range(2):
        terms = []
        for pos, i in enumerate(top[r]):
            rank = int((S[r] > S[r, i]).sum())
            wd = np.tanh(max(mu * (rank - pos), 0.0)) if mu > 0 else 1.0
            terms.append(0.0 if i == TARGETS[r] else w[pos] * wd * _nll(S[r], i))
        want.append(sum(terms))
    assert RD(cfg).term(_view(cfg, _Soft(T))).item() == pytest.approx(np.mean(want), abs=1e-10)
    # the sampled path: the sampled softmax with logQ correction over the batch's negatives
    neg_items, le = [0, 3, 1, 3], [0.2, -0.1, 0.4, -0.1]
    neg = Negatives(torch.tensor(neg_items), torch.tensor(le, dtype=torch.float64))
    cfg0 = DistillConfig(alpha=0.5, method="rd", rank_k=2, rd_mu=0.0)
    want = [sum(0.0 if i == TARGETS[r] else w[p] * _nll(S[r], i, (neg_items, le)) for p, i in enumerate(top[r]))
            for r in range(2)]
    assert RD(cfg0).term(_view(cfg0, _Soft(T, k=4), neg=neg)).item() == pytest.approx(np.mean(want), abs=1e-10)


def test_rd_is_a_weighted_ce_and_its_dynamic_weight_vanishes_when_the_student_ranks_as_the_teacher():
    cfg = DistillConfig(alpha=0.5, method="rd", rank_k=1, rd_mu=0.0)
    b = _batch(S, TARGETS)
    top1 = torch.tensor(T).argmax(1)
    ce = F.cross_entropy(b.logits(), top1)
    assert RD(cfg).term(_view(cfg, _Soft(T))).item() == pytest.approx(ce.item(), abs=1e-12)
    every = Negatives(torch.arange(5), torch.zeros(5, dtype=torch.float64))  # all items once, q = 1 / S
    assert RD(cfg).term(_view(cfg, _Soft(T, k=4), neg=every)).item() == pytest.approx(ce.item(), abs=1e-12)
    v = _view(cfg, _Soft(T, k=4), neg=every)
    torch.testing.assert_close(v.rank(torch.tensor([[0, 1], [2, 3]])), _view(cfg, _Soft(T)).rank(
        torch.tensor([[0, 1], [2, 3]])))  # the estimate from every item once is the exact rank
    dyn = DistillConfig(method="rd", rank_k=3, rd_mu=1.0)
    assert RD(dyn).term(_view(dyn, _Soft(T), s=T, targets=[3, 4])).item() == 0.0  # student == teacher
    assert RD(dyn).term(_view(dyn, _Soft(T), s=-T, targets=[3, 4])).item() > 0.0  # reversed: pushed


# ---------------------------------------------------------------------------------------------- RRD
def _np_rrd_row(inter: list[float], unint: list[float]) -> float:
    return -sum(inter[k] - np.log(np.exp(inter[k:]).sum() + np.exp(unint).sum()) for k in range(len(inter)))


def test_rrd_golden_value_and_the_brute_force_plackett_luce():
    inter, unint = np.array([[1.0, 0.5], [-0.3, 2.0]]), np.array([[0.2, -1.0, 0.7], [1.5, 0.0, -0.4]])
    got = rrd_term(torch.tensor(inter), torch.tensor(unint))
    assert got.item() == pytest.approx(np.mean([_np_rrd_row(list(i), list(u)) for i, u in zip(inter, unint)]))
    for i, u in zip(inter, unint):  # P(pi first, in order) = sum over every order of U of the full PL probability
        total = 0.0
        for order in itertools.permutations(u):
            seq, p = np.concatenate([i, order]), 1.0
            for k in range(len(seq)):
                p *= np.exp(seq[k]) / np.exp(seq[k:]).sum()
            total += p
        assert rrd_term(torch.tensor(i[None]), torch.tensor(u[None])).item() == pytest.approx(-np.log(total), abs=1e-10)
    agree, reverse = rrd_term(torch.tensor([[3.0, 2.0]]), torch.zeros(1, 3)), rrd_term(torch.tensor([[2.0, 3.0]]),
                                                                                         torch.zeros(1, 3))
    assert agree < reverse  # the teacher's order is the likelier one


def test_rrd_through_a_batch_by_hand():
    """pool = K = 2 (the teacher's top 2, no sampling); L = 4 items drawn uniformly (the same generator replayed),
    each left out of the rows whose pool or target holds it."""
    cfg = DistillConfig(alpha=0.5, method="rrd", rank_k=2, rrd_pool=2, rrd_l=4)
    u = torch.randint(0, 5, (4,), generator=torch.Generator().manual_seed(5)).tolist()
    top = np.argsort(-T, 1)[:, :2]
    want = [_np_rrd_row([S[r, i] for i in top[r]], [S[r, j] for j in u if j not in top[r] and j != TARGETS[r]])
            for r in range(2)]
    assert RRD(cfg).term(_view(cfg, _Soft(T), seed=5)).item() == pytest.approx(np.mean(want), abs=1e-10)
    every = Negatives(torch.arange(5), torch.zeros(5, dtype=torch.float64))
    assert RRD(cfg).term(_view(cfg, _Soft(T, k=3), neg=every, seed=5)).item() == pytest.approx(np.mean(want))


def test_rrd_draws_interesting_ranks_by_exp_minus_rank_over_t():
    ranks = sample_ranks(20_000, 3, 1, 1.0, torch.Generator().manual_seed(0))
    freq = np.bincount(ranks.flatten().numpy(), minlength=3) / 20_000
    p = np.exp(-np.arange(1, 4))
    np.testing.assert_allclose(freq, p / p.sum(), atol=0.015)
    two = sample_ranks(50, 10, 4, 2.0, torch.Generator().manual_seed(1))
    assert (two.diff(1) > 0).all()  # distinct and in the teacher's order


def test_combinations_add_the_weighted_rrd_term_to_the_first():
    cfg = DistillConfig(alpha=0.2, temperature=2.0, method="logits+rrd", rank_k=2, rrd_pool=2, rrd_l=4,
                        combo_weight=0.3)
    combo = build(cfg.method, cfg)
    kl = build("logits", cfg).term(_view(cfg, _Soft(T, 2.0), seed=5)).item()
    rrd = build("rrd", cfg).term(_view(cfg, _Soft(T, 2.0), seed=5)).item()
    out = batch_loss(combo, _view(cfg, _Soft(T, 2.0), seed=5))
    ce = float(np.mean([_nll(S[r], TARGETS[r]) for r in range(2)]))
    assert combo.scale == 1.0 and out.kl.item() == pytest.approx(4.0 * kl + 0.3 * rrd, abs=1e-10)
    assert out.total.item() == pytest.approx(0.2 * ce + 0.8 * (4.0 * kl + 0.3 * rrd), abs=1e-10)
    de_rrd = build("de+rrd", replace(cfg, method="de+rrd"), dims=(2, 3))
    assert (type(de_rrd.first), type(de_rrd.second), de_rrd.weight) == (DE, RRD, 0.3)


# ---------------------------------------------------------------------------------------------- DE
def _np_expert(e: torch.nn.Sequential, s: np.ndarray) -> np.ndarray:
    w1, b1, w2, b2 = (p.detach().double().numpy() for p in (e[0].weight, e[0].bias, e[2].weight, e[2].bias))
    return np.maximum(s @ w1.T + b1, 0.0) @ w2.T + b2


def test_de_golden_value_by_hand_with_one_expert():
    torch.manual_seed(0)
    de = DE(2, 3, n_experts=1, tau=1.0).double()
    s = np.array([[0.5, -1.0], [2.0, 0.3]])
    tu, ti = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]]), np.arange(15.0).reshape(5, 3) / 10
    e_items = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [2.0, -1.0]])
    h = torch.tensor(s, requires_grad=True)
    b = Batch(h, lambda i: (torch.tensor(e_items)[i], torch.zeros(len(i))), torch.tensor(TARGETS),
              torch.arange(2), torch.arange(2))
    soft = _Soft(T, users=torch.tensor(tu), items=torch.tensor(ti))
    v = View(b, soft, DistillConfig(method="de"), None, torch.Generator().manual_seed(2))
    pos = np.unique(TARGETS)
    neg = torch.randint(0, 5, (len(pos),), generator=torch.Generator().manual_seed(2)).numpy()

    def dist(side, x, t):
        return float((((t - _np_expert(side.experts[0], x)) ** 2).sum(1)).mean() / 3)
    want = dist(de.users, s, tu) + 0.5 * (dist(de.items, e_items[pos], ti[pos]) + dist(de.items, e_items[neg], ti[neg]))
    got = de.term(v)
    assert got.item() == pytest.approx(want, abs=1e-10)
    got.backward()
    assert h.grad is not None and de.users.experts[0][0].weight.grad is not None


def test_de_gumbel_selection_by_hand_and_a_sure_gate_picks_one_expert():
    alpha, g = torch.tensor([[0.7, 0.2, 0.1]]), torch.tensor([[0.1, -0.5, 1.2]])
    z = np.log(np.array([0.7, 0.2, 0.1]) + 1e-10) + np.array([0.1, -0.5, 1.2])
    want = np.exp((z - z.max()) / 0.5) / np.exp((z - z.max()) / 0.5).sum()
    np.testing.assert_allclose(select(alpha, g, 0.5).numpy()[0], want, rtol=1e-6)
    torch.manual_seed(1)
    de = DE(2, 3, n_experts=2, tau=1e-3)
    with torch.no_grad():  # the gate sends everything to expert 1
        de.users.gate.weight.zero_()
        de.users.gate.bias.copy_(torch.tensor([-50.0, 50.0]))
    s, t = torch.randn(4, 2), torch.randn(4, 3, requires_grad=True)
    v = SimpleNamespace(gumbel=lambda shape: torch.zeros(shape))
    one = de_distance(s, t, torch.nn.ModuleList([de.users.experts[1]]), None)
    assert de.users.distance(s, t, v, 1e-3).item() == pytest.approx(one.item(), rel=1e-6)
    de.users.distance(s, t, v, 1e-3).backward()
    assert t.grad is None  # the teacher's representations are data

"""Large-catalogue losses (distill_core.sampled): golden values computed by hand in numpy, the exact limits
(K = the catalogue is today's KL; the sampled CE tends to the full CE) and the sampler's proposal."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distill_core.config import DistillConfig
from distill_core.losses import kd_kl, kd_loss
from distill_core.models.base import Batch
from distill_core.sampled import (NegativeSampler, Negatives, TopK, exact_rest, large_kd_loss, masked_logsumexp, member,
                                  sampled_ce,
                                  sampled_rest, top_k, top_k_blocked, topk_kl)


def _batch(n: int = 6, n_items: int = 9, dim: int = 4, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, dim, generator=g, dtype=torch.float64)
    e = torch.randn(n_items, dim, generator=g, dtype=torch.float64)
    bias = torch.randn(n_items, generator=g, dtype=torch.float64)
    targets = torch.randint(0, n_items, (n,), generator=g)

    def vectors(items):
        return (e, bias) if items is None else (e[items], bias[items])
    return Batch(h, vectors, targets, torch.arange(n), torch.arange(n))


def _np_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


@pytest.mark.parametrize("dim", [4, 32])  # row_logits multiplies and sums up to dim 16, bmm above
def test_batch_scores_agree_with_the_full_logits(dim):
    b = _batch(dim=dim)
    full = b.logits()
    items = torch.tensor([3, 0, 7])
    torch.testing.assert_close(b.logits_at(items), full[:, items])
    rows = torch.tensor([[1, 2], [0, 0], [8, 3], [4, 5], [6, 7], [2, 1]])
    torch.testing.assert_close(b.row_logits(rows), full.gather(1, rows))
    torch.testing.assert_close(b.target_logits(), full.gather(1, b.targets[:, None]).squeeze(1))


def test_topk_kl_with_the_whole_catalogue_is_todays_kl_and_loss():
    b = _batch()
    t = torch.randn(6, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    s = b.logits()
    for T in (0.5, 1.0, 3.0):
        labels = top_k(t, 9, T)
        assert torch.isinf(labels.log_rest).all()
        got = topk_kl(s.gather(1, labels.items), exact_rest(s, labels.items, T), labels, T)
        ref = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="batchmean", log_target=True)
        assert abs(got.item() - ref.item()) < 1e-6
        cfg = DistillConfig(alpha=0.3, temperature=T)
        ce, kl, total = large_kd_loss(b, labels, cfg.alpha, T, True, None)
        assert abs(total.item() - kd_loss(s, b.targets, t, cfg).total.item()) < 1e-6


def test_topk_kl_golden_value_by_hand():
    """Two rows, five items, K = 2: the KL of the (K + 1)-bucket coarsenings, computed in numpy."""
    t = np.array([[2.0, 1.0, 0.0, -1.0, 0.5], [0.0, 3.0, 1.0, 1.0, -2.0]])
    s = np.array([[1.0, 1.5, 0.2, 0.0, 0.0], [0.5, 2.0, -1.0, 2.0, 0.0]])
    T, K = 2.0, 2
    p, q = _np_softmax(t / T), _np_softmax(s / T)
    ref = 0.0
    for r in range(2):
        top = np.argsort(-t[r])[:K]
        rest = np.setdiff1d(np.arange(5), top)
        pk, qk = p[r, top], q[r, top]
        pr, qr = p[r, rest].sum(), q[r, rest].sum()
        ref += (pk * np.log(pk / qk)).sum() + pr * np.log(pr / qr)
    ref /= 2
    tt, st = torch.tensor(t), torch.tensor(s)
    labels = top_k(tt, K, T)
    got = topk_kl(st.gather(1, labels.items), exact_rest(st, labels.items, T), labels, T)
    assert abs(got.item() - ref) < 1e-9
    full = kd_kl(st, tt, T).item()
    assert got.item() < full  # a coarsening never raises the KL (log-sum inequality)


def test_topk_kl_is_zero_when_the_student_is_the_teacher_and_the_teacher_gets_no_gradient():
    t = torch.randn(4, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    s = t.detach().clone().requires_grad_(True)
    labels = top_k(t, 5, 1.5)
    kl = topk_kl(s.gather(1, labels.items), exact_rest(s, labels.items, 1.5), labels, 1.5)
    assert abs(kl.item()) < 1e-12
    (kl + s.sum()).backward()
    assert t.grad is None


def test_top_k_keeps_the_normaliser_and_the_rest_mass():
    t = torch.randn(3, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    lab = top_k(t, 7, 2.0)
    p = torch.softmax(t / 2.0, -1)
    torch.testing.assert_close(lab.log_p(2.0).exp(), p.gather(1, lab.items))
    torch.testing.assert_close(lab.log_rest.exp(), 1 - p.gather(1, lab.items).sum(1))


def test_sampled_ce_golden_value_with_an_accidental_hit():
    b = _batch(n=2, n_items=6, seed=4)
    b = Batch(b.hidden, b.item_vectors, torch.tensor([1, 4]), b.users, b.idx)
    q = np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.1])
    negs = np.array([4, 0, 4, 2])  # row 1's target (4) drawn twice: both masked in that row
    S = len(negs)
    neg = Negatives(torch.tensor(negs), torch.tensor(np.log(S * q[negs])))
    s = b.logits().numpy()
    ref = []
    for r, y in enumerate([1, 4]):
        terms = [np.exp(s[r, j] - np.log(S * q[j])) for j in negs if j != y]
        ref.append(-s[r, y] + np.log(np.exp(s[r, y]) + sum(terms)))
    assert abs(sampled_ce(b, neg).item() - np.mean(ref)) < 1e-9


def test_sampled_ce_tends_to_the_full_ce_as_negatives_grow():
    b = _batch(n=8, n_items=40, seed=5)
    full = F.cross_entropy(b.logits(), b.targets).item()
    counts = np.arange(40) ** 2  # a skewed popularity proposal: the correction matters
    errs = []
    for S in (20, 2000, 200_000):
        sampler = NegativeSampler(counts, S, beta=1.0, seed=0)
        neg = sampler.draw()
        neg = Negatives(neg.items, neg.log_expected.double())
        errs.append(abs(sampled_ce(b, neg).item() - full))
    assert errs[2] < 0.01 and errs[2] < errs[0]
    # without the logQ correction the estimate stays biased by the proposal
    sampler = NegativeSampler(counts, 200_000, beta=1.0, seed=0)
    neg = sampler.draw()
    uncorrected = Negatives(neg.items, torch.full((200_000,), float(np.log(200_000 / 40)), dtype=torch.float64))
    assert abs(sampled_ce(b, uncorrected).item() - full) > 10 * errs[2]


def test_sampled_rest_estimates_the_exact_rest():
    b = _batch(n=5, n_items=60, seed=6)
    s = b.logits()
    labels_items = s.topk(4, dim=1).indices  # any K items per row
    sampler = NegativeSampler(np.ones(60), 100_000, beta=0.0, seed=1)
    neg = sampler.draw()
    neg = Negatives(neg.items, neg.log_expected.double())
    est = sampled_rest(b, neg, labels_items, 2.0)
    torch.testing.assert_close(est, exact_rest(s, labels_items, 2.0), atol=0.02, rtol=0)


def test_sampler_draws_from_its_proposal_and_is_reproducible():
    counts = np.array([0, 9, 99, 0])
    for beta, expect in ((0.0, np.full(4, 0.25)), (1.0, np.array([1, 10, 100, 1]) / 112)):
        a, b = NegativeSampler(counts, 50_000, beta, seed=3), NegativeSampler(counts, 50_000, beta, seed=3)
        items = a.draw().items
        assert torch.equal(items, b.draw().items)
        freq = np.bincount(items.numpy(), minlength=4) / 50_000
        np.testing.assert_allclose(freq, expect, atol=0.01)
        np.testing.assert_allclose(a.log_expected(torch.arange(4)).exp().numpy(), 50_000 * expect, rtol=1e-4)


def test_topk_row_lookup():
    lab = TopK(torch.tensor([[1, 2], [3, 4], [5, 6]]), torch.zeros(3, 2), torch.zeros(3), torch.zeros(3))
    assert lab[torch.tensor([2, 0])].items.tolist() == [[5, 6], [1, 2]]


@pytest.mark.parametrize("alpha", [1.0, 0.0])
def test_large_loss_alpha_ends(alpha):
    b = _batch(n=4, n_items=30, seed=7)
    t = torch.randn(4, 30, dtype=torch.float64)
    labels = top_k(t, 5, 1.0)
    sampler = NegativeSampler(np.ones(30), 10, 0.0, seed=0)
    ce, kl, total = large_kd_loss(b, labels, alpha, 1.0, True, sampler)
    assert torch.equal(total, ce) if alpha == 1.0 else torch.equal(total, kl)


def test_top_k_blocked_equals_top_k_of_the_full_logits():
    g = torch.Generator().manual_seed(8)
    h, e, bias = torch.randn(7, 5, generator=g), torch.randn(103, 5, generator=g), torch.randn(103, generator=g)
    for t in (1.5, 1.0):  # T = 1 skips the division
        ref = top_k(torch.addmm(bias, h, e.t()), 10, t)
        for block, rows in ((10, 128), (17, 2), (64, 3), (500, 128)):  # rows: a block's rows at a time
            got = top_k_blocked(h, e, bias, 10, t, block, rows)
            assert torch.equal(got.items, ref.items)
            for f in ("logits", "lse", "log_rest"):
                torch.testing.assert_close(getattr(got, f), getattr(ref, f))
    full = top_k_blocked(h, e, bias, 103, 1.5, 17)
    assert torch.isinf(full.log_rest).all() and torch.equal(full.items.sort(1).values, torch.arange(103).expand(7, -1))


def test_soft_labels_top_k_table_is_the_teachers_top_k_per_user(tiny_split):
    from distill_core.config import ModelSpec
    from distill_core.models import build_model
    from distill_core.soft_labels import SoftLabels

    teacher = build_model(ModelSpec("mf", 8), tiny_split)
    soft = SoftLabels(teacher, tiny_split, temperature=2.0, top_k=5)
    users = torch.tensor([4, 0, 4, 9])
    ref = top_k(teacher.score_all(users), 5, 2.0)
    got = soft.table[users]
    assert torch.equal(got.items.long(), ref.items)
    torch.testing.assert_close(got.lse, ref.lse)
    torch.testing.assert_close(got.log_rest, ref.log_rest)
    assert soft.nbytes() < tiny_split.n_users * tiny_split.n_items * 4


def test_member_matches_a_pairwise_check_with_repeated_draws():
    g = torch.Generator().manual_seed(3)
    items = torch.randint(0, 40, (60,), generator=g)  # 60 draws of 40 items: many repeats
    sets = torch.randint(0, 40, (7, 9), generator=g)
    sets[0, :3] = items[:3]  # rows that hold drawn items for sure
    want = (items.view(1, -1, 1) == sets.unsqueeze(1)).any(2)  # (n, m) by brute force
    assert want.any() and not want.all()
    assert torch.equal(member(items, sets), want)
    assert torch.equal(member(items, sets, n_items=40), want)


def test_sampled_rest_when_every_draw_is_in_a_rows_k_falls_back_below_the_draws():
    b = _batch(n=3, n_items=8, seed=7)
    hidden = b.hidden.detach().clone().requires_grad_(True)
    b = Batch(hidden, b.item_vectors, b.targets, b.users, b.idx)
    items = torch.tensor([[0, 1, 2], [3, 4, 5], [5, 6, 7]])
    neg = Negatives(torch.tensor([0, 2, 1, 0]), torch.zeros(4, dtype=torch.float64))  # all in row 0's K
    s = b.logits_at(neg.items).detach()
    est = sampled_rest(b, neg, items, 2.0)
    assert est[0].item() == pytest.approx(s[0].min().item() / 2.0 - 30.0)  # row 0: the fallback
    for r in (1, 2):  # no draw in these rows' K: the plain importance-sampling sum over all four draws
        assert est[r].item() == pytest.approx(torch.logsumexp(s[r] / 2.0, 0).item())
    est.sum().backward()
    assert torch.isfinite(hidden.grad).all()


@pytest.mark.parametrize("scale, extra", [(1.0, True), (0.5, False), (1.0, False)])
def test_masked_logsumexp_equals_the_composition_in_value_and_gradient(scale, extra):
    g = torch.Generator().manual_seed(11)
    s = torch.randn(6, 9, generator=g, dtype=torch.float64) * 3
    shift = torch.randn(9, generator=g, dtype=torch.float64)
    mask = torch.rand(6, 9, generator=g) < 0.4
    mask[1] = True  # every term masked: -inf without an extra, the extra alone with one
    pos = torch.randn(6, generator=g, dtype=torch.float64)
    a, b = s.clone().requires_grad_(), s.clone().requires_grad_()
    pa, pb = pos.clone().requires_grad_(), pos.clone().requires_grad_()
    got = masked_logsumexp(a, scale, shift, mask, pa if extra else None)
    terms = torch.where(mask, float("-inf"), scale * b - shift)  # the composition, by torch's own ops
    want = torch.logsumexp(torch.cat([pb.unsqueeze(1), terms], 1) if extra else terms, 1)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    assert torch.isinf(got[1]) != extra
    w = torch.randn(6, generator=g, dtype=torch.float64)
    keep = torch.isfinite(want)  # a -inf row takes no gradient (sampled_rest replaces it by a floor)
    (got[keep] * w[keep]).sum().backward()
    (want[keep] * w[keep]).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, atol=1e-12, rtol=0)
    if extra:
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(lambda x, y: masked_logsumexp(x, scale, shift, mask, y if extra else None)[keep],
                                    (s.clone().requires_grad_(), pos.clone().requires_grad_()))


def test_masked_logsumexp_keeps_the_scores_dtype_with_double_corrections():
    s = torch.randn(4, 5, requires_grad=True)  # float32 scores, float64 log(S q) as the tests' samplers give
    out = masked_logsumexp(s, 1.0, torch.zeros(5, dtype=torch.float64), torch.zeros(4, 5, dtype=torch.bool))
    out.sum().backward()
    assert s.grad.dtype == torch.float32
    torch.testing.assert_close(out.float(), torch.logsumexp(s.detach(), 1))

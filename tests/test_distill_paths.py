"""Paths of the distillation pipeline that a deliberate bug once slipped past: each test here fails when
its path is broken (T-rescaled cached log-probs, the validation item left out of the test ranking,
per-step labels from the example's own window or prefix, the teacher in eval mode)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distill_core.config import DistillConfig, ModelSpec, TrainConfig
from distill_core.distill import SoftLabels, evaluate, train_model
from distill_core.losses import kd_kl
from distill_core.models import Recommender, build_model

SASREC = ModelSpec("sasrec", 16, layers=1, max_len=10)


def _sharp_mf(split) -> Recommender:
    """An mf teacher with scores of order 10, so that softmax(t / T) clearly depends on T."""
    teacher = build_model(ModelSpec("mf", 8), split)
    with torch.no_grad():
        teacher.user.weight.normal_(0, 1.5)
        teacher.item.weight.normal_(0, 1.5)
    return teacher


def _prefix_by_hand(split, j: int, length: int) -> torch.Tensor:
    """The training items of pair ``j``'s user strictly before it, newest last, left-padded: ``(1, length)``."""
    u = int(split.train_users[j])
    before = split.train_items[split.train_ptr[u]:j][-length:].tolist()
    return torch.tensor([[split.n_items] * (length - len(before)) + before])


# ---------------------------------------------------------------- (a) cached log-probs rescaled by T
@pytest.mark.parametrize("T", [1.0, 4.0])
def test_cached_soft_labels_soften_like_the_teachers_logits_at_every_temperature(tiny_split, T):
    teacher = _sharp_mf(tiny_split)
    users = torch.tensor([3, 0, 3, 11, 42, 79])
    t = teacher.score_all(users)  # (6, n_items), the uncached path
    soft = SoftLabels(teacher, tiny_split, "current", temperature=T)
    assert soft.cache_log_p is not None and soft.cache is None  # the cached path is the one under test
    got = soft.logits(users)
    for T2 in (1.0, 4.0, T):
        torch.testing.assert_close(torch.log_softmax(got / T2, -1), torch.log_softmax(t / T2, -1),
                                   rtol=0, atol=1e-4)
    s = torch.randn(len(users), tiny_split.n_items, generator=torch.Generator().manual_seed(0))
    assert kd_kl(s, got, T).item() == pytest.approx(kd_kl(s, t, T).item(), rel=1e-4)
    if T != 1.0:  # not vacuous: the un-rescaled cache softens differently
        assert not torch.allclose(torch.log_softmax(soft.cache_log_p[users] / T, -1),
                                  torch.log_softmax(t / T, -1), atol=1e-2)


def test_window_student_gets_the_rescaled_cached_row_at_every_position(tiny_split):
    # an mf teacher has no steps: a sasrec student reads the user's one cached row at each valid position
    T = 4.0
    teacher = _sharp_mf(tiny_split)
    soft = SoftLabels(teacher, tiny_split, "current", temperature=T)
    w_users, w_in, w_tgt = (torch.as_tensor(a) for a in tiny_split.train_windows(10))
    idx = torch.arange(0, len(w_users), 7)
    valid = w_tgt[idx] >= 0
    got = soft.window_logits(w_users[idx], w_in[idx], valid)  # (n_valid, n_items)
    rows = torch.cat([teacher.score_all(w_users[i:i + 1]).expand(int(valid[k].sum()), -1)
                      for k, i in enumerate(idx.tolist())])
    torch.testing.assert_close(torch.log_softmax(got / T, -1), torch.log_softmax(rows / T, -1), rtol=0, atol=1e-4)


# ---------------------------------------------------------------- (b) validation item left out of the test ranking
class _Table(Recommender):
    family = "table"

    def __init__(self, scores: torch.Tensor) -> None:
        super().__init__(ModelSpec("mf", 2), scores.shape[0], scores.shape[1])
        self.scores = torch.nn.Parameter(scores)

    def forward(self, users: torch.Tensor, seq: torch.Tensor | None = None) -> torch.Tensor:
        return self.scores[users]


def test_the_validation_item_is_not_ranked_when_testing(tiny_split):
    # every user's validation item scores highest, the test item second, everything else lower: with the
    # validation item excluded (it is known at test time) the test item is first, else it is second
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(tiny_split.n_users, tiny_split.n_items, generator=g) * 0.5
    vp, vi = tiny_split.held_out("valid")
    tp, ti = tiny_split.held_out("test")
    users = tiny_split.eval_users("test")
    assert np.all(np.diff(vp)[users] > 0)  # each tested user has a validation item to leave out
    for u in users:
        scores[u, vi[vp[u]:vp[u + 1]]] = 2.0
        scores[u, ti[tp[u]:tp[u + 1]]] = 1.0
    test = evaluate(_Table(scores), tiny_split, "test", ks=(1, 10))
    assert test["users"] == len(users) and test["mrr"] == 1.0 and test["hr@1"] == 1.0
    valid = evaluate(_Table(scores), tiny_split, "valid", ks=(1,))
    assert valid["mrr"] == 1.0  # validation ranks its own item first (nothing held out is seen there)


# ---------------------------------------------------------------- (c) per-step window labels: the example's own window
def _window_batch(split, length: int, step: int = 5):
    w_users, w_in, w_tgt = (torch.as_tensor(a) for a in split.train_windows(length))
    idx = torch.arange(0, len(w_users), step)
    return w_users, w_in, w_tgt, idx


def test_per_step_window_labels_are_each_windows_own_teacher_output(tiny_split):
    teacher = build_model(SASREC, tiny_split)
    soft = SoftLabels(teacher, tiny_split, "per-step")
    w_users, w_in, w_tgt, idx = _window_batch(tiny_split, 10)
    valid = w_tgt[idx] >= 0
    got = soft.window_logits(w_users[idx], w_in[idx], valid)  # (n_valid, n_items)
    with torch.no_grad():  # one window at a time: no other example can reach a row
        ref = torch.cat([teacher.eval().forward_all(w_in[i:i + 1])[0][w_tgt[i] >= 0] for i in idx.tolist()])
    assert got.shape == ref.shape and len(set(w_users[idx].tolist())) > 5
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    # not vacuous: the same rows of a neighbouring window, or the user's whole-history label, differ
    assert not torch.allclose(got, soft.window_logits(w_users[idx], w_in[idx].roll(1, 0), valid), atol=1e-3)
    current = teacher.score_all(w_users[idx]).unsqueeze(1).expand(-1, valid.shape[1], -1)[valid]
    assert not torch.allclose(got, current, atol=1e-3)


def test_training_feeds_each_window_its_own_per_step_labels(tiny_split, monkeypatch):
    import distill_core.distill as dm

    teacher = build_model(SASREC, tiny_split)
    w_users, w_in, w_tgt = (torch.as_tensor(a) for a in tiny_split.train_windows(10))
    windows = {(int(u), tuple(x.tolist())): y for u, x, y in zip(w_users, w_in, w_tgt)}
    calls, real_kd, real_window = [], dm.kd_loss, SoftLabels.window_logits

    def window_spy(self, users, seq, valid):
        out = real_window(self, users, seq, valid)
        calls.append([users.clone(), seq.clone(), valid.clone(), out])
        return out

    def kd_spy(s_logits, targets, t_logits, cfg, teacher_log_p=None):
        if calls and calls[-1][3] is t_logits:
            calls[-1].append(targets.clone())
        return real_kd(s_logits, targets, t_logits, cfg, teacher_log_p=teacher_log_p)

    monkeypatch.setattr(SoftLabels, "window_logits", window_spy)
    monkeypatch.setattr(dm, "kd_loss", kd_spy)
    train_model(tiny_split, ModelSpec("sasrec", 8, layers=1, heads=1, max_len=10),
                TrainConfig(epochs=1, batch_size=200, device="cpu"), teacher=teacher,
                distill=DistillConfig(0.5, 2.0, soft_labels="per-step"), validate=False)
    assert len(calls) > 3 and all(len(c) == 5 for c in calls)
    for users, seq, valid, out, targets in calls[:4]:
        # the windows handed to the teacher are the batch's own: their targets are the loss's targets
        own = [windows.get((int(u), tuple(x.tolist()))) for u, x in zip(users, seq)]
        assert all(w is not None for w in own), "the teacher read a window that is not this user's"
        own = torch.stack(own)
        assert torch.equal(own[valid], targets) and torch.equal(valid, own >= 0)
        with torch.no_grad():
            torch.testing.assert_close(out, teacher.eval().forward_all(seq)[valid], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- (d) teacher in eval mode for per-step labels
def test_per_step_labels_come_from_the_teacher_in_eval_mode(tiny_split):
    teacher = build_model(ModelSpec("sasrec", 16, layers=1, max_len=10, dropout=0.5), tiny_split).train()
    w_users, w_in, w_tgt, idx = _window_batch(tiny_split, 10)
    seq, valid = w_in[idx], w_tgt[idx] >= 0
    with torch.no_grad():
        noisy = teacher.forward_all(seq)[valid]
        assert not torch.allclose(noisy, teacher.forward_all(seq)[valid])  # dropout is on in train mode
    soft = SoftLabels(teacher, tiny_split, "per-step")  # handed over in train mode
    teacher.train()  # and switched back by whoever else holds it (the UI caches models)
    a = soft.window_logits(w_users[idx], seq, valid)
    teacher.train()
    b = soft.window_logits(w_users[idx], seq, valid)
    with torch.no_grad():
        ref = teacher.eval().forward_all(seq)[valid]
    assert torch.equal(a, b)
    torch.testing.assert_close(a, ref, rtol=1e-5, atol=1e-5)
    pairs = torch.arange(0, len(tiny_split.train_items), 9)
    teacher.train()
    p1 = soft.logits(torch.as_tensor(tiny_split.train_users[pairs.numpy()]), pairs)
    teacher.train()
    assert torch.equal(p1, soft.logits(torch.as_tensor(tiny_split.train_users[pairs.numpy()]), pairs))


# ---------------------------------------------------------------- (e) per-step prefixes of non-window students
def test_per_step_labels_of_a_pair_student_read_the_pairs_own_prefix(tiny_split):
    teacher = build_model(SASREC, tiny_split)
    soft = SoftLabels(teacher, tiny_split, "per-step")
    firsts = tiny_split.train_ptr[:-1][np.diff(tiny_split.train_ptr) > 0][:3]  # users' first pairs: empty prefix
    idx = torch.as_tensor(np.concatenate([firsts, np.arange(1, len(tiny_split.train_items), 13)]))
    users = torch.as_tensor(tiny_split.train_users[idx.numpy()])
    got = soft.logits(users, idx)  # (len(idx), n_items)
    ref = torch.cat([teacher.score_all(users[k:k + 1], _prefix_by_hand(tiny_split, int(j), 10))
                     for k, j in enumerate(idx.tolist())])
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, teacher.score_all(users), atol=1e-3)  # not the whole-history label
    with pytest.raises(ValueError, match="example indices"):
        soft.logits(users)


def test_training_a_pair_student_feeds_each_pair_its_prefix_label(tiny_split, monkeypatch):
    import distill_core.distill as dm

    teacher = build_model(SASREC, tiny_split)
    pair_of = {(int(u), int(i)): j for j, (u, i) in enumerate(zip(tiny_split.train_users, tiny_split.train_items))}
    assert len(pair_of) == len(tiny_split.train_items)  # (user, item) names one training pair
    seen, users_seen, real_kd, real_logits = [], [], dm.kd_loss, SoftLabels.logits

    def logits_spy(self, users, idx=None):
        users_seen.append(users.clone())
        return real_logits(self, users, idx)

    def kd_spy(s_logits, targets, t_logits, cfg, teacher_log_p=None):
        seen.append((targets.clone(), t_logits))
        return real_kd(s_logits, targets, t_logits, cfg, teacher_log_p=teacher_log_p)

    monkeypatch.setattr(SoftLabels, "logits", logits_spy)
    monkeypatch.setattr(dm, "kd_loss", kd_spy)
    train_model(tiny_split, ModelSpec("mf", 4), TrainConfig(epochs=1, batch_size=128, device="cpu"),
                teacher=teacher, distill=DistillConfig(0.5, 2.0, soft_labels="per-step"), validate=False)
    assert len(seen) == len(users_seen) > 3
    for (targets, t_logits), users in list(zip(seen, users_seen))[:3]:
        ref = torch.cat([teacher.score_all(users[k:k + 1], _prefix_by_hand(tiny_split, pair_of[(int(u), int(i))], 10))
                         for k, (u, i) in enumerate(zip(users, targets))])
        torch.testing.assert_close(t_logits, ref, rtol=1e-5, atol=1e-5)

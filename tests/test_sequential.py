"""Sequential models: causal masking, leak-free training inputs, soft-label modes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distill_core.config import DistillConfig, ModelSpec, TrainConfig
from distill_core.distill import SoftLabels, soft_label_mode, train_model
from distill_core.errors import ConfigError
from distill_core.models import build_model


def test_no_attention_to_future_positions(tiny_split):
    m = build_model(ModelSpec("sasrec", 16, layers=2, max_len=10), tiny_split).eval()
    seq = torch.randint(0, tiny_split.n_items, (3, 10))
    changed = seq.clone()
    changed[:, 6] = (changed[:, 6] + 1) % tiny_split.n_items
    a, b = m.encode(seq), m.encode(changed)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6)  # positions before the change do not move
    assert not torch.allclose(a[:, 6:], b[:, 6:], atol=1e-4)  # the changed position and later ones do


def test_padding_carries_nothing(tiny_split):
    m = build_model(ModelSpec("sasrec", 16, layers=1, max_len=8), tiny_split).eval()
    pad = tiny_split.n_items
    short = torch.tensor([[pad, pad, pad, 4, 5, 6, 7, 8]])
    users = torch.tensor([0])
    assert torch.isfinite(m(users, short)).all()
    # a shorter window that holds the same items scores the next item the same way
    assert torch.allclose(m(users, short), m(users, short[:, 3:]), atol=1e-5)


def test_windows_and_prefixes_hold_only_earlier_training_items(tiny_split):
    users, inputs, targets = tiny_split.train_windows(7)
    ptr, items = tiny_split.train_ptr, tiny_split.train_items
    n_targets = 0
    for w in range(len(users)):
        seq = items[ptr[users[w]]:ptr[users[w] + 1]].tolist()
        for j in np.flatnonzero(targets[w] >= 0):
            pos = seq.index(targets[w, j])
            ctx = [i for i in inputs[w, :j + 1] if i != tiny_split.n_items]
            assert ctx == seq[pos - len(ctx):pos]  # exactly the items just before the target
            n_targets += 1
    assert n_targets == len(items) - int(np.sum(np.diff(ptr) > 0))  # every pair but each user's first
    pre = tiny_split.train_prefixes(5)
    for j in (0, 1, 10, len(items) - 1):
        u = tiny_split.train_users[j]
        before = items[ptr[u]:j][-5:].tolist()
        assert [i for i in pre[j] if i != tiny_split.n_items] == before


def test_held_out_items_never_reach_a_soft_label(tiny_split):
    """Changing every validation and test item leaves the teacher's soft labels unchanged."""
    import dataclasses

    teacher = build_model(ModelSpec("sasrec", 16, layers=1, max_len=10), tiny_split).eval()
    users = torch.arange(tiny_split.n_users)
    a = SoftLabels(teacher, tiny_split, "current").logits(users)
    other = dataclasses.replace(tiny_split, valid_items=(tiny_split.valid_items + 1) % tiny_split.n_items,
                                test_items=(tiny_split.test_items + 7) % tiny_split.n_items)
    b = SoftLabels(teacher, other, "current").logits(users)
    assert torch.allclose(a, b)
    idx = torch.arange(50)
    pa = SoftLabels(teacher, tiny_split, "per-step").logits(torch.as_tensor(tiny_split.train_users[:50]), idx)
    pb = SoftLabels(teacher, other, "per-step").logits(torch.as_tensor(other.train_users[:50]), idx)
    assert torch.allclose(pa, pb)


def test_soft_label_modes(tiny_split):
    t = build_model(ModelSpec("sasrec", 16, layers=1, max_len=10), tiny_split)
    mf = build_model(ModelSpec("mf", 4), tiny_split)
    small = build_model(ModelSpec("sasrec", 8, layers=1, heads=1, max_len=10), tiny_split)
    assert soft_label_mode(t, mf) == "current" and soft_label_mode(t, small) == "per-step"
    assert soft_label_mode(mf, small) == "current"  # an id-only teacher has no steps
    longer = build_model(ModelSpec("sasrec", 8, layers=1, heads=1, max_len=20), tiny_split)
    with pytest.raises(ConfigError, match="max_len"):
        soft_label_mode(t, longer, "per-step")


@pytest.mark.parametrize("student", [ModelSpec("mf", 4), ModelSpec("sasrec", 8, layers=1, heads=1, max_len=10)])
def test_distil_from_sasrec_smoke(tiny_split, student):
    tr = TrainConfig(epochs=3, batch_size=256, lr=1e-2, device="cpu")
    teacher = train_model(tiny_split, ModelSpec("sasrec", 16, layers=1, max_len=10), tr)
    kd = train_model(tiny_split, student, tr, teacher=teacher.model, distill=DistillConfig(0.5, 2.0))
    assert kd.distill.soft_labels == ("current" if student.family == "mf" else "per-step")
    assert kd.fit.history[0]["kl"] > 0 and np.isfinite(kd.fit.history[0]["total"])
    # distillation works: the distilled student is closer to the teacher than its plain twin (same seed,
    # same budget), by KL(teacher || student) over every user's next-item distribution
    plain = train_model(tiny_split, student, tr)
    users = torch.arange(tiny_split.n_users)
    log_t = torch.log_softmax(teacher.model.score_all(users), -1)

    def kl_to_teacher(model) -> float:
        return float((log_t.exp() * (log_t - torch.log_softmax(model.score_all(users), -1))).sum(1).mean())
    assert kl_to_teacher(kd.model) < 0.97 * kl_to_teacher(plain.model), (kl_to_teacher(kd.model),
                                                                       kl_to_teacher(plain.model))

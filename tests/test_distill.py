"""Distillation (distill_core.distill): soft labels are the teacher's rows for each example's own user, and
train_model takes the teacher it returned and refuses one of another dataset or without a DistillConfig.
The paths a deliberate bug once slipped past are in test_distill_paths.py."""
from __future__ import annotations

import pytest
import torch

from distill_core.config import DistillConfig, ModelSpec, TrainConfig
from distill_core.distill import SoftLabels, train_model
from distill_core.errors import ConfigError
from distill_core.models import build_model


FAST = TrainConfig(epochs=2, lr=1e-2, batch_size=256, device="cpu")


def test_soft_labels_are_the_teachers_rows_for_the_same_users(tiny_split):
    teacher = build_model(ModelSpec("mf", 8), tiny_split)
    soft = SoftLabels(teacher, tiny_split)
    users = torch.tensor([5, 2, 5, 0, 7])
    assert torch.allclose(soft.logits(users), teacher.score_all(users), atol=1e-6)
    assert not torch.allclose(soft.logits(users[[1, 0, 2, 3, 4]]), teacher.score_all(users), atol=1e-6)
    per_batch = SoftLabels(teacher, tiny_split, cache_bytes=0)  # no cache: computed per batch
    assert per_batch.cache is None and torch.allclose(per_batch.logits(users), soft.logits(users))


@pytest.mark.parametrize("cache_bytes", [None, 0])
def test_distillation_loss_uses_each_examples_own_user(tiny_split, monkeypatch, cache_bytes):
    """Record every (users, targets, soft label) triple the KD loss sees during training, with the
    teacher's rows cached per user and computed per batch."""
    import distill_core.distill as dm
    import distill_core.soft_labels as sl

    if cache_bytes is not None:
        monkeypatch.setattr(sl, "CACHE_BYTES", cache_bytes)
    teacher = build_model(ModelSpec("mf", 8), tiny_split)
    T = 2.0
    seen = []
    real = dm.kd_loss

    def spy(s_logits, targets, t_logits, cfg, teacher_log_p=None):
        seen.append((targets.clone(), t_logits, teacher_log_p))
        return real(s_logits, targets, t_logits, cfg, teacher_log_p=teacher_log_p)

    monkeypatch.setattr(dm, "kd_loss", spy)
    orig = SoftLabels.log_p
    users_seen = []
    monkeypatch.setattr(SoftLabels, "log_p", lambda self, u: (users_seen.append(u.clone()), orig(self, u))[1])
    # K = the catalogue: the dense soft labels (cached, or per batch when the cache is too small)
    train_model(tiny_split, ModelSpec("mf", 4), TrainConfig(epochs=1, batch_size=64, device="cpu"),
                teacher=teacher, distill=DistillConfig(0.5, T, soft_top_k=tiny_split.n_items))
    train_pairs = set(zip(tiny_split.train_users.tolist(), tiny_split.train_items.tolist()))
    assert len(seen) == len(users_seen) > 0
    for (targets, t_logits, log_p), users in zip(seen, users_seen):
        expected = torch.log_softmax(teacher.score_all(users) / T, -1)
        got = log_p if log_p is not None else torch.log_softmax(t_logits / T, -1)
        assert (log_p is None) == (cache_bytes == 0)
        assert torch.allclose(got, expected, atol=1e-5)
        # every (user, target) pair is a training pair: no validation/test item reaches the loss
        assert all(p in train_pairs for p in zip(users.tolist(), targets.tolist()))


def test_teacher_from_another_dataset_is_refused(tiny_split):
    other = build_model(ModelSpec("mf", 4), tiny_split)
    other.n_users += 1
    with pytest.raises(ConfigError, match="not on this one"):
        train_model(tiny_split, ModelSpec("mf", 4), FAST, teacher=other, distill=DistillConfig())


def test_train_model_takes_the_trained_teacher_it_returned_and_refuses_a_teacher_without_distill(tiny_split) -> None:
    from distill_core import ConfigError, DistillConfig

    one = TrainConfig(epochs=1, patience=0)
    teacher = train_model(tiny_split, ModelSpec("mf", 8), one)
    with pytest.raises(ConfigError, match="distill=DistillConfig"):
        train_model(tiny_split, ModelSpec("mf", 4), one, role="student_kd", teacher=teacher)
    cfg = DistillConfig(0.3, 2.0)
    a = train_model(tiny_split, ModelSpec("mf", 4), one, role="student_kd", teacher=teacher, distill=cfg)
    b = train_model(tiny_split, ModelSpec("mf", 4), one, role="student_kd", teacher=teacher.model, distill=cfg)
    assert a.distill == b.distill and a.distill.alpha == 0.3
    assert a.fit.history[0]["kl"] > 0 and a.fit.history[0]["kl"] == pytest.approx(b.fit.history[0]["kl"])

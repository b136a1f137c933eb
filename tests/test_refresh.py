"""Refreshing a student when new interactions arrive: Split.advance and refresh_student."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distill_core import ConfigError, DistillConfig, ModelSpec, TrainConfig, refresh_student, train_model


def test_advance_moves_validation_items_to_the_end_of_training(tiny_split) -> None:
    new = tiny_split.advance()
    assert len(new.valid_items) == 0 and len(new.eval_users("valid")) == 0
    np.testing.assert_array_equal(new.test_ptr, tiny_split.test_ptr)
    np.testing.assert_array_equal(new.test_items, tiny_split.test_items)
    for u in range(tiny_split.n_users):
        old = tiny_split.train_items[tiny_split.train_ptr[u]:tiny_split.train_ptr[u + 1]].tolist()
        val = tiny_split.valid_items[tiny_split.valid_ptr[u]:tiny_split.valid_ptr[u + 1]].tolist()
        assert new.train_items[new.train_ptr[u]:new.train_ptr[u + 1]].tolist() == old + val
    # the test context is what it was: the model sees the same history when predicting the test item
    for a, b in zip(new.context("test"), tiny_split.context("test")):
        np.testing.assert_array_equal(a, b)
    assert new.train_prefixes(5).shape == (len(new.train_items), 5)


def test_after_advance_the_test_item_still_never_reaches_a_soft_label(tiny_split) -> None:
    """The refreshed protocol of bench/cross_family.py: the validation item becomes history the soft labels
    read (so changing it moves them); the test item stays held out (changing it moves nothing)."""
    import dataclasses

    from distill_core.distill import SoftLabels
    from distill_core.models import build_model

    teacher = build_model(ModelSpec("sasrec", 16, layers=1, max_len=10), tiny_split).eval()
    users = torch.arange(tiny_split.n_users)
    base = SoftLabels(teacher, tiny_split.advance(), "current").logits(users)
    other_test = dataclasses.replace(tiny_split, test_items=(tiny_split.test_items + 7) % tiny_split.n_items)
    assert torch.allclose(base, SoftLabels(teacher, other_test.advance(), "current").logits(users))
    other_valid = dataclasses.replace(tiny_split, valid_items=(tiny_split.valid_items + 1) % tiny_split.n_items)
    moved = SoftLabels(teacher, other_valid.advance(), "current").logits(users)
    has_valid = torch.as_tensor(np.diff(tiny_split.valid_ptr) > 0)
    assert not torch.allclose(base[has_valid], moved[has_valid], atol=1e-4)
    assert torch.allclose(base[~has_valid], moved[~has_valid])


@pytest.fixture(scope="module")
def seq_teacher(tiny_split):
    return train_model(tiny_split, ModelSpec("sasrec", 16, layers=1, max_len=20), TrainConfig(epochs=3, lr=5e-3)).model


def _kl_to_teacher(teacher, student, split, users) -> float:
    """Mean KL(teacher || student) at T = 1 over ``users``, with both models reading ``split``'s training data."""
    teacher.set_context(*split.context("train"))
    student.set_context(*split.context("train"))
    with torch.no_grad():
        p = torch.softmax(teacher.score_all(users), -1)
        q = torch.softmax(student.score_all(users), -1)
    # by hand, and against torch.nn.functional.kl_div
    kl = float((p * (p.clamp_min(1e-30).log() - q.clamp_min(1e-30).log())).sum(-1).mean())
    ref = torch.nn.functional.kl_div(q.log(), p, reduction="batchmean")
    assert kl == pytest.approx(float(ref), rel=1e-4)
    return kl


def test_refresh_recomputes_the_soft_labels(tiny_split, seq_teacher) -> None:
    kd = DistillConfig(alpha=0.0, temperature=1.0, soft_labels="current")  # soft labels only: the effect is clean
    student = train_model(tiny_split, ModelSpec("mf", 16), TrainConfig(epochs=5, lr=1e-2), role="student_kd",
                          teacher=seq_teacher, distill=kd).model
    before = {k: v.clone() for k, v in student.state_dict().items()}
    new = tiny_split.advance()
    train = TrainConfig(epochs=15, lr=1e-2)
    fresh = refresh_student(student, new, train, teacher=seq_teacher, distill=kd)
    stale = refresh_student(student, new, train, teacher=seq_teacher, distill=kd, stale_split=tiny_split)
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())  # the original is untouched
    assert len(fresh.fit.history) == train.epochs and "val_ndcg@10" not in fresh.fit.history[0]
    assert fresh.test and fresh.distill.soft_labels == "current"
    moved = torch.as_tensor(np.flatnonzero(np.diff(tiny_split.valid_ptr) > 0))  # users with a new interaction
    kl_fresh = _kl_to_teacher(seq_teacher, fresh.model, new, moved)
    kl_stale = _kl_to_teacher(seq_teacher, stale.model, new, moved)
    # the refreshed student follows the teacher's *new* prediction; the stale one its old prediction
    assert kl_fresh < 0.8 * kl_stale, (kl_fresh, kl_stale)


def test_refresh_refuses_other_catalogues_and_stale_without_teacher(tiny_split, tiny_ds) -> None:
    from distill_core.models import build_model
    student = build_model(ModelSpec("mf", 4), tiny_split)
    with pytest.raises(ConfigError, match="stale_split needs a teacher"):
        refresh_student(student, tiny_split.advance(), TrainConfig(epochs=1), stale_split=tiny_split)
    import dataclasses
    other = dataclasses.replace(tiny_split.advance(), n_items=tiny_split.n_items + 1)
    with pytest.raises(ConfigError, match="keeps the catalogue"):
        refresh_student(student, other, TrainConfig(epochs=1))


def test_plain_refresh_fine_tunes_from_the_student(tiny_split) -> None:
    student = train_model(tiny_split, ModelSpec("mf", 8), TrainConfig(epochs=2, lr=1e-2), role="student_plain").model
    out = refresh_student(student, tiny_split.advance(), TrainConfig(epochs=1, lr=1e-9))
    # a learning rate of 1e-9 leaves the weights where they were: the refresh started from the student
    for k, v in student.state_dict().items():
        torch.testing.assert_close(out.model.state_dict()[k], v, atol=1e-6, rtol=0)
    assert out.role == "student_plain" and out.distill is None

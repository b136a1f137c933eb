"""The teacher's user representations that Distillation Experts distils (``SoftLabels.teacher_vectors``, current
mode): computed once per user, read from the context of the split the soft labels were built on, so the lagged
selection's labels get the lagged vectors and the final fit the full ones, whatever was built in between."""
from __future__ import annotations

import torch

from distill_core import ModelSpec
from distill_core.models import build_model
from distill_core.soft_labels import SoftLabels


def test_current_teacher_vectors_are_each_users_vector_after_the_labels_own_training_context(tiny_split):
    torch.manual_seed(0)
    teacher = build_model(ModelSpec("sasrec", 8, layers=1, max_len=5), tiny_split).eval()
    student = build_model(ModelSpec("mf", 4), tiny_split)
    lagged_split = tiny_split.lagged()
    full, lagged = SoftLabels(teacher, tiny_split, "current"), SoftLabels(teacher, lagged_split, "current")
    ex = student.examples(tiny_split)
    b = student.batch(ex, torch.arange(len(ex))[:64])
    with torch.no_grad():
        teacher.set_context(*tiny_split.context("train"))
        want_full = teacher.user_vectors(b.users)
        teacher.set_context(*lagged_split.context("train"))
        want_lagged = teacher.user_vectors(b.users)
    assert not torch.allclose(want_full, want_lagged)  # the two contexts differ: the test can tell them apart
    # the teacher's context is now the lagged one, yet the full labels' vectors are the full context's
    assert torch.allclose(full.teacher_vectors(b), want_full, atol=1e-6)
    assert torch.allclose(lagged.teacher_vectors(b), want_lagged, atol=1e-6)
    assert torch.allclose(full.teacher_vectors(b), want_full, atol=1e-6)  # from the cache, built once
    assert full._user_vectors is not None and full._user_vectors.shape == (tiny_split.n_users, 8)

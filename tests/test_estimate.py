"""estimate.timed: the distilled student's timed steps read top-K soft labels of the teacher's shape."""
from __future__ import annotations

from pathlib import Path

import distill_core.distill as distill
from distill_core import catalogue, estimate, load_dataset
from distill_core.data.synthetic import SyntheticSpec, write


def test_timed_distilled_steps_run_on_top_k_labels_and_the_others_on_none(tmp_path: Path, monkeypatch):
    write(tmp_path / "big", SyntheticSpec(n_users=3000, n_items=12000, mean_activity=8))
    ds = load_dataset(tmp_path / "big")
    assert ds.n_items > catalogue.FULL_MAX_ITEMS  # the sampled path with top-K labels
    role = ["?"]  # the model being timed
    seen: dict[str, set] = {}
    real_loss, real_stand_in, real_train = distill.large_kd_loss, estimate._time_on_stand_in, estimate.train_model

    def loss(b, labels, *args, **kw):
        seen.setdefault(role[0], set()).add(None if labels is None else tuple(labels.items.shape[1:]))
        return real_loss(b, labels, *args, **kw)

    def stand_in(*args, **kw):
        role[0] = "student_kd"
        return real_stand_in(*args, **kw)

    def train(*args, **kw):
        role[0] = kw["role"]
        return real_train(*args, **kw)
    monkeypatch.setattr(distill, "large_kd_loss", loss)
    monkeypatch.setattr(estimate, "_time_on_stand_in", stand_in)
    monkeypatch.setattr(estimate, "train_model", train)
    plans = estimate.timed(ds, steps=2)
    assert seen["student_kd"] == {(128,)}  # every distilled step read K = 128 label items a row
    assert seen["student_plain"] == {None} and seen["teacher"] == {None}
    assert all(p.step_seconds and p.step_seconds > 0 for p in plans)

"""Model contract, the training loop, soft-label alignment and reproducibility."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distill_core.config import DistillConfig, ModelSpec, TrainConfig
from distill_core.distill import SoftLabels, evaluate, train_model
from distill_core.errors import ConfigError
from distill_core.losses import KDLossOutput
from distill_core.models import build_model
from distill_core.trainer import TrainerControl, TrainingError, fit

FAST = TrainConfig(epochs=2, lr=1e-2, batch_size=256, device="cpu")


def _params_by_hand(family: str, d: int, n_users: int, n_items: int) -> int:
    """Parameters of ``ModelSpec(family, d)`` (2 layers, 2 heads, max_len 50) counted from the model's formula."""
    if family == "mf":  # user and item embeddings, item bias
        return n_users * d + n_items * d + n_items
    if family == "two_tower":  # user, history (+ padding row) and item embeddings, item bias, MLP 5d -> 2d -> 2d -> d
        return (n_users * d + (n_items + 1) * d + n_items * d + n_items
                + (5 * d * 2 * d + 2 * d) + (2 * d * 2 * d + 2 * d) + (2 * d * d + d))
    # sasrec: item (+ padding row) and 50 position embeddings, item bias, per block the q/k/v and output
    # projections, the d -> 2d -> d feed-forward and two layer norms; one final layer norm
    block = (3 * d * d + 3 * d) + (d * d + d) + (d * 2 * d + 2 * d) + (2 * d * d + d) + 2 * 2 * d
    return (n_items + 1) * d + 50 * d + n_items + 2 * block + 2 * d


@pytest.mark.parametrize("family", ["mf", "two_tower", "sasrec"])
def test_contract_and_one_epoch_smoke(tiny_split, family):
    m = build_model(ModelSpec(family, 8), tiny_split)
    out = m(torch.arange(5))
    assert out.shape == (5, tiny_split.n_items)
    assert m.n_params() == _params_by_hand(family, 8, tiny_split.n_users, tiny_split.n_items)
    assert m.n_bytes() >= 4 * m.n_params()
    tm = train_model(tiny_split, ModelSpec(family, 8), TrainConfig(epochs=1, device="cpu"))
    assert len(tm.fit.history) == 1 and np.isfinite(tm.fit.history[0]["total"])
    assert 0 <= tm.test["ndcg@10"] <= 1


def test_two_tower_context_sees_only_the_past(tiny_split):
    m = build_model(ModelSpec("two_tower", 8), tiny_split)
    u = int(tiny_split.eval_users("test")[0])
    vp, vi = tiny_split.held_out("valid")
    tp, ti = tiny_split.held_out("test")
    assert vi[vp[u]] not in m.history[u].tolist() or vi[vp[u]] in tiny_split.train_items[tiny_split.train_users == u]
    m.set_context(*tiny_split.context("test"))
    assert m.history[u, -1].item() == vi[vp[u]]  # the validation item is the newest context item
    assert ti[tp[u]] not in m.history[u].tolist()  # the test item never is


def test_mf_learns_on_tiny_data(tiny_split):
    before = evaluate(build_model(ModelSpec("mf", 16), tiny_split), tiny_split, "valid")["ndcg@10"]
    tm = train_model(tiny_split, ModelSpec("mf", 16), TrainConfig(epochs=8, lr=1e-2, batch_size=128, device="cpu"))
    assert tm.fit.best_metric > before + 0.02


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

    if cache_bytes is not None:
        monkeypatch.setattr(dm, "CACHE_BYTES", cache_bytes)
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
    train_model(tiny_split, ModelSpec("mf", 4), TrainConfig(epochs=1, batch_size=64, device="cpu"),
                teacher=teacher, distill=DistillConfig(0.5, T))
    train_pairs = set(zip(tiny_split.train_users.tolist(), tiny_split.train_items.tolist()))
    assert len(seen) == len(users_seen) > 0
    for (targets, t_logits, log_p), users in zip(seen, users_seen):
        expected = torch.log_softmax(teacher.score_all(users) / T, -1)
        got = log_p if log_p is not None else torch.log_softmax(t_logits / T, -1)
        assert (log_p is None) == (cache_bytes == 0)
        assert torch.allclose(got, expected, atol=1e-5)
        # every (user, target) pair is a training pair: no validation/test item reaches the loss
        assert all(p in train_pairs for p in zip(users.tolist(), targets.tolist()))


def test_same_seed_same_metrics_on_cpu(tiny_split):
    a = train_model(tiny_split, ModelSpec("mf", 8), FAST)
    b = train_model(tiny_split, ModelSpec("mf", 8), FAST)
    c = train_model(tiny_split, ModelSpec("mf", 8), TrainConfig(epochs=2, lr=1e-2, batch_size=256, seed=1))
    assert a.test == b.test
    assert a.fit.history[-1]["total"] == b.fit.history[-1]["total"] != c.fit.history[-1]["total"]


def test_stop_flag_is_honoured_at_a_batch_boundary(tiny_split):
    control = TrainerControl()
    steps = []

    class StopAfter3:
        def on_event(self, name, payload):
            if name == "step_end":
                steps.append(payload["step"])
                if len(steps) == 3:
                    control.should_stop = True

    tm = train_model(tiny_split, ModelSpec("mf", 8), TrainConfig(epochs=5, batch_size=32, device="cpu"),
                     callbacks=[StopAfter3()], control=control)
    assert tm.fit.cancelled and len(steps) == 3 and tm.test == {}


def test_nan_loss_stops_training():
    w = torch.nn.Parameter(torch.ones(1))

    def loss_fn(idx):
        t = w * float("nan")
        return KDLossOutput(ce=t.sum(), kl=t.sum() * 0, total=t.sum())

    with pytest.raises(TrainingError, match="nan"):
        fit(torch.nn.Linear(1, 1), 10, loss_fn, lambda: {"ndcg@10": 0.0}, TrainConfig(epochs=1, batch_size=4))


def test_early_stopping_keeps_the_best_epoch(tiny_split):
    tm = train_model(tiny_split, ModelSpec("mf", 32), TrainConfig(epochs=40, lr=5e-2, batch_size=64, patience=2))
    assert tm.fit.early_stopped
    best = max(r["val_ndcg@10"] for r in tm.fit.history)
    assert tm.fit.best_metric == best
    assert evaluate(tm.model, tiny_split, "valid", ks=(10,))["ndcg@10"] == pytest.approx(best)


def test_teacher_from_another_dataset_is_refused(tiny_split):
    other = build_model(ModelSpec("mf", 4), tiny_split)
    other.n_users += 1
    with pytest.raises(ConfigError, match="not on this one"):
        train_model(tiny_split, ModelSpec("mf", 4), FAST, teacher=other, distill=DistillConfig())


def test_cuda_refused_without_gpu(tiny_split):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="cuda"):
        train_model(tiny_split, ModelSpec("mf", 4), TrainConfig(epochs=1, device="cuda"))


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

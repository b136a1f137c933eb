"""The training loop (distill_core.trainer, through train_model): it learns, is reproducible from its seed,
honours Stop at a batch boundary, stops on a non-finite loss, keeps the best epoch when it stops early
and refuses a device that is not there."""
from __future__ import annotations

import pytest
import torch

from distill_core.config import ModelSpec, TrainConfig
from distill_core.distill import evaluate, train_model
from distill_core.errors import ConfigError
from distill_core.losses import KDLossOutput
from distill_core.models import build_model
from distill_core.trainer import TrainerControl, TrainingError, fit


FAST = TrainConfig(epochs=2, lr=1e-2, batch_size=256, device="cpu")


def test_mf_learns_on_tiny_data(tiny_split):
    before = evaluate(build_model(ModelSpec("mf", 16), tiny_split), tiny_split, "valid")["ndcg@10"]
    tm = train_model(tiny_split, ModelSpec("mf", 16), TrainConfig(epochs=8, lr=1e-2, batch_size=128, device="cpu"))
    assert tm.fit.best_metric > before + 0.02


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


def test_cuda_refused_without_gpu(tiny_split):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="cuda"):
        train_model(tiny_split, ModelSpec("mf", 4), TrainConfig(epochs=1, device="cuda"))


@pytest.mark.parametrize("n, batch, patience, steps, want", [
    (40, 10, 2, 0, 2),  # 4 steps an epoch, patience in epochs alone
    (40, 10, 2, 20, 5),  # at least 20 steps: 5 epochs of 4 steps
    (40, 10, 2, 6, 2),  # 6 steps are 2 epochs: the epochs' patience is the larger
    (40, 10, 0, 20, None),  # patience 0 never stops early, whatever the steps
])
def test_patience_lasts_at_least_patience_steps(n, batch, patience, steps, want):
    """TrainConfig.patience_steps: a validation score that peaks at epoch 1 stops the run ``max(patience,
    ceil(patience_steps / steps per epoch))`` epochs later."""
    model = torch.nn.Linear(1, 1)
    scores = iter([1.0] + [0.5] * 50)

    def loss_fn(idx):
        t = model(torch.ones(len(idx), 1)).square().mean()
        return KDLossOutput(ce=t, kl=t * 0, total=t)
    res = fit(model, n, loss_fn, lambda: {"ndcg@10": next(scores)},
              TrainConfig(epochs=12, batch_size=batch, patience=patience, patience_steps=steps))
    assert res.best_epoch == 1
    if want is None:
        assert len(res.history) == 12 and res.stop_reason == "epoch cap"
    else:
        assert len(res.history) == 1 + want and res.stop_reason == "patience"


def test_patience_steps_is_validated():
    with pytest.raises(ConfigError, match="patience_steps"):
        TrainConfig(patience_steps=-1)

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

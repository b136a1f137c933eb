"""Honest model selection of a distilled student (DistillConfig.selection, issue 14 point 3).

A `current` soft label is the sequential teacher's forecast after the user's whole training sequence,
i.e. of the validation item itself; selecting on validation then rewards imitation. The lagged selection
scores validation on a run whose soft labels come from the sequence before the last training item, and
trains the returned student again, on the full soft labels, for the chosen number of epochs.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distill_core import ConfigError, DistillConfig, ModelSpec, TrainConfig, train_model
from distill_core import distill as distill_mod
from distill_core.models import build_model
from distill_core.models.base import recent_history


def test_lagged_split_drops_each_users_last_training_item_only(tiny_split) -> None:
    lag = tiny_split.lagged()
    for u in range(tiny_split.n_users):
        old = tiny_split.train_items[tiny_split.train_ptr[u]:tiny_split.train_ptr[u + 1]].tolist()
        assert lag.train_items[lag.train_ptr[u]:lag.train_ptr[u + 1]].tolist() == old[:-1]
    for part in ("valid", "test"):
        for a, b in zip(lag.held_out(part), tiny_split.held_out(part)):
            np.testing.assert_array_equal(a, b)


class _Spy:
    """Records every SoftLabels built and every fit() call of train_model."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.soft: list[distill_mod.SoftLabels] = []
        self.fits: list[dict] = []
        real_soft, real_fit = distill_mod.SoftLabels, distill_mod.fit
        spy = self

        class Soft(real_soft):  # type: ignore[misc, valid-type]
            def __init__(self, *a, **k) -> None:
                super().__init__(*a, **k)
                spy.soft.append(self)

        def fit(model, n, loss_fn, validate, cfg, *a, **k):
            res = real_fit(model, n, loss_fn, validate, cfg, *a, **k)
            spy.fits.append({"validate": validate is not None, "epochs": cfg.epochs, "ran": len(res.history),
                             "best": res.best_epoch, "model": model})
            return res

        monkeypatch.setattr(distill_mod, "SoftLabels", Soft)
        monkeypatch.setattr(distill_mod, "fit", fit)


@pytest.fixture(scope="module")
def seq_teacher(tiny_split):
    torch.manual_seed(0)
    return build_model(ModelSpec("sasrec", 16, layers=1, max_len=10), tiny_split).eval()


def test_lagged_selection_reads_soft_labels_without_the_last_training_item(tiny_split, seq_teacher, monkeypatch) -> None:
    spy = _Spy(monkeypatch)
    train = TrainConfig(epochs=4, patience=2, seed=3)
    tm = train_model(tiny_split, ModelSpec("mf", 4), train, role="student_kd", teacher=seq_teacher,
                     distill=DistillConfig(alpha=0.2, temperature=2.0, soft_labels="current"))
    assert tm.distill.selection == "lagged"
    full, lagged = spy.soft  # the training soft labels first, then the selection ones
    # the selection soft labels, by hand: the teacher reading each user's training items but the last
    lag_ptr = np.concatenate([[0], np.cumsum(np.maximum(np.diff(tiny_split.train_ptr) - 1, 0))])
    keep = np.ones(len(tiny_split.train_items), bool)
    keep[tiny_split.train_ptr[1:][np.diff(tiny_split.train_ptr) > 0] - 1] = False
    hist = recent_history(lag_ptr, tiny_split.train_items[keep], tiny_split.n_items, seq_teacher.max_len)
    users = torch.arange(tiny_split.n_users)
    with torch.no_grad():
        want = torch.log_softmax(seq_teacher(users, hist) / 2.0, -1)
    torch.testing.assert_close(lagged.log_p(users), want, rtol=1e-5, atol=1e-5)
    # ... and they differ from the training soft labels, which read the whole training sequence
    assert not torch.allclose(full.log_p(users), lagged.log_p(users), atol=1e-4)
    # one selection fit with validation, then one refit without it for exactly the chosen epochs
    sel, refit = spy.fits
    assert sel["validate"] and not refit["validate"]
    assert refit["epochs"] == refit["ran"] == sel["best"] == tm.fit.best_epoch
    assert refit["model"] is tm.model and sel["model"] is not tm.model
    # the stored history reads as one run: the selection epochs with their honest validation, then the
    # refit's epochs numbered after them (no validation: it would score the forecast of the validation item)
    n_sel = sel["ran"]
    assert [r["epoch"] for r in tm.fit.history] == list(range(1, n_sel + refit["ran"] + 1))
    assert all("val_ndcg@10" in r for r in tm.fit.history[:n_sel])
    assert not any("val_ndcg@10" in r for r in tm.fit.history[n_sel:])


class _Events:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def on_event(self, name: str, payload: dict) -> None:
        self.events.append((name, payload))


def test_live_events_of_a_lagged_selection_count_epochs_on_across_the_refit(tiny_split, seq_teacher) -> None:
    ev = _Events()
    tm = train_model(tiny_split, ModelSpec("mf", 4), TrainConfig(epochs=3, patience=0), role="student_kd",
                     teacher=seq_teacher, distill=DistillConfig(0.2, 2.0, soft_labels="current"), callbacks=[ev])
    total = 3 + tm.fit.best_epoch
    starts = [p["epochs"] for n, p in ev.events if n == "train_start"]
    assert starts == [3, total]
    ends = [(p["epoch"], p["epochs"], p["metrics"]["epoch"]) for n, p in ev.events if n == "epoch_end"]
    assert [e[0] for e in ends] == list(range(1, total + 1)) == [int(e[2]) for e in ends]
    assert [e[1] for e in ends][3:] == [total] * tm.fit.best_epoch
    steps = [p["epoch"] for n, p in ev.events if n == "step_end"]
    assert steps == sorted(steps) and steps[-1] == total


def test_direct_selection_and_cases_where_nothing_is_forecast_train_once(tiny_split, seq_teacher, monkeypatch) -> None:
    spy = _Spy(monkeypatch)
    train = TrainConfig(epochs=2, patience=0)
    mf_teacher = build_model(ModelSpec("mf", 8), tiny_split).eval()
    cases = [(seq_teacher, DistillConfig(0.2, 2.0, soft_labels="current", selection="direct"), "direct"),
             (mf_teacher, DistillConfig(0.2, 2.0), "direct")]  # an id-only teacher forecasts no position
    for teacher, cfg, want in cases:
        spy.fits.clear()
        tm = train_model(tiny_split, ModelSpec("mf", 4), train, role="student_kd", teacher=teacher, distill=cfg)
        assert tm.distill.selection == want and len(spy.fits) == 1 and spy.fits[0]["validate"]
    spy.fits.clear()
    tm = train_model(tiny_split, ModelSpec("mf", 4), train, role="student_plain")
    assert tm.distill is None and len(spy.fits) == 1


def test_lagged_selection_gives_the_same_student_as_direct_training_for_the_chosen_epochs(
        tiny_split, seq_teacher) -> None:
    """The refit is the direct run cut at the chosen epoch: same seed, same soft labels, same steps."""
    cfg = DistillConfig(0.2, 2.0, soft_labels="current")
    lag = train_model(tiny_split, ModelSpec("mf", 4), TrainConfig(epochs=3, patience=0, seed=1), role="student_kd",
                      teacher=seq_teacher, distill=cfg)
    e = lag.fit.best_epoch
    direct = train_model(tiny_split, ModelSpec("mf", 4), TrainConfig(epochs=e, patience=0, seed=1), role="student_kd",
                         teacher=seq_teacher, distill=DistillConfig(0.2, 2.0, soft_labels="current", selection="direct"),
                         validate=False)
    for a, b in zip(lag.model.state_dict().values(), direct.model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_selection_is_validated() -> None:
    with pytest.raises(ConfigError, match="selection"):
        DistillConfig(selection="test")


def test_labels_computed_per_batch_read_the_context_they_were_built_on(tiny_split, seq_teacher) -> None:
    """Soft labels too large to cache are computed per batch from the context of the split they were built on,
    not from whatever context the (shared) teacher was given since."""
    lag = tiny_split.lagged()
    soft = distill_mod.SoftLabels(seq_teacher, lag, "current", cache_bytes=0)
    assert soft.cache is None and soft.cache_log_p is None  # per batch
    seq_teacher.set_context(*tiny_split.context("train"))  # the teacher moves on
    users = torch.arange(tiny_split.n_users)
    hist = recent_history(*lag.context("train"), tiny_split.n_items, seq_teacher.max_len)
    with torch.no_grad():
        want = torch.log_softmax(seq_teacher(users, hist), -1)
    torch.testing.assert_close(torch.log_softmax(soft.logits(users), -1), want, rtol=1e-5, atol=1e-5)

"""KD loss and the calculator against numpy by hand and torch.nn.functional."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distill_core.config import DistillConfig
from distill_core.errors import ConfigError
from distill_core.losses import distribution_loss, hard_ce, kd_kl, kd_loss, logits_loss, soft_targets

from conftest import ROOT


def _np_softmax(z: np.ndarray, T: float) -> np.ndarray:
    e = np.exp(z / T - (z / T).max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture()
def logits():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, 7, generator=g, dtype=torch.float64)
    t = torch.randn(5, 7, generator=g, dtype=torch.float64) * 2
    y = torch.tensor([0, 3, 6, 2, 2])
    return s, t, y


def test_kd_loss_matches_numpy_by_hand(logits):
    s, t, y = logits
    alpha, T = 0.3, 4.0
    out = kd_loss(s, y, t, DistillConfig(alpha, T))
    sn, tn = s.numpy(), t.numpy()
    ce = -np.mean(np.log(_np_softmax(sn, 1.0))[np.arange(5), y.numpy()])
    p, q = _np_softmax(tn, T), _np_softmax(sn, T)
    kl = np.sum(p * (np.log(p) - np.log(q))) / 5  # batchmean
    assert out.ce.item() == pytest.approx(ce, rel=1e-10)
    assert out.kl.item() == pytest.approx(kl, rel=1e-10)
    assert out.total.item() == pytest.approx(alpha * ce + (1 - alpha) * T * T * kl, rel=1e-10)


def test_kd_kl_matches_torch_kl_div(logits):
    s, t, _ = logits
    ref = F.kl_div(F.log_softmax(s / 2.5, -1), F.softmax(t / 2.5, -1), reduction="batchmean")
    assert kd_kl(s, t, 2.5).item() == pytest.approx(ref.item(), rel=1e-10)
    assert hard_ce(s, torch.tensor([1, 1, 1, 1, 1])).item() == pytest.approx(
        F.nll_loss(F.log_softmax(s, -1), torch.ones(5, dtype=torch.long)).item())


def test_invariants(logits):
    s, t, y = logits
    assert kd_loss(s, y, t, DistillConfig(1.0, 3.0)).total.item() == pytest.approx(hard_ce(s, y).item())
    assert kd_kl(t, t, 3.0).item() == pytest.approx(0.0, abs=1e-12)
    for T in (0.5, 1.0, 7.0):
        assert kd_kl(s, t, T).item() >= 0
    no_t2 = kd_loss(s, y, t, DistillConfig(0.0, 3.0, t_squared=False))
    with_t2 = kd_loss(s, y, t, DistillConfig(0.0, 3.0, t_squared=True))
    assert with_t2.total.item() == pytest.approx(9 * no_t2.total.item())
    assert torch.allclose(soft_targets(t, 2.0).sum(-1), torch.ones(5, dtype=torch.float64))


@pytest.mark.parametrize("cached", [False, True])
def test_kd_loss_sends_no_gradient_to_the_teacher(logits, cached):
    s, t, y = logits
    s = s.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    T = 2.0
    log_p = F.log_softmax(t / T, -1) if cached else None  # still attached to t
    out = kd_loss(s, y, None if cached else t, DistillConfig(0.5, T), teacher_log_p=log_p)
    out.total.backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0
    # the student's gradient is the one of the formula with the teacher held constant
    ref_s = s.detach().clone().requires_grad_(True)
    ref = 0.5 * F.cross_entropy(ref_s, y) + 0.5 * T * T * F.kl_div(
        F.log_softmax(ref_s / T, -1), F.softmax(t.detach() / T, -1), reduction="batchmean")
    ref.backward()
    assert torch.allclose(s.grad, ref_s.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kw, field", [({"alpha": -0.1}, "alpha"), ({"alpha": 1.5}, "alpha"),
                                       ({"temperature": 0.0}, "temperature"),
                                       ({"temperature": float("nan")}, "temperature")])
def test_config_refuses_out_of_range(kw, field):
    with pytest.raises(ConfigError, match=field):
        DistillConfig(**kw)


def test_calculator_textbook_example_refuses_then_normalises():
    p, q = [0.1, 0.3, 0.4, 0.1], [0.2, 0.35, 0.3, 0.15]
    with pytest.raises(ConfigError, match="sums to 0.9"):
        distribution_loss(p, q, 0.7)
    out = distribution_loss(p, q, 0.7, normalize=True)
    pn = np.array(p) / 0.9
    ce = -np.sum(pn * np.log(q))
    kl = np.sum(pn * np.log(pn / np.array(q)))
    assert out.ce == pytest.approx(ce)
    assert out.kl == pytest.approx(kl)
    assert out.total == pytest.approx(0.7 * ce + 0.3 * kl)
    assert out.ce == pytest.approx(out.kl + out.entropy_p)  # CE = H(p) + KL
    assert any("divided by its sum" in n for n in out.notes)


def test_calculator_refuses_negative_and_accepts_logits():
    with pytest.raises(ConfigError, match="negative"):
        distribution_loss([-0.1, 1.1], [0.5, 0.5], 0.5)
    out = logits_loss([2.0, 1.0, 0.1], [1.0, 1.0, 1.0], temperature=2.0, alpha=0.5)
    p = _np_softmax(np.array([2.0, 1.0, 0.1]), 2.0)
    assert out.kl == pytest.approx(np.sum(p * np.log(p / (1 / 3))))


def test_cli_loss_json_and_exit_code():
    cmd = [sys.executable, "-m", "distill_core", "loss", "--p", "0.1,0.3,0.4,0.1", "--q", "0.2,0.35,0.3,0.15",
           "--alpha", "0.7"]
    bad = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "sums to 0.9" in bad.stderr
    ok = subprocess.run(cmd + ["--normalize"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    pn = np.array([0.1, 0.3, 0.4, 0.1]) / 0.9
    assert out["kl"] == pytest.approx(np.sum(pn * np.log(pn / np.array([0.2, 0.35, 0.3, 0.15]))))
    assert set(out) >= {"ce", "kl", "total"}

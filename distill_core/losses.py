"""Losses for recommendation as classification over the item catalogue.

KD loss (Hinton et al., 2015, "Distilling the Knowledge in a Neural Network"; as torchdistill's KDLoss):

    L = alpha * CE(y, s) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))

``alpha`` weights the hard-label CE and ``1 - alpha`` the soft KL term. KL uses
``F.kl_div(log_softmax(s / T), softmax(t / T), reduction="batchmean")``. The ``T^2`` factor keeps the
soft term's gradient size independent of T (its gradient shrinks as 1 / T^2 otherwise).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from distill_core.config import DistillConfig
from distill_core.errors import ConfigError


@dataclass(frozen=True)
class KDLossOutput:
    ce: torch.Tensor  # scalar, hard-label CE
    kl: torch.Tensor  # scalar, KL(teacher_T || student_T), without the T^2 factor
    total: torch.Tensor  # scalar, alpha * ce + (1 - alpha) * [T^2] * kl


def hard_ce(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean CE of the held item under a softmax over all items: ``(B, n_items), (B,) -> ()``."""
    return F.cross_entropy(student_logits, targets)


def soft_targets(teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(teacher_logits / T)`` along the item axis: ``(B, n_items) -> (B, n_items)``."""
    return torch.softmax(teacher_logits / temperature, dim=-1)


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, temperature: float,
          teacher_log_p: torch.Tensor | None = None) -> torch.Tensor:
    """``KL(softmax(t/T) || softmax(s/T))`` averaged over the batch (``batchmean``): ``-> ()``.

    ``teacher_log_p`` may carry ``log_softmax(t/T)`` precomputed (a frozen teacher's is cached once).
    The teacher side is detached: the loss trains the student only, whatever the caller passes.
    """
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = (teacher_log_p.detach() if teacher_log_p is not None
             else F.log_softmax(teacher_logits.detach() / temperature, dim=-1))
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)


def kd_loss(student_logits: torch.Tensor, targets: torch.Tensor, teacher_logits: torch.Tensor | None,
            cfg: DistillConfig, *, teacher_log_p: torch.Tensor | None = None) -> KDLossOutput:
    """The KD loss and its two terms (Hinton et al., 2015; torchdistill's ``KDLoss``)::

        total = alpha * CE(y, s) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))

    with ``KL = F.kl_div(log_softmax(s / T), log_softmax(t / T), reduction="batchmean", log_target=True)``,
    ``T = cfg.temperature``, ``alpha = cfg.alpha`` and the ``T^2`` factor only when ``cfg.t_squared``.
    With ``alpha == 1`` (or no teacher) it is the plain CE. The teacher's logits (or ``teacher_log_p``)
    are detached, so no gradient reaches the teacher through this loss.

    Shapes: ``student_logits (B, n_items)``, ``targets (B,)``, ``teacher_logits (B, n_items)`` or
    ``teacher_log_p = log_softmax(teacher_logits / T) (B, n_items)``.
    """
    ce = hard_ce(student_logits, targets)
    if (teacher_logits is None and teacher_log_p is None) or cfg.alpha == 1.0:
        zero = ce.new_zeros(())
        return KDLossOutput(ce=ce, kl=zero, total=ce)
    kl = kd_kl(student_logits, teacher_logits, cfg.temperature, teacher_log_p)
    factor = cfg.temperature ** 2 if cfg.t_squared else 1.0
    return KDLossOutput(ce=ce, kl=kl, total=cfg.alpha * ce + (1.0 - cfg.alpha) * factor * kl)


# --- the calculator for two given distributions (Loss lab, `python -m distill_core loss`) ---------


@dataclass(frozen=True)
class LossBreakdown:
    """CE(p, q) = -sum p log q, KL(p || q), total = alpha * CE + (1 - alpha) * KL, in nats."""

    p: list[float]  # teacher distribution actually used
    q: list[float]  # student distribution actually used
    alpha: float
    ce: float
    kl: float
    total: float
    entropy_p: float
    ce_per_class: list[float]
    kl_per_class: list[float]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _as_distribution(name: str, values: list[float] | np.ndarray, normalize: bool, notes: list[str]) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2:
        raise ConfigError(f"{name} must be a list of at least 2 numbers (got {v.size})")
    if not np.all(np.isfinite(v)):
        raise ConfigError(f"{name} contains a value that is not a finite number")
    if np.any(v < 0):
        raise ConfigError(f"{name} has a negative entry ({v.min():g}); probabilities are >= 0")
    s = float(v.sum())
    if s <= 0:
        raise ConfigError(f"{name} sums to 0; it cannot be normalised")
    if not math.isclose(s, 1.0, abs_tol=1e-6):
        if not normalize:
            raise ConfigError(f"{name} sums to {s:g}, not 1; pass normalize to divide it by its sum")
        notes.append(f"{name} summed to {s:g}; it was divided by its sum")
        v = v / s
    return v


def distribution_loss(p: list[float] | np.ndarray, q: list[float] | np.ndarray, alpha: float,
                      normalize: bool = False) -> LossBreakdown:
    """CE, KL and the alpha-weighted total for a teacher distribution ``p`` and student ``q``."""
    DistillConfig(alpha=alpha)  # validates alpha with the usual message
    notes: list[str] = []
    pv = _as_distribution("p (teacher)", p, normalize, notes)
    qv = _as_distribution("q (student)", q, normalize, notes)
    if pv.size != qv.size:
        raise ConfigError(f"p and q must have the same length (p has {pv.size}, q has {qv.size})")
    with np.errstate(divide="ignore", invalid="ignore"):
        log_q = np.log(qv)
        ce_c = np.where(pv > 0, -pv * log_q, 0.0)
        kl_c = np.where(pv > 0, pv * (np.log(pv) - log_q), 0.0)
        ent = float(-np.sum(np.where(pv > 0, pv * np.log(pv), 0.0)))
    if np.any((pv > 0) & (qv == 0)):
        notes.append("q is 0 where p is not: CE and KL are infinite")
    ce, kl = float(ce_c.sum()), float(kl_c.sum())
    return LossBreakdown(p=pv.tolist(), q=qv.tolist(), alpha=alpha, ce=ce, kl=kl,
                         total=alpha * ce + (1 - alpha) * kl, entropy_p=ent,
                         ce_per_class=ce_c.tolist(), kl_per_class=kl_c.tolist(), notes=notes)


def softmax_t(logits: list[float] | np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(z / T)`` of one logit vector, in float64."""
    DistillConfig(temperature=temperature)
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 1 or z.size < 2 or not np.all(np.isfinite(z)):
        raise ConfigError("logits must be a list of at least 2 finite numbers")
    z = z / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


def logits_loss(teacher_logits: list[float] | np.ndarray, student_logits: list[float] | np.ndarray,
                temperature: float, alpha: float) -> LossBreakdown:
    """The calculator on logits: both are softened at ``temperature`` first."""
    out = distribution_loss(softmax_t(teacher_logits, temperature), softmax_t(student_logits, temperature), alpha)
    out.notes.append(f"p and q are softmax(logits / {temperature:g})")
    return out

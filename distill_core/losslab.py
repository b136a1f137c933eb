"""The Loss lab's engine: the KD loss's terms for one small example, for teaching.

Two forms of the loss are computed for a teacher ``p`` and a student ``q`` over ``n`` classes (nats):

* textbook form (``distribution_loss``, ``python -m distill_core loss``), with the CE taken between the two
  distributions: ``CE(p, q) = -sum_c p_c log q_c``, ``KL(p || q) = sum_c p_c log(p_c / q_c)``,
  ``total = alpha * CE(p, q) + (1 - alpha) * KL(p || q)``;
* training form (``kd_loss``), with the CE taken against a hard label ``y`` and the student at T = 1:
  ``alpha * (-log q1_y) + (1 - alpha) * T^2 * KL(p_T || q_T)``.

Probabilities are used at T = 1 (normalised first when they do not sum to 1); logits are softened as
``softmax(z / T)`` (``logits_loss``). Everything here is a pure function of its inputs.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from distill_core.config import DistillConfig
from distill_core.errors import ConfigError
from distill_core.losses import LossBreakdown, distribution_loss, hard_ce, kd_kl, kd_loss, logits_loss, softmax_t

PROBABILITIES, LOGITS = "probabilities", "logits"
TEXTBOOK_P = (0.1, 0.3, 0.4, 0.1)  # sums to 0.9: the example's own mistake, which the lab points out
TEXTBOOK_Q = (0.2, 0.35, 0.3, 0.15)
TEXTBOOK_ALPHA = 0.7
GRAD_PLAIN, GRAD_SCALED = "KL(p_T ‖ q_T)", "T² · KL(p_T ‖ q_T)"  # the two curves of grad_norms
GRAD_TEMPERATURES = tuple(float(t) for t in np.logspace(math.log10(0.5), 2, 41))  # 0.5 .. 100


def parse_vector(name: str, text: str) -> list[float]:
    """Numbers separated by commas, semicolons or spaces; the error names ``name`` and the bad entry."""
    parts = [x for x in re.split(r"[,;\s]+", str(text).strip().strip("[]()")) if x]
    if len(parts) < 2:
        raise ConfigError(f"{name} needs at least 2 numbers separated by commas (got {text!r})")
    values = []
    for x in parts:
        try:
            v = float(x)
        except ValueError:
            raise ConfigError(f"{name}: {x!r} is not a number") from None
        if not math.isfinite(v):
            raise ConfigError(f"{name}: {x!r} is not a finite number")
        values.append(v)
    return values


@dataclass(frozen=True)
class NormalisationCheck:
    """The textbook form on the vectors as typed and after dividing each by its sum."""

    sum_p: float
    sum_q: float
    normalised: LossBreakdown  # the correct values
    as_written: LossBreakdown | None  # the formulas applied to the unnormalised vectors; None when both sum to 1


def normalisation_check(p: list[float], q: list[float], alpha: float) -> NormalisationCheck:
    """Both readings of ``p`` and ``q``: the as-written one is wrong whenever a vector does not sum to 1."""
    ok = distribution_loss(p, q, alpha, normalize=True)  # validates sign, length, alpha
    s, r = float(np.sum(p)), float(np.sum(q))
    if math.isclose(s, 1.0, abs_tol=1e-6) and math.isclose(r, 1.0, abs_tol=1e-6):
        return NormalisationCheck(s, r, ok, None)
    # With p = s * p_hat and q = r * q_hat the as-written terms follow from the normalised ones exactly,
    # so the formulas live only in distribution_loss:
    #   -p_c log q_c = s * (-p_hat_c log q_hat_c) - s * p_hat_c * log r
    #   p_c log(p_c / q_c) = s * p_hat_c log(p_hat_c / q_hat_c) + s * p_hat_c * (log s - log r)
    ph = np.asarray(ok.p)
    ce_c = s * np.asarray(ok.ce_per_class) - s * ph * math.log(r)
    kl_c = s * np.asarray(ok.kl_per_class) + s * ph * (math.log(s) - math.log(r))
    ce, kl = float(ce_c.sum()), float(kl_c.sum())
    raw = LossBreakdown(p=list(map(float, p)), q=list(map(float, q)), alpha=alpha, ce=ce, kl=kl,
                        total=alpha * ce + (1 - alpha) * kl, entropy_p=s * ok.entropy_p - s * math.log(s),
                        ce_per_class=ce_c.tolist(), kl_per_class=kl_c.tolist(),
                        notes=[f"p sums to {s:g} and q to {r:g}: not distributions, so these values are not a "
                               f"cross-entropy or a KL divergence" + (" (this KL is negative)" if kl < 0 else "")])
    return NormalisationCheck(s, r, ok, raw)


@dataclass(frozen=True)
class LabResult:
    """Everything the Loss lab shows for one input."""

    mode: str  # PROBABILITIES | LOGITS
    temperature: float  # T of the KL term (1 for probabilities)
    label: int  # the hard label y
    textbook: LossBreakdown  # CE(p, q), KL(p || q) and their alpha-mix on the distributions used
    check: NormalisationCheck | None  # probabilities only
    student_t1: list[float]  # the student's distribution at T = 1, which the hard-label CE reads
    hard_ce: float  # CE(y, q1) = -log q1_y
    kd_total: float  # alpha * hard_ce + (1 - alpha) * T^2 * KL(p_T || q_T)
    teacher_logits: list[float] | None  # what the T views soften: the logits, or log p (None if p has a 0)
    student_logits: list[float] | None
    notes: list[str] = field(default_factory=list)


def _label(label: int, n: int) -> int:
    if isinstance(label, bool) or not float(label).is_integer() or not 0 <= label < n:
        raise ConfigError(f"hard label y must be a class index between 0 and {n - 1} (got {label!r})")
    return int(label)


def _same_length(names: tuple[str, str], a: list[float], b: list[float]) -> None:
    if len(a) != len(b):
        raise ConfigError(f"{names[0]} and {names[1]} must have the same length ({len(a)} vs {len(b)})")


def loss_lab(mode: str, teacher: list[float], student: list[float], alpha: float, label: int,
             temperature: float = 1.0) -> LabResult:
    """Both forms of the loss for probabilities ``p, q`` (``mode == PROBABILITIES``, T = 1) or for logits
    softened at ``temperature``. Raises ``ConfigError`` naming the field for any bad input."""
    DistillConfig(alpha=alpha)
    if mode == PROBABILITIES:
        _same_length(("teacher p", "student q"), teacher, student)
        y = _label(label, len(teacher))
        check = normalisation_check(teacher, student, alpha)
        book, T = check.normalised, 1.0
        q1 = torch.tensor(book.q, dtype=torch.float64)
        ce_y = hard_ce(torch.log(q1)[None], torch.tensor([y])).item()  # log 0 = -inf is a valid logit here
        total = alpha * ce_y + (1 - alpha) * book.kl  # kd_loss at T = 1 (tests compare the two)
        positive = min(book.p) > 0 and min(book.q) > 0
        t_log = np.log(book.p).tolist() if positive else None
        s_log = np.log(book.q).tolist() if positive else None
        notes = [] if positive else ["a probability of 0 has logit -inf, so the T views need every entry > 0"]
    elif mode == LOGITS:
        DistillConfig(temperature=temperature)
        _same_length(("teacher logits", "student logits"), teacher, student)
        y = _label(label, len(teacher))
        book, check, T = logits_loss(teacher, student, temperature, alpha), None, float(temperature)
        s, t = torch.tensor([student], dtype=torch.float64), torch.tensor([teacher], dtype=torch.float64)
        out = kd_loss(s, torch.tensor([y]), t, DistillConfig(alpha, T))
        ce_y, total = out.ce.item(), out.total.item()
        q1, t_log, s_log, notes = torch.softmax(s[0], -1), list(teacher), list(student), []
    else:
        raise ConfigError(f"mode must be {PROBABILITIES!r} or {LOGITS!r} (got {mode!r})")
    return LabResult(mode, T, y, book, check, q1.tolist(), ce_y, total, t_log, s_log, notes)


def per_class_frame(res: LabResult) -> pd.DataFrame:
    """Each term's contribution per class (long form: class, term, nats); the bars of a term sum to it."""
    b, n = res.textbook, len(res.textbook.p)
    hard = [0.0] * n
    hard[res.label] = res.hard_ce
    terms = {"CE(p, q): −p_c log q_c": b.ce_per_class, "KL(p ‖ q): p_c log(p_c / q_c)": b.kl_per_class,
             "CE(y, q₁): −log q₁_y (class y only)": hard}
    return pd.DataFrame([{"class": c, "term": k, "nats": v[c]} for k, v in terms.items() for c in range(n)])


def softened_frame(teacher_logits: list[float], student_logits: list[float], temperature: float) -> pd.DataFrame:
    """``softmax(z / T)`` of teacher and student (long form: class, model, probability)."""
    rows = []
    for model, z in (("teacher p_T", teacher_logits), ("student q_T", student_logits)):
        rows += [{"class": c, "model": model, "probability": float(v)}
                 for c, v in enumerate(softmax_t(z, temperature))]
    return pd.DataFrame(rows)


def grad_norms(teacher_logits: list[float], student_logits: list[float],
               temperatures: tuple[float, ...] = GRAD_TEMPERATURES) -> pd.DataFrame:
    """``||d KL(p_T || q_T) / d s||`` by autograd, alone and times ``T^2`` (long form: T, term, grad_norm).

    The gradient is ``(q_T - p_T) / T`` and ``q_T - p_T`` itself shrinks as ``1 / T`` once T is large, hence
    ``1 / T^2``; the ``T^2`` factor makes the soft term's pull on the student independent of T.
    """
    t = torch.tensor([teacher_logits], dtype=torch.float64)
    rows = []
    for T in temperatures:
        DistillConfig(temperature=T)
        s = torch.tensor([student_logits], dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(kd_kl(s, t, T), s)
        norm = g.norm().item()
        rows += [{"T": T, "term": GRAD_PLAIN, "grad_norm": norm},
                 {"T": T, "term": GRAD_SCALED, "grad_norm": norm * T * T}]
    return pd.DataFrame(rows)


def loglog_slope(frame: pd.DataFrame, term: str, t_from: float = 10.0) -> float:
    """Slope of log(grad_norm) against log(T) from ``t_from`` to the largest T (-2 means ``1 / T^2``)."""
    f = frame[(frame["term"] == term) & (frame["T"] >= t_from)]
    a, b = f.iloc[0], f.iloc[-1]
    if a["grad_norm"] <= 0 or b["grad_norm"] <= 0:
        return float("nan")
    return math.log(b["grad_norm"] / a["grad_norm"]) / math.log(b["T"] / a["T"])


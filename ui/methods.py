"""The distillation method on the Distill page: the knobs of the chosen method only, the loss it minimises in one
line, and the check of the finished config against the catalogue and the teacher before anything trains
(``distillers.check``, as ``python -m distill_core run`` does; ``distill_core/cli/methods.py``)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from distill_core import DistillConfig, distillers
from distill_core.catalogue import TrainPath
from distill_core.cli import methods as cli_methods
from distill_core.config import DE_EXPERTS_MAX, KNOB_INT_MAX, KNOB_INT_MIN
from distill_core.models import Recommender

D = DistillConfig()
METHOD_HELP = ("The distillation term beside alpha × the hard-label CE. **logits**: Hinton KD, the teacher's "
               "softened distribution at T (Hinton, Vinyals & Dean, 2015). **rd**: Ranking Distillation, the "
               "teacher's top-K items as weighted extra positives (Tang & Wang, KDD 2018). **rrd**: Relaxed Ranking "
               "Distillation, a listwise loss ranking the teacher's top items above sampled uninteresting ones, and "
               "**de**: Distillation Experts, the student's user and item representations mapped onto the teacher's "
               "(both Kang et al., CIKM 2020, DE-RRD). **logits+rrd**, **de+rrd**: the first term plus "
               "combo_weight × RRD's (de+rrd is the paper's DE-RRD). Only the chosen method's settings are shown.")
# the knobs each single method reads (DistillConfig's field comments); a combination reads its parts' + combo_weight
PART_KNOBS: dict[str, tuple[str, ...]] = {"logits": (), "rd": ("rank_k", "rd_lambda", "rd_mu"),
                                          "rrd": ("rank_k", "rrd_pool", "rrd_l", "rrd_t"),
                                          "de": ("de_experts", "de_tau")}
MIN_POSITIVE = 0.001  # the least a knob that DistillConfig wants > 0 may be set to here
# field -> (label, min, max, step): DistillConfig's bounds (distill_core.config's KNOB_INT_MIN..KNOB_INT_MAX,
# de_experts at most DE_EXPERTS_MAX)
KNOB_WIDGETS: dict[str, tuple[str, Any, Any, Any]] = {
    "rank_k": ("rank_k (K)", KNOB_INT_MIN, KNOB_INT_MAX, 1),
    "rd_lambda": ("rd_lambda (position weight λ)", MIN_POSITIVE, None, 0.1),
    "rd_mu": ("rd_mu (dynamic weight μ)", 0.0, None, 0.05),
    "rrd_pool": ("rrd_pool (pool of interesting items)", KNOB_INT_MIN, KNOB_INT_MAX, 10),
    "rrd_l": ("rrd_l (uninteresting items per batch)", KNOB_INT_MIN, KNOB_INT_MAX, 10),
    "rrd_t": ("rrd_t (sampling temperature)", MIN_POSITIVE, None, 1.0),
    "de_experts": ("de_experts (experts per side)", KNOB_INT_MIN, DE_EXPERTS_MAX, 1),
    "de_tau": ("de_tau (gate temperature)", MIN_POSITIVE, None, 0.1),
    "combo_weight": ("combo_weight (weight of RRD's term)", 0.0, None, 0.1),
}
# one wording for the CLI's flags and these widgets: field -> (flag, help)
_HELP = {name: (flag, text) for flag, (name, _, text) in cli_methods.KNOBS.items()}
_TERMS = {"logits": "T² · KL(teacher_T ‖ student_T)", "rd": "L_RD", "rrd": "L_RRD", "de": "L_DE"}
ABOUT = {
    "logits": "Hinton KD (Hinton, Vinyals & Dean, 2015) on the teacher's distribution softened at temperature T",
    "rd": "Ranking Distillation (Tang & Wang, KDD 2018): the teacher's top `rank_k` items are extra positives of the "
          "student's own softmax, weighted by their position (`rd_lambda`) and by how far the student still ranks "
          "them below the teacher (`rd_mu`)",
    "rrd": "Relaxed Ranking Distillation (Kang et al., CIKM 2020, DE-RRD): a listwise Plackett-Luce loss that ranks "
           "`rank_k` interesting items, drawn from the teacher's top `rrd_pool`, above `rrd_l` uninteresting ones",
    "de": "Distillation Experts (Kang et al., CIKM 2020, DE-RRD): `de_experts` small networks map the student's user "
          "and item representations onto the teacher's, one chosen per user or item by a Gumbel-softmax gate "
          "(`de_tau`)",
    "logits+rrd": "Hinton KD plus Relaxed Ranking Distillation (Kang et al., CIKM 2020), RRD's term weighted by "
                  "`combo_weight`",
    "de+rrd": "DE-RRD (Kang et al., CIKM 2020): Distillation Experts plus Relaxed Ranking Distillation, RRD's term "
              "weighted by `combo_weight`",
}


def knobs(method: str) -> tuple[str, ...]:
    """The DistillConfig fields ``method`` reads: ``"rrd" -> (rank_k, rrd_pool, rrd_l, rrd_t)``."""
    ps = distillers.parts(method)
    names = [k for p in ps for k in PART_KNOBS[p]] + (["combo_weight"] if len(ps) > 1 else [])
    return tuple(dict.fromkeys(names))


def uses_temperature(method: str) -> bool:
    """Whether T (and the T² factor) enter ``method``'s loss: only Hinton KD's KL reads them."""
    return "logits" in distillers.parts(method)


def formula(method: str, t_squared: bool) -> str:
    """The loss the student minimises with ``method``, and where the method comes from, as a caption."""
    terms = _TERMS | {"logits": _TERMS["logits"] if t_squared else "KL(teacher_T ‖ student_T)"}
    ps = distillers.parts(method)
    term = terms[ps[0]] if len(ps) == 1 else f"({terms[ps[0]]} + combo_weight · {terms[ps[1]]})"
    return f"The student minimises **alpha · CE(hard labels) + (1 − alpha) · {term}**: {ABOUT[method]}."


def temperature_note(method: str) -> str | None:
    """What T does for a method that does not read it (None for one that does)."""
    if uses_temperature(method):
        return None
    return (f"{method} does not use the temperature: T changes only the soft labels drawn at the bottom of this "
            "page, and the T² factor applies to Hinton KD's KL alone.")


def knob_inputs(method: str, key: str) -> dict[str, Any]:
    """Number inputs for ``method``'s knobs (none for logits), four to a row; their values by field."""
    names = knobs(method)
    values: dict[str, Any] = {}
    for start in range(0, len(names), 4):
        for col, name in zip(st.columns(4), names[start:start + 4]):
            label, lo, hi, step = KNOB_WIDGETS[name]
            flag, text = _HELP[name]
            fmt = None if isinstance(lo, int) else "%.3f"
            values[name] = col.number_input(label, lo, hi, getattr(D, name), step, format=fmt, key=f"{key}_{name}",
                                            persist_state="session", help=f"{text} (CLI: `{flag}`).")
    return values


def fields(method: str, values: dict[str, Any]) -> dict[str, Any]:
    """DistillConfig's ``method`` and knob fields (a knob the method does not read keeps its default)."""
    return {"method": method, **values}


def check(cfg: DistillConfig, teacher: Callable[[], Recommender], n_items: int, path: TrainPath) -> None:
    """``distillers.check`` of a config about to train (``ConfigError`` naming the field); ``teacher`` is loaded
    only for a method that reads its representations (de). Nothing to check for Hinton KD, or at alpha = 1 where
    no method term is trained."""
    if cfg.method == "logits" or cfg.alpha == 1:
        return
    distillers.check(cfg, teacher() if "de" in distillers.parts(cfg.method) else None, n_items, path.top_k)

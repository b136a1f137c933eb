"""Frozen, validated configuration dataclasses.

Every check names the field it refuses, so the dashboard and the CLI can show the message as it is.
The defaults are the ones measured to work on the bundled sample (see README, "Defaults").
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from distill_core.errors import ConfigError

# "text" needs the optional extra requirements-lm.txt (distill_core.text_embed.available()); it stays
# listed without it so that stored runs keep a valid config, and building one then says what to install.
MODEL_FAMILIES: tuple[str, ...] = ("mf", "two_tower", "sasrec", "text")
# students are small ID models (a text student would carry the frozen text table it was meant to avoid)
STUDENT_FAMILIES: tuple[str, ...] = ("mf", "two_tower", "sasrec")
SOFT_LABEL_MODES: tuple[str, ...] = ("auto", "current", "per-step")
SELECTIONS: tuple[str, ...] = ("auto", "lagged", "direct")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
LOSSES: tuple[str, ...] = ("auto", "full", "sampled")
# distillation methods (distill_core/distillers/, one file each); "a+b": a's term plus combo_weight x b's
METHODS: tuple[str, ...] = ("logits", "rd", "rrd", "de", "logits+rrd", "de+rrd")
# the knobs of the methods other than Hinton KD (DistillConfig.to_dict leaves them out when method is "logits")
METHOD_KNOBS: tuple[str, ...] = ("rank_k", "rd_lambda", "rd_mu", "rrd_pool", "rrd_l", "rrd_t", "de_experts", "de_tau",
                                 "combo_weight")
# the bounds of DistillConfig's integer knobs (rank_k, rrd_pool, rrd_l, de_experts), shared with the dashboard's inputs
KNOB_INT_MIN = 1
KNOB_INT_MAX = 100_000
DE_EXPERTS_MAX = 64  # experts per side


def _check(cond: bool, name: str, problem: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{name} {problem} (got {value!r})")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class DataOptions:
    """How raw interactions become positives."""

    rating_threshold: float | None = None  # None: every interaction is a positive
    kcore: int = 0  # 0 or 1: no filter

    def __post_init__(self) -> None:
        if self.rating_threshold is not None:
            _check(_finite(self.rating_threshold), "rating_threshold", "must be a finite number",
                   self.rating_threshold)
        _check(isinstance(self.kcore, int) and self.kcore >= 0, "kcore", "must be an integer >= 0", self.kcore)


@dataclass(frozen=True)
class SplitOptions:
    """Per-user split: temporal leave-one-out ("loo") or random ratio ("ratio")."""

    method: str = "loo"
    valid_ratio: float = 0.1
    test_ratio: float = 0.1
    min_interactions: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.method in ("loo", "ratio"), "split method", "must be 'loo' or 'ratio'", self.method)
        for name in ("valid_ratio", "test_ratio"):
            v = getattr(self, name)
            _check(_finite(v) and 0 < v < 1, name, "must be in (0, 1)", v)
        _check(_finite(self.valid_ratio + self.test_ratio) and self.valid_ratio + self.test_ratio < 1,
               "valid_ratio + test_ratio", "must be below 1", self.valid_ratio + self.test_ratio)
        _check(isinstance(self.min_interactions, int) and self.min_interactions >= 3, "min_interactions",
               "must be an integer >= 3 (one each for train, validation and test)", self.min_interactions)


@dataclass(frozen=True)
class ModelSpec:
    """A model family and its size."""

    family: str = "mf"
    dim: int = 64  # embedding width
    layers: int = 2  # hidden layers of the user tower (two_tower) or attention blocks (sasrec, text; 0: text with an ID user)
    heads: int = 2  # attention heads (sasrec)
    max_len: int = 50  # recent items a sequential model reads (two_tower, sasrec)
    dropout: float = 0.2  # (sasrec)

    def __post_init__(self) -> None:
        _check(self.family in MODEL_FAMILIES, "model family", f"must be one of {', '.join(MODEL_FAMILIES)}",
               self.family)
        _check(isinstance(self.dim, int) and not isinstance(self.dim, bool) and 1 <= self.dim <= 4096,
               "dim", "must be an integer between 1 and 4096", self.dim)
        _check(isinstance(self.layers, int) and 0 <= self.layers <= 8, "layers",
               "must be an integer between 0 and 8", self.layers)
        if self.family == "sasrec":
            _check(self.layers >= 1, "layers", "must be at least 1 for sasrec", self.layers)
        _check(isinstance(self.heads, int) and self.heads >= 1, "heads", "must be a positive integer", self.heads)
        if self.family in ("sasrec", "text") and self.layers >= 1:  # only attention splits dim across heads
            _check(self.dim % self.heads == 0, "heads", f"must divide dim={self.dim} for {self.family}", self.heads)
        _check(isinstance(self.max_len, int) and 1 <= self.max_len <= 1000, "max_len",
               "must be an integer between 1 and 1000", self.max_len)
        _check(_finite(self.dropout) and 0 <= self.dropout < 1, "dropout", "must be in [0, 1)", self.dropout)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by teacher and student."""

    # a cap, not a schedule: runs stop on patience (on the sample the plain 1/10 student at lr 2.5e-3 peaked
    # at epoch 38, past the old cap of 30; at the default lr 5e-3 it peaks near 21 and stops there)
    epochs: int = 60
    lr: float = 5e-3
    batch_size: int = 1024
    weight_decay: float = 0.0
    patience: int = 5  # epochs without a better validation NDCG@10 before stopping; 0 disables
    # ... and at least this many optimiser steps: the patience in epochs is max(patience,
    # ceil(patience_steps / steps per epoch)); 0: epochs alone. A plateau lasts a number of updates, not of
    # epochs: on ml-100k (121 teacher steps an epoch) the teacher sat 8 epochs on one before rising again
    patience_steps: int = 0
    seed: int = 0
    device: str = "auto"
    # "full": softmax over the whole catalogue; "sampled": sampled softmax with logQ correction over
    # `negatives` items shared by a batch, drawn from q ∝ (count + 1)^negative_beta (0: uniform, 1: popularity);
    # "auto": full up to catalogue.FULL_MAX_ITEMS items, sampled above (distill_core/catalogue.py says why)
    loss: str = "auto"
    negatives: int = 1024
    negative_beta: float = 0.5
    time_budget_s: float = 0.0  # stop after the epoch that crosses this many seconds of training; 0: no budget
    # on the sampled path without weight decay: update only the id-table rows a batch touched (lazy Adam,
    # distill_core/rowadam.py) instead of every row every step (catalogue.sparse_tables says when and why)
    sparse_tables: bool = True

    def __post_init__(self) -> None:
        _check(isinstance(self.epochs, int) and not isinstance(self.epochs, bool) and 1 <= self.epochs <= 10_000,
               "epochs", "must be an integer between 1 and 10000", self.epochs)
        _check(_finite(self.lr) and 0 < self.lr <= 10, "learning rate", "must be in (0, 10]", self.lr)
        _check(isinstance(self.batch_size, int) and 1 <= self.batch_size <= 1_000_000, "batch_size",
               "must be a positive integer", self.batch_size)
        _check(_finite(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "must be >= 0",
               self.weight_decay)
        _check(isinstance(self.patience, int) and self.patience >= 0, "patience", "must be an integer >= 0",
               self.patience)
        _check(isinstance(self.patience_steps, int) and not isinstance(self.patience_steps, bool)
               and self.patience_steps >= 0, "patience_steps", "must be an integer >= 0", self.patience_steps)
        _check(isinstance(self.seed, int), "seed", "must be an integer", self.seed)
        _check(self.device in DEVICES, "device", f"must be one of {', '.join(DEVICES)}", self.device)
        _check(self.loss in LOSSES, "loss", f"must be one of {', '.join(LOSSES)}", self.loss)
        _check(isinstance(self.negatives, int) and not isinstance(self.negatives, bool) and self.negatives >= 1,
               "negatives", "must be an integer >= 1", self.negatives)
        _check(_finite(self.negative_beta) and self.negative_beta >= 0, "negative_beta", "must be a number >= 0",
               self.negative_beta)
        _check(isinstance(self.sparse_tables, bool), "sparse_tables", "must be true or false", self.sparse_tables)
        _check(_finite(self.time_budget_s) and self.time_budget_s >= 0, "time_budget_s",
               "must be a number of seconds >= 0 (0: no budget)", self.time_budget_s)


@dataclass(frozen=True)
class DistillConfig:
    """The KD loss: ``alpha * CE + (1 - alpha) * T^2 * KL`` (alpha weights the hard labels)."""

    # chosen so an untuned run is close to a tuned one (bench/fair.py, first seed, lagged selection): alpha
    # 0.25, T 1 was within 7% of the best of 6 cells on the sample and 0.4% on ml-100k; the old 0.5, T 2
    # was 20-40% below the best on the sample
    alpha: float = 0.25
    temperature: float = 1.0
    t_squared: bool = True  # multiply the KL term by T^2 (off only for teaching)
    # "current": one soft label per user, the teacher's output after the user's training sequence;
    # "per-step": the teacher's output at the position of each training example;
    # "auto": per-step when teacher and student are of one family, current otherwise.
    soft_labels: str = "auto"
    # How the student is selected (early stopping; a sweep's best cell) when its soft labels are
    # `current` and the teacher reads sequences. Such a soft label is the teacher's forecast of the very
    # validation item, so validation rewards pure imitation (sample, alpha 0, T 1: validation 0.399, test
    # 0.294). "auto" = "lagged": select on a run whose soft labels come from each user's sequence *before*
    # the last training item, so the validation item lies one step past the forecast, as the test item
    # does; then train again on the full soft labels for the chosen number of epochs. "direct": select on
    # the run itself (inflated; kept so the bench can show what that choice scores on test).
    selection: str = "auto"
    # The teacher's distribution is kept as its top-K items per row (plus the mass of the rest):
    # 0 = auto (the whole distribution on the full path when the users x items table fits the soft-label
    # cache, else catalogue.DEFAULT_TOP_K); K >= the catalogue = the whole distribution
    soft_top_k: int = 0
    # The KD term (distill_core/distillers/; formulas and papers in each file): "logits" (Hinton KD above),
    # "rd" (Ranking Distillation), "rrd" (Relaxed Ranking Distillation), "de" (Distillation Experts), or
    # "logits+rrd" / "de+rrd" (the first term + combo_weight x RRD's). alpha stays the hard CE's weight:
    # total = alpha * CE + (1 - alpha) * term. The knobs below act only on the methods they name.
    method: str = "logits"
    rank_k: int = 10  # RD: the teacher's top-K items taken as extra positives; RRD: the K interesting items ranked
    rd_lambda: float = 1.0  # RD: position weight w_r ∝ exp(-r / lambda), r = 1..K
    rd_mu: float = 0.1  # RD: dynamic weight tanh(max(mu (student's rank - teacher's), 0)); 0: position weights only
    rrd_pool: int = 100  # RRD: the interesting items are drawn from the teacher's top rrd_pool
    rrd_l: int = 100  # RRD: uninteresting items per batch, drawn uniformly from outside each row's pool
    rrd_t: float = 10.0  # RRD: the interesting items are drawn with p(rank r) ∝ exp(-r / rrd_t)
    de_experts: int = 5  # DE: experts per side (users, items), one chosen per entity by a Gumbel-softmax gate
    de_tau: float = 1.0  # DE: the Gumbel-softmax temperature of the gate
    combo_weight: float = 1.0  # "a+rrd": the weight of RRD's term beside a's

    def __post_init__(self) -> None:
        _check(self.method in METHODS, "method", f"must be one of {', '.join(METHODS)}", self.method)
        for name in ("rank_k", "rrd_pool", "rrd_l", "de_experts"):
            v = getattr(self, name)
            _check(isinstance(v, int) and not isinstance(v, bool) and KNOB_INT_MIN <= v <= KNOB_INT_MAX, name,
                   f"must be an integer between {KNOB_INT_MIN} and {KNOB_INT_MAX}", v)
        _check(self.de_experts <= DE_EXPERTS_MAX, "de_experts", f"must be at most {DE_EXPERTS_MAX}", self.de_experts)
        if "rrd" in self.method.split("+"):  # rd reads rank_k alone: its pool is not drawn from
            _check(self.rrd_pool >= self.rank_k, "rrd_pool", f"must be at least rank_k={self.rank_k} (the "
                   "interesting items are drawn from the pool)", self.rrd_pool)
        for name in ("rd_lambda", "rrd_t", "de_tau"):
            _check(_finite(getattr(self, name)) and getattr(self, name) > 0, name, "must be a finite number > 0",
                   getattr(self, name))
        for name in ("rd_mu", "combo_weight"):
            _check(_finite(getattr(self, name)) and getattr(self, name) >= 0, name, "must be a finite number >= 0",
                   getattr(self, name))
        _check(self.selection in SELECTIONS, "selection", f"must be one of {', '.join(SELECTIONS)}", self.selection)
        _check(self.soft_labels in SOFT_LABEL_MODES, "soft_labels", f"must be one of {', '.join(SOFT_LABEL_MODES)}",
               self.soft_labels)
        _check(_finite(self.alpha) and 0 <= self.alpha <= 1, "alpha", "must be between 0 and 1", self.alpha)
        _check(_finite(self.temperature) and self.temperature > 0, "temperature",
               "must be a finite number > 0", self.temperature)
        _check(isinstance(self.soft_top_k, int) and not isinstance(self.soft_top_k, bool) and self.soft_top_k >= 0,
               "soft_top_k", "must be an integer >= 1 (or 0 for auto)", self.soft_top_k)

    def to_dict(self) -> dict[str, Any]:
        """The fields a run is stored with: without ``method`` and its knobs when the method is Hinton KD (the
        default, which the knobs do not touch), so such a run's config equals one stored before the methods
        existed, and a sweep finds its cells again; ``DistillConfig(**d)`` reads either back."""
        d = asdict(self)
        if self.method == "logits":
            for name in ("method", *METHOD_KNOBS):
                d.pop(name)
        return d


@dataclass(frozen=True)
class RunConfig:
    """Everything one teacher -> student run needs; stored with every run."""

    # SASRec gave the best validation NDCG@10 on the sample (see README, "Defaults"). The MF student of
    # dim 6 is 0.099 of its parameters on the sample but 0.21 on 6,040 x 3,416: a share holds for one
    # catalogue only, so `--student-ratio` / `sizing.student_for_ratio` pick the dim from the actual data.
    teacher: ModelSpec = field(default_factory=lambda: ModelSpec("sasrec", 64, layers=2))
    student: ModelSpec = field(default_factory=lambda: ModelSpec("mf", 6))
    # the teacher stops on patience; 100 is a cap that a converging teacher does not reach (on 6,040 users x
    # 3,416 items the old cap of 20 stopped it with validation still rising, a third below published SASRec).
    # Patience: 3 epochs and at least 1,500 steps. On ml-100k (121 steps an epoch) 3 epochs stopped the
    # teacher on a plateau at epoch 11 (test NDCG@10 0.073; with 10 epochs of patience it went on to 0.103),
    # while on 40,000 users x 53,438 items (764 steps) it stays 3 epochs, past a peak at epoch 10
    teacher_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=100, lr=1e-3, patience=3,
                                                                           patience_steps=1500))
    student_train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    data: DataOptions = field(default_factory=DataOptions)
    split: SplitOptions = field(default_factory=SplitOptions)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        types = {f.name: f.default_factory for f in fields(cls)}  # type: ignore[misc]
        kwargs = {k: type(types[k]())(**v) for k, v in d.items() if k in types}
        return cls(**kwargs)

    def with_seed(self, seed: int) -> "RunConfig":
        return replace(self, teacher_train=replace(self.teacher_train, seed=seed),
                       student_train=replace(self.student_train, seed=seed))


# The Overview's demo: the default models with fewer epochs, so the demo ends within a minute on 2 CPU cores
# with a browser watching (measured 4 + 10 + 10 epochs; the teacher's validation NDCG@10 levels off after 4).
# A test shortens it by replacing it (monkeypatch ``config.DEMO``; tests/_dashboard.py for a server).
DEMO = RunConfig(teacher_train=replace(RunConfig().teacher_train, epochs=4),
                 student_train=replace(RunConfig().student_train, epochs=10))

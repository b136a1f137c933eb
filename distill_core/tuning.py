"""The plain student's tuning ladder: as many (learning rate, weight decay) cells as the distilled
student gets (alpha, T) cells, so that neither side of a comparison is tuned more (issue #14, point 2:
on ml-100k, lr x 2 and weight decay 1e-5 alone lifted the plain MF student's mean test NDCG@10 by 6%).
"""
from __future__ import annotations

import math

from distill_core.errors import ConfigError

MAX_CELLS = 100  # the largest sweep grid: a larger one is almost surely a typo (and would run for hours)
MAX_LR = 10.0  # TrainConfig's upper bound
# Nearest the student's own settings first. Ten factors are <= 1, so ten rates always stay valid.
LR_FACTORS = (1.0, 2.0, 0.5, 4.0, 0.25, 8.0, 0.125, 16.0, 1 / 16, 32.0, 1 / 32, 1 / 64, 1 / 128, 1 / 256, 1 / 512)
WEIGHT_DECAYS = (0.0, 1e-5, 1e-6, 1e-4, 1e-7, 1e-3, 1e-8, 1e-2, 1e-9, 1e-1)


def plain_ladder(n: int, lr: float, weight_decay: float = 0.0) -> tuple[tuple[float, float], ...]:
    """``n`` distinct (learning rate, weight decay) pairs, the first being (``lr``, ``weight_decay``).

    The rates are ``lr`` x LR_FACTORS without those above 10, the decays ``weight_decay`` then
    WEIGHT_DECAYS, each nearest-first. The cells are the first ``a = ceil(sqrt(n))`` rates x the first
    ``b = ceil(n / a)`` decays: 16 cells are lr x {1/2, 1, 2, 4} x {0, 1e-6, 1e-5, 1e-4}, 4 cells
    {lr, 2 lr} x {0, 1e-5}. When ``a * b > n`` the cells are taken diagonal by diagonal, (i, (i + s) mod b)
    for s = 0, 1, ...: each full diagonal uses every rate once and the decays evenly (5 cells: 3 rates x
    2 decays without (lr / 2, 1e-5)). 2 cells vary the rate only: (lr, 0) and (2 lr, 0).
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CELLS:
        raise ConfigError(f"plain cells: n must be an integer between 1 and {MAX_CELLS} (got {n!r})")
    rates = [lr * f for f in LR_FACTORS if lr * f <= MAX_LR]
    decays = list(dict.fromkeys((float(weight_decay), *WEIGHT_DECAYS)))
    a = math.ceil(math.sqrt(n))
    b = math.ceil(n / a)
    cells = [(rates[i], decays[(i + s) % b]) for s in range(b) for i in range(a)]
    return tuple(cells[:n])

"""Large synthetic catalogues (10^4-10^7 items), generated deterministically and fast, for the scale benchmark.

The bundled sample's generator (``sample.py``) draws every interaction against the whole catalogue, which is
``O(interactions x items)``; this one is ``O(interactions x log items)`` and vectorised over users, with the same
structure in kind:

* items in *niches* of about 30 (a niche is a fine-grained taste), Zipf popularity inside each niche times a
  lognormal factor, and Zipf popularity of the niches themselves: a long tail of items;
* users with three taste niches each, drifting to three others over their history;
* sessions (the next item stays in the last item's niche, ``p_session``) and series (the next item is the
  next installment of the last one, ``p_series``), so the next item depends on the previous one, which a
  sequence model reads and an ID model averages away.

Activity per user is lognormal around ``mean_activity``, at least ``min_activity`` (the split needs 3).
Repeated (user, item) pairs are dropped by the loaders, as for any log. Output: the MovieLens ml-latest layout
(``ratings.csv`` + ``movies.csv``), so ``python -m distill_core run --data FOLDER`` reads it as it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from distill_core.data.sample import GENRES


@dataclass(frozen=True)
class SyntheticSpec:
    n_users: int = 40_000
    n_items: int = 72_000  # about 55,000 of them are interacted with at the default activity
    mean_activity: float = 11.2  # interactions per user (before duplicates are dropped)
    min_activity: int = 4
    niche_size: int = 30
    p_series: float = 0.30
    p_session: float = 0.40
    item_zipf: float = 0.8  # popularity exponent inside a niche (lower: flatter, more of the catalogue is used)
    item_spread: float = 0.7  # sigma of the lognormal popularity factor
    seed: int = 20261201


def _zipf(n: int, s: float, rng: np.random.Generator) -> np.ndarray:
    return 1.0 / (rng.permutation(n) + 1.0) ** s


def generate(spec: SyntheticSpec = SyntheticSpec()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(ratings, movies)`` frames; the same spec gives the same frames."""
    rng = np.random.default_rng(spec.seed)
    n, g = spec.n_items, max(1, spec.n_items // spec.niche_size)
    niche = rng.integers(0, g, n)  # niche of every item
    pop = np.empty(n)
    order = np.argsort(niche, kind="stable")  # items grouped by niche
    sizes = np.bincount(niche, minlength=g)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ranks = np.concatenate([rng.permutation(k) + 1 for k in sizes]).astype(float)
    pop[order] = 1.0 / ranks ** spec.item_zipf
    pop *= rng.lognormal(0.0, spec.item_spread, n)
    # per-niche inverse CDF over the grouped items: item = order[searchsorted(cdf, start_mass + u * mass)]
    w = pop[order]
    cdf = np.cumsum(w)
    first = np.minimum(start, n - 1)  # an empty niche is never drawn from (its mass is set to 0 below)
    mass = np.where(sizes > 0, np.add.reduceat(w, first), 0.0)
    lo = cdf[first] - w[first]
    # series: within a niche, every third item continues to the next one in the grouped order
    nxt = np.full(n, -1)
    same = niche[order[1:]] == niche[order[:-1]]
    link = same & (rng.random(n - 1) < 0.35)
    nxt[order[:-1][link]] = order[1:][link]
    niche_p = _zipf(g, 0.8, rng) * (sizes > 0)
    niche_p /= niche_p.sum()
    u = spec.n_users
    tastes = rng.choice(g, size=(u, 2, 3), p=niche_p)  # (user, start|end, 3 niches)
    mix = np.array([0.6, 0.3, 0.1])
    activity = np.maximum(spec.min_activity, rng.lognormal(np.log(spec.mean_activity) - 0.3, 0.75, u)).astype(int)
    activity = np.minimum(activity, n // 2)
    steps = int(activity.max())
    users_out, items_out, t_out = [], [], []
    last = np.full(u, -1)
    clock = 1_000_000_000 + rng.integers(0, 50_000_000, u)

    def draw_in(niches: np.ndarray) -> np.ndarray:
        x = lo[niches] + rng.random(len(niches)) * mass[niches]
        return order[np.minimum(np.searchsorted(cdf, x), n - 1)]

    for step in range(steps):
        active = np.flatnonzero(activity > step)
        r = rng.random(len(active))
        prev = last[active]
        item = np.full(len(active), -1)
        series = (prev >= 0) & (r < spec.p_series) & (nxt[np.maximum(prev, 0)] >= 0)
        item[series] = nxt[prev[series]]
        session = (prev >= 0) & ~series & (r < spec.p_series + spec.p_session)
        item[session] = draw_in(niche[prev[session]])
        rest = item < 0
        drift = (step / np.maximum(activity[active][rest] - 1, 1) > rng.random(rest.sum())).astype(int)
        pick = rng.choice(3, size=rest.sum(), p=mix)
        item[rest] = draw_in(tastes[active[rest], drift, pick])
        last[active] = item
        clock[active] += np.where(rng.random(len(active)) < 0.8, rng.integers(60, 3600, len(active)),
                                  rng.integers(86_400, 2_000_000, len(active)))
        users_out.append(active), items_out.append(item), t_out.append(clock[active].copy())
    ratings = pd.DataFrame({"userId": np.concatenate(users_out) + 1, "movieId": np.concatenate(items_out) + 1,
                            "rating": 4, "timestamp": np.concatenate(t_out)})
    ratings = ratings.drop_duplicates(["userId", "movieId"], keep="first").sort_values(["userId", "timestamp"])
    # a niche's genre is one of the sample's 18 (a niche is a fine taste inside a genre)
    movies = pd.DataFrame({"movieId": np.arange(1, n + 1), "title": [f"item {i}" for i in range(1, n + 1)],
                           "genres": np.asarray(GENRES)[niche % len(GENRES)]})
    return ratings.reset_index(drop=True), movies


def write(folder: str | Path, spec: SyntheticSpec = SyntheticSpec()) -> Path:
    """Write ``ratings.csv`` and ``movies.csv`` into ``folder`` (created); return the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ratings, movies = generate(spec)
    ratings.to_csv(folder / "ratings.csv", index=False, lineterminator="\n")
    movies.to_csv(folder / "movies.csv", index=False, lineterminator="\n")
    return folder

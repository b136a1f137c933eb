"""Deterministic generator of the bundled sample dataset (``sample_data/``).

The data imitates what makes real interaction logs hard for a tiny model and easy for a large or
sequence-aware one:

* a long-tail item popularity (Zipf within each genre);
* users in taste groups over genres, each with a personal mix, so that a handful of latent
  dimensions cannot describe everyone;
* taste that drifts over a user's history (start mix -> end mix), so the *latest* interactions
  say more about the next one than the average does;
* sessions (consecutive items share a genre) and series (sequels watched in order), so the next
  item depends on the previous one.

Titles are made from genre words ("Midnight Heist", "Laughing Wedding Part 2"), so a text encoder
can read an item's genre from its title. Output is in the MovieLens ml-latest layout
(``ratings.csv`` + ``movies.csv``), which the loaders read like any other MovieLens folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
    "Film-Noir",
)

# Two word lists per genre: title = "<first> <second>" drawn from the item's genres.
_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Action": (("Deadly", "Explosive", "Rapid", "Iron", "Final"), ("Strike", "Fury", "Chase", "Mission", "Bullet")),
    "Adventure": (("Lost", "Distant", "Wild", "Hidden", "Golden"), ("Expedition", "Voyage", "Quest", "Island", "Treasure")),
    "Animation": (("Little", "Painted", "Bouncy", "Cartoon", "Magic"), ("Critters", "Toys", "Doodles", "Friends", "Pixels")),
    "Children": (("Happy", "Tiny", "Sunny", "Playful", "Brave"), ("Puppy", "Kids", "Playground", "Pony", "Bunny")),
    "Comedy": (("Silly", "Crazy", "Laughing", "Awkward", "Goofy"), ("Wedding", "Party", "Roommates", "Mixup", "Vacation")),
    "Crime": (("Dirty", "Stolen", "Corrupt", "Underground", "Blood"), ("Heist", "Mob", "Money", "Cartel", "Detective")),
    "Documentary": (("True", "Inside", "Untold", "Real", "Wild"), ("Story", "Planet", "History", "Nature", "Facts")),
    "Drama": (("Quiet", "Broken", "Silent", "Tender", "Long"), ("Family", "Promise", "Letters", "Years", "Hearts")),
    "Fantasy": (("Enchanted", "Dragon", "Elven", "Mystic", "Crystal"), ("Kingdom", "Sword", "Wizard", "Realm", "Spell")),
    "Horror": (("Haunted", "Cursed", "Bloody", "Dark", "Screaming"), ("House", "Ghost", "Nightmare", "Demon", "Graveyard")),
    "Musical": (("Singing", "Dancing", "Broadway", "Jazz", "Melody"), ("Show", "Song", "Stage", "Rhythm", "Chorus")),
    "Mystery": (("Secret", "Missing", "Strange", "Puzzling", "Foggy"), ("Clue", "Riddle", "Case", "Witness", "Manor")),
    "Romance": (("Sweet", "Endless", "Summer", "Paris", "Lovely"), ("Love", "Kiss", "Romance", "Heart", "Valentine")),
    "Sci-Fi": (("Galactic", "Quantum", "Robot", "Alien", "Cyber"), ("Planet", "Android", "Starship", "Future", "Galaxy")),
    "Thriller": (("Deadly", "Hidden", "Silent", "Midnight", "Paranoid"), ("Conspiracy", "Hostage", "Trap", "Escape", "Target")),
    "War": (("Bloody", "Frontline", "Brave", "Last", "Iron"), ("Battle", "Soldier", "Trenches", "Victory", "Army")),
    "Western": (("Dusty", "Wild", "Lonesome", "Outlaw", "Desert"), ("Cowboy", "Saloon", "Ranch", "Gunslinger", "Frontier")),
    "Film-Noir": (("Shadowy", "Rainy", "Smoky", "Cynical", "Neon"), ("Noir", "Dame", "Alley", "Gumshoe", "Nightclub")),
}


@dataclass(frozen=True)
class SampleSpec:
    """Size and structure of a generated dataset (the defaults make the bundled sample)."""

    n_users: int = 1000
    n_items: int = 1800
    mean_activity: float = 100.0
    n_niches: int = 60  # fine-grained tastes inside genres (about 30 items each)
    n_taste_groups: int = 40
    p_series: float = 0.35  # next item is the next installment of the current series
    p_session: float = 0.40  # next item stays in the previous item's genre
    series_share: float = 0.30  # share of items that belong to a series
    seed: int = 20261128

    def scaled(self, factor: int) -> "SampleSpec":
        """Same structure with ``factor`` x users and items (for the scaling benchmark)."""
        return SampleSpec(**{**self.__dict__, "n_users": self.n_users * factor,
                             "n_items": self.n_items * factor})


def _make_items(spec: SampleSpec, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, list[list[int]]]:
    """Items with genres, titles and series; returns (items, niche of each item, series)."""
    n_g = len(GENRES)
    niche_genre = np.arange(spec.n_niches) % n_g
    niche = rng.integers(0, spec.n_niches, size=spec.n_items)
    primary = niche_genre[niche]
    genres: list[list[int]] = []
    for g in primary:
        extra = rng.choice(n_g, size=rng.integers(0, 3), replace=False)
        genres.append([int(g)] + [int(e) for e in extra if e != g])
    # Series: consecutive runs of 2-5 items sharing genres, titled "... Part k".
    series: list[list[int]] = []
    order = rng.permutation(spec.n_items)
    i, target = 0, int(spec.series_share * spec.n_items)
    while i < target:
        length = int(rng.integers(2, 6))
        members = [int(x) for x in order[i:i + length]]
        for m in members[1:]:
            niche[m], primary[m] = niche[members[0]], primary[members[0]]
            genres[m] = list(genres[members[0]])
        series.append(members)
        i += length
    titles = []
    part_of: dict[int, tuple[int, int]] = {m: (s, k) for s, ms in enumerate(series) for k, m in enumerate(ms)}
    for it in range(spec.n_items):
        head = part_of.get(it, (None, 0))
        base = series[head[0]][0] if head[0] is not None else it
        g_first, g_second = GENRES[genres[base][0]], GENRES[genres[base][-1]]
        w_rng = np.random.default_rng(spec.seed + 7919 * base)
        title = f"{w_rng.choice(_WORDS[g_first][0])} {w_rng.choice(_WORDS[g_second][1])}"
        if head[0] is not None and head[1] > 0:
            title += f" Part {head[1] + 1}"
        titles.append(f"{title} ({1960 + (base * 37) % 60})")
    items = pd.DataFrame({
        "movieId": np.arange(1, spec.n_items + 1),
        "title": titles,
        "genres": ["|".join(GENRES[g] for g in gs) for gs in genres],
    })
    return items, niche, series


def generate_sample(spec: SampleSpec = SampleSpec()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(ratings, movies)`` in the ml-latest layout; the same spec gives the same frames."""
    rng = np.random.default_rng(spec.seed)
    n_g = len(GENRES)
    items, primary, series = _make_items(spec, rng)  # primary: the item's niche
    n_g = spec.n_niches
    next_in_series = np.full(spec.n_items, -1)
    for ms in series:
        for a, b in zip(ms[:-1], ms[1:]):
            next_in_series[a] = b
    # Long tail: Zipf weights inside each niche, plus a global popularity factor.
    pop = np.zeros(spec.n_items)
    by_genre = [np.flatnonzero(primary == g) for g in range(n_g)]
    for members in by_genre:
        ranks = rng.permutation(len(members)) + 1
        pop[members] = 1.0 / ranks ** 1.3
    pop *= rng.lognormal(0.0, 1.0, size=spec.n_items)
    niche_pop = 1.0 / (rng.permutation(n_g) + 1) ** 0.8  # some niches are mainstream, most are not
    group_genres = [rng.choice(n_g, size=3, replace=False, p=niche_pop / niche_pop.sum())
                    for _ in range(spec.n_taste_groups)]

    def taste(group: int) -> np.ndarray:
        alpha = np.full(n_g, 0.02)
        alpha[group_genres[group]] = [3.0, 2.0, 1.0]
        return rng.dirichlet(alpha)

    rows_u, rows_i, rows_r, rows_t = [], [], [], []
    activity = np.clip(rng.lognormal(np.log(spec.mean_activity) - 0.32, 0.8, spec.n_users), 20, 600).astype(int)
    for u in range(spec.n_users):
        g_start = int(rng.integers(spec.n_taste_groups))
        g_end = int(rng.integers(spec.n_taste_groups)) if rng.random() < 0.6 else g_start
        start, end = taste(g_start), taste(g_end)
        n = int(min(activity[u], spec.n_items // 2))
        seen = np.zeros(spec.n_items, dtype=bool)
        t = 1_000_000_000 + int(rng.integers(0, 50_000_000))
        last = -1
        for step in range(n):
            w = step / max(n - 1, 1)
            pref = (1 - w) * start + w * end
            item = -1
            r = rng.random()
            if last >= 0 and r < spec.p_series and next_in_series[last] >= 0 and not seen[next_in_series[last]]:
                item = int(next_in_series[last])
            elif last >= 0 and r < spec.p_series + spec.p_session:
                cands = by_genre[primary[last]]
                wts = pop[cands] * ~seen[cands]
                if wts.sum() > 0:
                    item = int(rng.choice(cands, p=wts / wts.sum()))
            if item < 0:
                wts = pop * pref[primary] * ~seen
                item = int(rng.choice(spec.n_items, p=wts / wts.sum()))
            seen[item] = True
            match = pref[primary[item]] / pref.max()
            rating = int(np.clip(np.round(2.2 + 2.5 * match + rng.normal(0, 0.8)), 1, 5))
            gap = int(rng.integers(60, 3600)) if rng.random() < 0.8 else int(rng.integers(86_400, 2_000_000))
            t += gap
            rows_u.append(u + 1), rows_i.append(item + 1), rows_r.append(rating), rows_t.append(t)
            last = item
    ratings = pd.DataFrame({"userId": rows_u, "movieId": rows_i, "rating": rows_r, "timestamp": rows_t})
    return ratings, items


def write_sample(folder: str | Path, spec: SampleSpec = SampleSpec()) -> tuple[Path, Path]:
    """Write ``ratings.csv`` and ``movies.csv`` into ``folder``; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ratings, movies = generate_sample(spec)
    r_path, m_path = folder / "ratings.csv", folder / "movies.csv"
    ratings.to_csv(r_path, index=False, lineterminator="\n")
    movies.to_csv(m_path, index=False, lineterminator="\n")
    return r_path, m_path

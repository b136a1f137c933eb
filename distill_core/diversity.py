"""The item space intra-list diversity is measured in (``segments``): genres where the data has them, else item
embeddings from the training interactions, the same for every model so that their lists compare.

* **Genres**, where at least half the items have one (``Split.genres``, '|'-separated; '', "(no genres listed)"
  and "unknown" count as none): an item's vector is its multi-hot genre set, so ``cos(v_i, v_j) = |G_i & G_j| /
  sqrt(|G_i| |G_j|)``.
* **Embeddings** otherwise: the rows of ``U S`` of a rank-q truncated SVD of the binary training item x user
  matrix ``A = U S V^T`` (PureSVD item factors, Cremonesi, Koren & Turrin, "Performance of Recommender Algorithms
  on Top-N Recommendation Tasks", RecSys 2010), computed by ``torch.svd_lowrank`` (Halko, Martinsson & Tropp
  2011) under a fixed seed. Since ``A_i = (U S)_i V^T`` with orthonormal V, at full rank the cosine of two rows
  is exactly the cosine of the items' user sets ``|U_i & U_j| / sqrt(|U_i| |U_j|)``; at rank q it is its best
  rank-q approximation.

Vectors are unit rows; an item without genres (or without training interactions) gets a zero row and its pairs
are left out of the diversity.
"""
from __future__ import annotations

import numpy as np
import torch

from distill_core.data.dataset import Split

Space = tuple[np.ndarray, str, str]  # (vectors (n_items, d), "genre" | "embedding", what it is, in words)
UNKNOWN_GENRES = frozenset({"", "(no genres listed)", "unknown"})


def diversity_space(split: Split, rank: int = 32, seed: int = 0) -> Space:
    """``(vectors (n_items, d), by, note)``: unit genre vectors where at least half the items have genres,
    else unit rows of the rank-``rank`` truncated SVD's ``U S`` (drawn with ``seed``); an item without genres /
    interactions gets a zero row."""
    genres = split.genres if split.genres is not None else np.array([""] * split.n_items)
    sets = [{g for g in str(s).split("|") if g not in UNKNOWN_GENRES} for s in genres]
    if sum(1 for s in sets if s) >= split.n_items / 2:
        names = sorted(set().union(*sets))
        col = {g: j for j, g in enumerate(names)}
        v = np.zeros((split.n_items, len(names)))
        for i, s in enumerate(sets):
            v[i, [col[g] for g in s]] = 1.0
        return _unit(v), "genre", f"1 − cosine of the items' genre sets ({len(names)} genres)"
    a = torch.sparse_coo_tensor(torch.as_tensor(np.stack([split.train_items, split.train_users])),
                                torch.ones(len(split.train_items), dtype=torch.float64),
                                (split.n_items, split.n_users), check_invariants=False).coalesce()
    q = min(rank, split.n_items, split.n_users)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        u, s, _ = torch.svd_lowrank(a, q=q, niter=4)
    return (_unit((u * s).numpy()), "embedding",
            f"1 − cosine of item embeddings: rank-{q} truncated SVD of the training interactions (the data has "
            "no genres)")


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 1e-12)

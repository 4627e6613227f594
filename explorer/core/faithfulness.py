"""How faithful is an attribution on this prompt: deletion curves and AOPC (numpy only).

The candidate tokens are positions 0..p (p = the explained position; in a causal model the
later tokens cannot change f). n = p + 1.

Ordering: a method's tokens sorted by score, highest (most in favour of the target) first,
ties by position (stable). The random baseline is a permutation of 0..n-1 from
``numpy.random.default_rng(seed)``.

Replacement: a "deleted" token's input embedding is replaced by the baseline embedding
(zero vector, or the eos / pad token's embedding — the same baseline as integrated
gradients); its position is kept, so positional information is untouched.

k grid: k = 0, 1, …, n when n <= GRID_POINTS; otherwise k_i = ⌊n·i/GRID_POINTS + ½⌋ for
i = 0 … GRID_POINTS (0 and n always included, duplicates dropped).

Curves, for every k in the grid:
- deletion(k)  = p(target) with the top-k tokens replaced (deletion(0) = the plain input);
- keep_only(k) = p(target) with every token but the top-k replaced.

AOPC (area over the perturbation curve, averaged over the grid without k = 0):
- comprehensiveness = mean_k [deletion(0) − deletion(k)]   (higher = the top tokens matter)
- sufficiency       = mean_k [deletion(0) − keep_only(k)]  (lower = the top tokens suffice)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID_POINTS = 10
RANDOM = "random"
DEFAULT_SEED = 0


def k_grid(n: int) -> np.ndarray:
    """The numbers of replaced tokens: int64[K], from 0 to n (see the module docstring)."""
    if n < 1:
        raise ValueError("need at least one token")
    if n <= GRID_POINTS:
        return np.arange(n + 1, dtype=np.int64)
    steps = np.arange(GRID_POINTS + 1, dtype=np.int64)
    return np.unique((n * steps * 2 + GRID_POINTS) // (2 * GRID_POINTS)).astype(np.int64)


def importance_order(scores: np.ndarray) -> np.ndarray:
    """Positions sorted by score, highest first, ties by position: int64[n]."""
    values = np.asarray(scores, dtype=np.float64)
    return np.argsort(-values, kind="stable").astype(np.int64)


def random_order(n: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """A seeded random ordering of 0..n-1: int64[n] (the same seed gives the same order)."""
    return np.random.default_rng(seed).permutation(n).astype(np.int64)


def deletion_masks(order: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """bool[K, n]: row i marks the first ks[i] tokens of ``order`` (True = replaced)."""
    n = len(order)
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n)
    return ranks[None, :] < np.asarray(ks, dtype=np.int64)[:, None]


def keep_only_masks(order: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """bool[K, n]: every token but the first ks[i] of ``order`` replaced (True = replaced)."""
    return ~deletion_masks(order, ks)


def aopc(reference: float, probs: np.ndarray) -> float:
    """mean over the grid without its first point (k = 0) of reference − probs[k]."""
    values = np.asarray(probs, dtype=np.float64)[1:]
    return float(np.mean(reference - values)) if len(values) else 0.0


@dataclass(frozen=True)
class FaithfulnessCurve:
    """One ordering's curves on one prompt.

    method:     the attribution method, or ``random``
    order:      int64[n]   positions, most important first
    ks:         int64[K]   numbers of replaced tokens (``k_grid(n)``)
    deletion:   float32[K] p(target) with the top-k tokens replaced
    keep_only:  float32[K] p(target) with all but the top-k tokens replaced
    """

    method: str
    order: np.ndarray
    ks: np.ndarray
    deletion: np.ndarray
    keep_only: np.ndarray

    def __post_init__(self) -> None:
        for name, dtype in (("order", np.int64), ("ks", np.int64), ("deletion", np.float32),
                            ("keep_only", np.float32)):
            array = np.array(getattr(self, name), dtype=dtype)
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        if not (self.ks.shape == self.deletion.shape == self.keep_only.shape):
            raise ValueError("ks, deletion and keep_only must have one value per grid point")

    @property
    def comprehensiveness(self) -> float:
        """AOPC of deleting the most important tokens (higher = more faithful)."""
        return aopc(float(self.deletion[0]), self.deletion)

    @property
    def sufficiency(self) -> float:
        """AOPC of keeping only the most important tokens (lower = more faithful)."""
        return aopc(float(self.deletion[0]), self.keep_only)

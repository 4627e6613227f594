"""Positional-encoding formulas, in numpy, for the panels and as references in tests."""

from __future__ import annotations

import math

import numpy as np


def sinusoidal_table(num_positions: int, dim: int, base: float = 10000.0) -> np.ndarray:
    """Vaswani et al. (2017): PE(pos, 2i) = sin(pos / base^(2i/d)), PE(pos, 2i+1) = cos(...).

    Returns float32[position, dim].
    """
    return sinusoidal_rows(np.arange(num_positions), dim, base)


def sinusoidal_rows(positions: np.ndarray, dim: int, base: float = 10000.0) -> np.ndarray:
    """``sinusoidal_table``'s rows at ``positions`` (int[N]) only. Returns float32[N, dim]."""
    angles = np.asarray(positions, dtype=np.float64)[:, None] / np.power(
        base, np.arange(0, dim, 2, dtype=np.float64)[None, :] / dim)
    table = np.zeros((len(angles), dim), dtype=np.float64)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : dim // 2])
    return table.astype(np.float32)


def rope_inverse_frequencies(rotary_dim: int, base: float) -> np.ndarray:
    """theta_i = base^(-2i/d) for i in 0..d/2-1. Returns float64[d/2]."""
    return 1.0 / np.power(base, np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim)


def rope_angles(num_positions: int, inverse_frequencies: np.ndarray) -> np.ndarray:
    """Rotation angle (radians) of every frequency pair at every position.

    Returns float32[position, pair] = position * theta_pair.
    """
    return rope_angles_at(np.arange(num_positions), inverse_frequencies)


def rope_angles_at(positions: np.ndarray, inverse_frequencies: np.ndarray) -> np.ndarray:
    """``rope_angles``' rows at ``positions`` (int[N]) only. Returns float32[N, pair]."""
    return (np.asarray(positions, dtype=np.float64)[:, None]
            * np.asarray(inverse_frequencies, dtype=np.float64)[None, :]).astype(np.float32)


def rope_cos_sin(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of rotary angles, each float32[position, pair]."""
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def alibi_slopes(num_heads: int) -> np.ndarray:
    """Press et al. (2022) head slopes: a geometric sequence starting at 2^(-8/n).

    For a head count that is not a power of two, the extra heads take every other
    slope of the next power of two (as in the paper's reference code). float32[head].
    """

    def power_of_two_slopes(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if num_heads <= 0:
        return np.zeros(0, dtype=np.float32)
    closest = 2 ** math.floor(math.log2(num_heads))
    slopes = power_of_two_slopes(closest)
    if closest != num_heads:
        slopes += power_of_two_slopes(2 * closest)[0::2][: num_heads - closest]
    return np.asarray(slopes, dtype=np.float32)


def alibi_bias(num_positions: int, slopes: np.ndarray) -> np.ndarray:
    """Bias each head adds for a key at distance p behind the query: -slope * p.

    Returns float32[position, head].
    """
    distance = np.arange(num_positions, dtype=np.float32)[:, None]
    return (-distance * np.asarray(slopes, dtype=np.float32)[None, :]).astype(np.float32)


def cosine_similarity_matrix(rows: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of every row of float[N, D] with every row of ``others``
    (float[M, D], default ``rows``). Returns float32[N, M]."""
    def unit(vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float64)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    left = unit(rows)
    right = left if others is None else unit(others)
    return (left @ right.T).astype(np.float32)

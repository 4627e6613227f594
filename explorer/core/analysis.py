"""Pure numpy analysis over a run's arrays."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64, returned as float32."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Largest k entries of each row of float[N, V], sorted descending.

    Returns (int64[N, k] ids, float[N, k] values).
    """
    probs = np.asarray(probs)
    k = min(k, probs.shape[-1])
    part = np.argpartition(-probs, k - 1, axis=-1)[..., :k]
    values = np.take_along_axis(probs, part, axis=-1)
    order = np.argsort(-values, axis=-1, kind="stable")
    return np.take_along_axis(part, order, axis=-1).astype(np.int64), np.take_along_axis(
        values, order, axis=-1
    )


def drop_first_and_renormalise(attention: np.ndarray) -> np.ndarray:
    """Hide key 0 (the attention sink / BOS) and rescale each row to sum to 1.

    float[..., Q, K] -> float32[..., Q, K] with column 0 zeroed. Rows whose only
    weight was on key 0 become all zero.
    """
    out = np.array(attention, dtype=np.float32, copy=True)
    out[..., 0] = 0.0
    sums = out.sum(axis=-1, keepdims=True)
    np.divide(out, sums, out=out, where=sums > 0)
    return out


def entropy_bits(rows: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits of each row of a distribution, float[..., N] -> float32[...]."""
    p = np.asarray(rows, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return terms.sum(axis=-1).astype(np.float32)


def segment_sums(row: np.ndarray, segments: list[tuple[int, int]]) -> np.ndarray:
    """Sum of the weights of ``row`` (float[..., K]) inside each [start, end) span.

    Returns float32[..., len(segments)].
    """
    row = np.asarray(row, dtype=np.float32)
    return np.stack([row[..., s:e].sum(axis=-1) for s, e in segments], axis=-1)


def rank_of(probs_row: np.ndarray, token_id: int) -> int:
    """1-based rank of ``token_id`` in a full distribution float[V] (ties count as higher)."""
    probs_row = np.asarray(probs_row)
    return int((probs_row > probs_row[token_id]).sum()) + 1

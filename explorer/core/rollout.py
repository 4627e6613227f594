"""Attention-based token scores for one query position: attention rollout and last-layer
attention, read only through ``explorer.core.attention`` (full or lazy runs alike).

Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"):
per layer l, Â_l = 0.5·mean_heads(A_l) + 0.5·I with rows renormalised to sum to 1, and
R = Â_L ⋯ Â_1; the score of token j for position p is R[p, j].

Only one row of R is needed, so it is computed as a row vector propagated backwards
through the layers: r = e_p, then r ← r·Â_l for l = L … 1. The product r·Â_l only reads
the rows of Â_l where r is non-zero; in a causal model r never leaves positions 0..p, so
each layer costs p + 1 rebuilt rows (cheap on lazy runs), never a full T×T map.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from explorer.core.attention import attention_shape, mean_map, token_count

RESIDUAL_WEIGHT = 0.5
"""Weight of the identity (the residual connection) in Â = 0.5·mean_heads(A) + 0.5·I."""


def _check_position(result: Any, position: int) -> int:
    n = token_count(result)
    if not 0 <= position < n:
        raise IndexError(f"position {position} outside 0..{n - 1}")
    return n


def rollout_row(result: Any, position: int,
                on_layer: Callable[[float], None] | None = None) -> np.ndarray:
    """Row ``position`` of the attention rollout R = Â_L ⋯ Â_1: float32[T], sums to 1.

    ``result`` is a RunResult (full or lazy attention) or a mapping of its arrays.
    ``on_layer(fraction done)`` is called after each layer (progress; it may raise to stop)."""
    n = _check_position(result, position)
    layers, _heads = attention_shape(result)
    row = np.zeros(n, dtype=np.float64)
    row[position] = 1.0
    for layer in range(layers - 1, -1, -1):
        support = np.flatnonzero(row)
        rows = mean_map(result, layer, rows=support).astype(np.float64)  # [len(support), T]
        rows *= 1.0 - RESIDUAL_WEIGHT
        rows[np.arange(len(support)), support] += RESIDUAL_WEIGHT
        rows /= rows.sum(axis=1, keepdims=True)
        row = row[support] @ rows
        if on_layer is not None:
            on_layer((layers - layer) / layers)
    return row.astype(np.float32)


def last_layer_attention_row(result: Any, position: int) -> np.ndarray:
    """The last layer's attention from ``position``, averaged over heads: float32[T]."""
    _check_position(result, position)
    layers, _heads = attention_shape(result)
    return mean_map(result, layers - 1, rows=[position])[0].astype(np.float32)

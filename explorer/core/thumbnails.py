"""Downsampling attention maps into one mosaic image for the layer x head grid."""

from __future__ import annotations

import numpy as np


def pooled_size(t: int, size: int) -> int:
    """Side of a T x T map after pool_max with at most ``size`` pixels."""
    if t <= size:
        return t
    block = -(-t // size)
    return -(-t // block)


def pool_max(square: np.ndarray, size: int) -> np.ndarray:
    """Max-pool float[T, T] in square blocks to float32[c, c], c = pooled_size(T, size).

    Max (not mean) keeps thin bright lines, such as a diagonal, visible in a thumbnail.
    """
    square = np.asarray(square, dtype=np.float32)
    t = square.shape[0]
    if t <= size:
        return square
    block = -(-t // size)
    c = -(-t // block)
    padded = np.zeros((c * block, c * block), dtype=np.float32)
    padded[:t, :t] = square
    rows = padded.reshape(c, block, c * block).max(axis=1)  # two 1-axis reductions: ~10x faster
    return rows.reshape(c, c, block).max(axis=2)


def mosaic(attentions: np.ndarray, cell: int, gap: int = 1, group_gap: int = 0,
           group_size: int = 1, hide_first: bool = False) -> tuple[np.ndarray, int]:
    """All maps of float16[L, H, T, T] as one float32 image [L*(c+gap), H*(c+gap) + extra].

    Each map is max-pooled to ``c = min(T, cell)`` pixels and scaled by its own maximum
    so every head is readable. Heads that share a key/value head (``group_size``) are
    separated by ``group_gap`` extra pixels. ``hide_first`` drops key 0 and renormalises
    each map's rows first. Returns (image, c). Gaps are NaN (drawn as background).
    Works one map at a time, so no single numpy call runs long (the GUI thread shares
    the interpreter lock with the worker that calls this).
    """
    from explorer.core.analysis import drop_first_and_renormalise

    layers, heads, t, _ = attentions.shape
    c = pooled_size(t, cell)
    groups = max(1, heads // max(1, group_size))
    width = heads * (c + gap) + (groups - 1) * group_gap
    image = np.full((layers * (c + gap), width), np.nan, dtype=np.float32)
    for layer in range(layers):
        for head in range(heads):
            square = attentions[layer, head]
            if hide_first and t > 1:
                square = drop_first_and_renormalise(square)
            tile = pool_max(square, cell)
            peak = float(tile.max())
            if peak > 0:
                tile = tile / peak
            y, x = tile_origin(layer, head, c, gap, group_gap, group_size)
            image[y : y + c, x : x + c] = tile
    return image, c


def tile_origin(layer: int, head: int, c: int, gap: int, group_gap: int, group_size: int,
                ) -> tuple[int, int]:
    """Top-left pixel (row, column) of a head's tile in the mosaic."""
    group = head // max(1, group_size)
    return layer * (c + gap), head * (c + gap) + group * group_gap


def tile_at(row: float, col: float, layers: int, heads: int, c: int, gap: int, group_gap: int,
            group_size: int) -> tuple[int, int] | None:
    """(layer, head) of the tile under a mosaic pixel, or None over a gap / outside."""
    if row < 0 or col < 0:
        return None
    layer = int(row // (c + gap))
    if layer >= layers:
        return None
    for head in range(heads):
        _, x = tile_origin(layer, head, c, gap, group_gap, group_size)
        if x <= col < x + c + gap:
            return layer, head
    return None

"""Downsampling attention maps into one mosaic image for the layer x head grid."""

from __future__ import annotations

import numpy as np

from explorer.core.attention import attention_shape
from explorer.core.map_view import MapKey, detail_map, pool_blocks


def pooled_size(t: int, size: int) -> int:
    """Side of a T x T map after pool_max with at most ``size`` pixels."""
    if t <= size:
        return t
    block = -(-t // size)
    return -(-t // block)


def pool_max(matrix: np.ndarray, size: int) -> np.ndarray:
    """Max-pool float[R, C] in square blocks of ceil(max(R, C) / size) cells: float32[r, c]
    with r = ceil(R / block), c = ceil(C / block) (a T x T map gives pooled_size(T, size)).

    Max (not mean) keeps thin bright lines, such as a diagonal, visible in a thumbnail.
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    block = max(1, -(-max(matrix.shape) // size))
    return matrix if block == 1 else pool_blocks(matrix, block, "max")


def head_tile(result: object, layer: int, head: int, cell: int, hide_first: bool = False
              ) -> np.ndarray:
    """One head's map max-pooled to c = pooled_size(T, cell) pixels (the large map's
    ``detail_map`` at thumbnail size) and scaled by its own maximum: float32[c, c]
    (cross-attention: a rectangle padded with NaN to a square). Reads attention through
    ``head_map``, a band of rows at a time."""
    tile = detail_map(result, MapKey(layer, head, hide_first, "max"), cell).image
    peak = float(tile.max())
    tile = tile / peak if peak > 0 else tile
    side = max(tile.shape)
    if tile.shape != (side, side):
        square = np.full((side, side), np.nan, np.float32)
        square[: tile.shape[0], : tile.shape[1]] = tile
        tile = square
    return tile


def layer_tiles(result: object, layer: int, cell: int, hide_first: bool = False) -> np.ndarray:
    """Every head of one layer as ``head_tile``: float32[head, c, c]."""
    _, heads = attention_shape(result)
    return np.stack([head_tile(result, layer, head, cell, hide_first) for head in range(heads)])


def empty_mosaic(layers: int, heads: int, c: int, gap: int = 1, group_gap: int = 0,
                 group_size: int = 1) -> np.ndarray:
    """An all-NaN mosaic float32[L*(c+gap), H*(c+gap) + extra] waiting for its tiles."""
    groups = max(1, heads // max(1, group_size))
    width = heads * (c + gap) + (groups - 1) * group_gap
    return np.full((layers * (c + gap), width), np.nan, dtype=np.float32)


def place_tiles(image: np.ndarray, layer: int, tiles: np.ndarray, gap: int = 1,
                group_gap: int = 0, group_size: int = 1) -> None:
    """Write one layer's tiles float32[head, c, c] into the mosaic in place."""
    c = tiles.shape[-1]
    for head, tile in enumerate(tiles):
        y, x = tile_origin(layer, head, c, gap, group_gap, group_size)
        image[y : y + c, x : x + c] = tile


def mosaic(result: object, cell: int, gap: int = 1, group_gap: int = 0,
           group_size: int = 1, hide_first: bool = False) -> tuple[np.ndarray, int]:
    """All maps of a run as one float32 image [L*(c+gap), H*(c+gap) + extra].

    Each map is max-pooled to ``c = pooled_size(T, cell)`` pixels and scaled by its own
    maximum so every head is readable. Heads that share a key/value head (``group_size``)
    are separated by ``group_gap`` extra pixels. ``hide_first`` drops key 0 and
    renormalises each map's rows first. Returns (image, c). Gaps are NaN (drawn as
    background). Works one map at a time (``layer_tiles``), so no single numpy call runs
    long (the GUI thread shares the interpreter lock with the worker that calls this).
    """
    from explorer.core.attention import attention_shape, key_count, token_count

    layers, heads = attention_shape(result)
    c = pooled_size(max(token_count(result), key_count(result)), cell)
    image = empty_mosaic(layers, heads, c, gap, group_gap, group_size)
    for layer in range(layers):
        place_tiles(image, layer, layer_tiles(result, layer, cell, hide_first), gap, group_gap,
                    group_size)
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

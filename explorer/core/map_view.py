"""What the large attention map shows: one head (or a layer's head mean) of any length.

Up to DIRECT_LIMIT tokens the map is drawn cell for cell. Longer maps are drawn as a
block-pooled overview (max or mean over square blocks of tokens, labelled as such), built
a band of rows at a time through ``head_map`` so the full T x T map never exists; a zoomed
window is drawn exactly with ``exact_window``. The selected token's row (what it attends
to) and column (who attends to it) come from ``selected_curves``: for lazy results the
overview pass keeps each row's log softmax denominator, so a column costs O(T·D), not a
new pass over the map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.core.attention import (
    attention_shape,
    head_column,
    head_rows_and_norms,
    key_count,
    rows_span,
    token_count,
)
from explorer.core.parallel import parallel_map

DIRECT_LIMIT = 1024
"""Maps with at most this many tokens a side are drawn cell for cell."""
POOLING = ("max", "mean")
_BAND = 512


@dataclass(frozen=True)
class MapKey:
    """Which map: ``head`` None means the mean over the layer's heads."""

    layer: int
    head: int | None
    hide_first: bool = False
    how: str = "max"


@dataclass(frozen=True)
class DetailMap:
    """The large map as drawn.

    image:     float32[r, c] the map (block == 1) or its block-pooled overview
    block:     tokens per pixel side (1 = exact)
    peak:      the largest value in ``image``
    log_norms: float32[head, T] per drawn head, the rows' log softmax denominators (lazy
               results; None for stored maps)
    rests:     float32[T] with hide_first: what each row held outside key 0 (its rescaling)
    """

    key: MapKey
    num_tokens: int
    image: np.ndarray
    block: int
    peak: float
    log_norms: np.ndarray | None = None
    rests: np.ndarray | None = None

    @property
    def pooled(self) -> bool:
        return self.block > 1

    def describe(self) -> str:
        """'exact' or e.g. 'max-pooled 8×8-token blocks'."""
        if not self.pooled:
            return "exact"
        return f"{self.key.how}-pooled {self.block}×{self.block}-token blocks"


def _heads(result: object, key: MapKey) -> list[int]:
    _, heads = attention_shape(result)
    return list(range(heads)) if key.head is None else [key.head]


def _band_rows(result: object, key: MapKey, rows: np.ndarray, norms: list[np.ndarray] | None,
               rests: np.ndarray | None = None, cols: tuple[int, int] | None = None) -> np.ndarray:
    """float32[R, S] (or [R, hi - lo] for ``cols``, which must hold every key the rows
    see): the drawn rows (head or head mean; with hide_first, key 0 hidden and each row
    rescaled by what its other keys hold, whose sums go to ``rests``)."""
    total = None
    heads = _heads(result, key)
    first_col = 0 if cols is None else cols[0]
    for index, head in enumerate(heads):
        band, band_norms = head_rows_and_norms(result, key.layer, head, rows, cols)
        if norms is not None and band_norms is not None:
            norms[index][rows] = band_norms
        total = band if total is None else total + band
    assert total is not None
    if len(heads) > 1:
        total /= np.float32(len(heads))
    if key.hide_first and (first_col > 0 or total.shape[1] > 1):
        if first_col == 0:  # (a window that starts later holds no key 0 to hide)
            total[:, 0] = 0.0
        rest = total.sum(axis=1)
        if rests is not None:
            rests[rows] = rest
        np.divide(total, rest[:, None], out=total, where=rest[:, None] > 0)
    return total


def detail_map(result: object, key: MapKey, size: int = DIRECT_LIMIT) -> DetailMap:
    """The large map for ``key``: exact up to ``size`` tokens a side, block-pooled beyond."""
    t, s = token_count(result), key_count(result)
    heads = _heads(result, key)
    lazy = getattr(result, "attention_mode", "full") == "lazy"
    norms = [np.empty(t, np.float32) for _ in heads] if lazy else None
    rests = np.ones(t, np.float32) if key.hide_first else None
    block = max(1, -(-max(t, s) // size))
    image = np.zeros((-(-t // block), -(-s // block)), dtype=np.float32)
    band_rows = block * max(1, _BAND // block)

    def draw_band(start: int) -> None:
        stop = min(t, start + band_rows)
        rows = np.arange(start, stop, dtype=np.int64)
        lo, hi = rows_span(result, key.layer, start, stop - 1)  # keys these rows can see,
        lo, hi = lo - lo % block, min(s, -(-hi // block) * block)  # on whole pooling blocks
        band = _band_rows(result, key, rows, norms, rests, (lo, hi))
        pooled = band if block == 1 else pool_blocks(band, block, key.how)
        image[start // block: start // block + pooled.shape[0],
              lo // block: lo // block + pooled.shape[1]] = pooled

    # bands write disjoint rows of image, norms and rests: on every core at once (numpy
    # lets go of the GIL in its loops)
    parallel_map(draw_band, range(0, t, band_rows))
    return DetailMap(key, t, image, block, float(image.max()) if image.size else 0.0,
                     None if norms is None else np.stack(norms), rests)


def pool_blocks(band: np.ndarray, block: int, how: str) -> np.ndarray:
    """float32[R, C] pooled over square blocks of ``block`` cells: float32[ceil(R / block),
    ceil(C / block)] (max, or mean over the cells that exist).
    Two one-axis reductions: a reduction over axes (1, 3) at once is ~10x slower."""
    rows, cols = band.shape
    r, c = -(-rows // block), -(-cols // block)
    if (rows, cols) == (r * block, c * block):
        padded = np.ascontiguousarray(band, dtype=np.float32)
    else:
        padded = np.zeros((r * block, c * block), dtype=np.float32)
        padded[:rows, :cols] = band
    if how == "max":
        return padded.reshape(r, block, c * block).max(axis=1).reshape(r, c, block).max(axis=2)
    sums = padded.reshape(r, block, c * block).sum(axis=1).reshape(r, c, block).sum(axis=2)
    row_cells = np.minimum(block, rows - np.arange(r) * block).astype(np.float32)
    col_cells = np.minimum(block, cols - np.arange(c) * block).astype(np.float32)
    return sums / np.outer(row_cells, col_cells)


def selected_curves(result: object, view: DetailMap, token: int) -> tuple[np.ndarray, np.ndarray]:
    """(row float32[T]: what ``token`` attends to, column float32[T]: how much every query
    attends to ``token``) for the drawn head or head mean, hide_first applied."""
    key = view.key
    heads = _heads(result, key)
    keys = key_count(result)
    row = _band_rows(result, key, np.array([token], dtype=np.int64), None)[0]
    col = np.zeros(view.num_tokens, np.float32)
    if token >= keys or (key.hide_first and token == 0):
        return row, col
    for index, head in enumerate(heads):
        norms = None if view.log_norms is None else view.log_norms[index]
        col += head_column(result, key.layer, head, token, norms)
    if len(heads) > 1:
        col /= np.float32(len(heads))
    if key.hide_first and view.rests is not None:
        np.divide(col, view.rests, out=col, where=view.rests > 0)
        col[view.rests <= 0] = 0.0
    return row, col


def exact_window(result: object, key: MapKey, rows: tuple[int, int], cols: tuple[int, int],
                 ) -> np.ndarray:
    """float32[rows, cols]: the exact map inside a zoomed window [r0, r1) x [c0, c1)."""
    index = np.arange(rows[0], rows[1], dtype=np.int64)
    return _band_rows(result, key, index, None)[:, cols[0]:cols[1]]


SYNC_BUDGET = 25_000_000
"""Cost units (map cells, x30 when rebuilt from queries and keys) the window may compute on
its own thread; more goes to the worker (keeps every GUI block well under 50 ms)."""


def cheap_enough(result: object, key: MapKey, rows: int | None = None) -> bool:
    """True when drawing ``rows`` query rows (default: all) of ``key``'s map is quick enough
    to do on the GUI thread."""
    t = token_count(result)
    factor = 30 if getattr(result, "attention_mode", "full") == "lazy" else 1
    cells = len(_heads(result, key)) * (t if rows is None else rows) * t
    return cells * factor <= SYNC_BUDGET

"""What the worker hands the GUI for one run: the engine's result plus the layer x head
thumbnail mosaics, built off the GUI thread.

Short runs arrive with every thumbnail drawn. Long runs (and lazy ones, whose maps are
rebuilt from queries and keys) arrive with empty mosaics (NaN tiles, drawn as background)
that the worker then fills layer by layer (``EngineWorker.thumbnails``), so the tokens,
bars and the selected head appear first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from explorer.core.attention import attention_shape, has_attention
from explorer.core.thumbnails import empty_mosaic, layer_tiles, place_tiles, pooled_size
from explorer.core.types import RunResult

THUMBNAIL_CELL = 40
THUMBNAIL_GAP = 2
GROUP_GAP = 4
EAGER_THUMBNAIL_CELLS = 150_000_000
"""Stored map cells (layers x heads x T x T, both hide-first variants) read at once;
runs above this, and every lazy run, stream their thumbnails layer by layer."""


@dataclass(frozen=True)
class RunView:
    """result: the engine's RunResult; mosaics: float32 grid images keyed by hide_first, NaN
    where a layer is not drawn yet; filled: the layers drawn in each mosaic."""

    request_id: int
    result: RunResult
    mosaics: dict[bool, np.ndarray]
    cell: int
    group_size: int
    filled: dict[bool, set[int]] = field(default_factory=lambda: {False: set(), True: set()})

    @property
    def layers(self) -> int:
        return attention_shape(self.result)[0] if has_attention(self.result) else 0

    def complete(self, hide_first: bool) -> bool:
        return len(self.filled[hide_first]) >= self.layers

    def missing_layers(self, hide_first: bool) -> list[int]:
        return [layer for layer in range(self.layers) if layer not in self.filled[hide_first]]

    def complete_next_tokens(self, result: RunResult) -> None:
        """Take the complete result of a run shown with ``next_tokens_pending``: the same
        tokens and attention, every next-token row computed (the one change a view sees
        after it is built; the mosaics and everything holding this view stay)."""
        if result.prompt != self.result.prompt or result.num_tokens != self.result.num_tokens:
            raise ValueError("the complete result is of another run")
        object.__setattr__(self, "result", result)

    def place(self, hide_first: bool, layer: int, tiles: np.ndarray) -> None:
        """Write one layer's tiles float32[head, c, c] (from the worker) into a mosaic."""
        place_tiles(self.mosaics[hide_first], layer, tiles, THUMBNAIL_GAP, GROUP_GAP, self.group_size)
        self.filled[hide_first].add(layer)

    @classmethod
    def build(cls, request_id: int, result: RunResult, eager: bool | None = None) -> RunView:
        """Allocate the mosaics; draw them all now when ``eager`` (default: a full-attention
        run whose stored maps are small enough, see EAGER_THUMBNAIL_CELLS)."""
        group = result.model_info.group_size
        if not has_attention(result):
            empty = np.full((1, 1), np.nan, np.float32)
            return cls(request_id, result, {False: empty, True: empty.copy()}, 1, group)
        layers, heads = attention_shape(result)
        t = result.num_tokens
        cell = pooled_size(max(t, len(result.key_labels)), THUMBNAIL_CELL)
        mosaics = {hide: empty_mosaic(layers, heads, cell, THUMBNAIL_GAP, GROUP_GAP, group)
                   for hide in (False, True)}
        view = cls(request_id, result, mosaics, cell, group)
        if eager is None:
            eager = result.attention_mode == "full" and \
                2 * layers * heads * t * t <= EAGER_THUMBNAIL_CELLS
        if eager:
            for hide_first in (False, True):
                for layer in range(layers):
                    view.place(hide_first, layer, layer_tiles(result, layer, THUMBNAIL_CELL, hide_first))
        return view

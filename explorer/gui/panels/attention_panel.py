"""Attention: every layer x head as one mosaic of thumbnails (``AttentionGrid``), and the
selected head or head mean drawn large (``AttentionMap``), at any prompt length."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from explorer.core.map_view import DetailMap, MapKey
from explorer.core.selection import Selection
from explorer.core.types import ModelInfo
from explorer.gui.panels.attention_grid import AttentionGrid
from explorer.gui.panels.attention_map import AttentionMap
from explorer.gui.run_view import RunView

PARTS = ("map", "grid")


class AttentionPanel(QWidget):
    head_selected = Signal(int, int)  # layer, head
    head_toggled = Signal(int, int)  # layer, head: Ctrl+click on a thumbnail
    token_selected = Signal(int)  # query position
    options_changed = Signal(dict)  # {"head_mean": bool} or {"hide_first": bool}
    cancel_thumbnails = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view: RunView | None = None
        self.selection = Selection()
        self.grid = AttentionGrid()
        self.map = AttentionMap()
        self.grid.head_selected.connect(self.head_selected)
        self.grid.head_toggled.connect(self.head_toggled)
        self.grid.cancel_requested.connect(self.cancel_thumbnails)
        self.map.token_selected.connect(self.token_selected)
        self.map.options_changed.connect(self.options_changed)
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.grid)
        splitter.addWidget(self.map)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

    # -- the parts tests and other modules reach -----------------------------------------
    @property
    def grid_widget(self) -> Any:
        return self.grid.grid_widget

    @property
    def grid_image(self) -> Any:
        return self.grid.grid_image

    @property
    def grid_highlight(self) -> Any:
        return self.grid.grid_highlight

    @property
    def map_widget(self) -> Any:
        return self.map.map_widget

    @property
    def map_image(self) -> Any:
        return self.map.map_image

    @property
    def row_highlight(self) -> Any:
        return self.map.row_highlight

    @property
    def col_highlight(self) -> Any:
        return self.map.col_highlight

    @property
    def title(self) -> Any:
        return self.map.title

    @property
    def head_mean_box(self) -> Any:
        return self.map.head_mean_box

    @property
    def hide_first_box(self) -> Any:
        return self.map.hide_first_box

    @property
    def colorbar(self) -> Any:
        return self.map.colorbar

    @property
    def shown_map(self) -> np.ndarray | None:
        """The large map as drawn, float32 (exact, or the pooled overview of a long map)."""
        return self.map.shown_map

    # -- wiring ------------------------------------------------------------------------------
    def set_sources(self, detail: Callable[[MapKey], DetailMap | None],
                    window: Callable[..., Any]) -> None:
        self.map.set_sources(detail, window)

    def detail_arrived(self, detail: DetailMap) -> bool:
        """Draw a map from the worker if it is still the one asked for (True)."""
        return self.map.detail_arrived(detail)

    def window_arrived(self, payload: tuple) -> None:
        self.map.window_arrived(payload)

    def thumbnails_arrived(self, view: RunView, hide_first: bool, layer: int) -> bool:
        """True when the grid drew the layer (False: it shows another run or variant)."""
        return self.grid.layer_drawn(view, hide_first, layer)

    def thumbnail_progress(self, done: int, total: int, running: bool) -> None:
        self.grid.show_progress(done, total, running)

    # -- drawing -------------------------------------------------------------------------
    def show_model(self, info: ModelInfo) -> None:
        self.grid.show_model(info)
        self.map.show_model(info)

    def show_run(self, view: RunView, selection: Selection, parts: tuple[str, ...] = PARTS) -> None:
        """Draw ``view``; ``parts`` ("map", "grid") lets the window hand it over one part
        per event-loop turn (the map first: the worker starts on its detail)."""
        self.view = view
        self.selection = selection
        if "grid" in parts and view.result.has_attention:
            self.grid.show_run(view, selection)
        if "map" in parts:
            self.map.show_run(view.result, selection)

    def show_selection(self, selection: Selection, parts: tuple[str, ...] = PARTS) -> None:
        self.selection = selection
        if "grid" in parts and self.view is not None and self.view.result.has_attention:
            self.grid.show_selection(selection)
        if "map" in parts:
            self.map.show_selection(selection)

    def selected_map(self) -> np.ndarray:
        """The exact map of the selected head or head mean (hide-first applied):
        float32[query, key]."""
        return self.map.selected_map()

    # -- API for other features (ablation, head scores, few-shot demonstrations) ---------------
    def set_marked_heads(self, heads: set[tuple[int, int]]) -> None:
        """Mark heads in the grid (e.g. the ablated ones)."""
        self.grid.set_marked_heads(heads)

    def set_grid_scores(self, scores: np.ndarray | None, label: str = "") -> None:
        """Colour the grid by one value per head, float32[layer, head]; None: thumbnails."""
        self.grid.set_grid_scores(scores, label)

    def highlight_keys(self, spans: list[tuple[int, int]]) -> None:
        """Shade key-column spans [start, end) in the large map; [] clears."""
        self.map.highlight_keys(spans)

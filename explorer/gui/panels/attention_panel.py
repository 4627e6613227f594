"""Attention: every layer x head as one mosaic of thumbnails, and the selected head large."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from explorer.core.analysis import drop_first_and_renormalise
from explorer.core.attention import head_map, mean_map
from explorer.core.selection import Selection
from explorer.core.thumbnails import tile_at, tile_origin
from explorer.core.tokens import display_piece
from explorer.gui.plotting import ClickableImage, escape, highlight_rect, short_label, strided_ticks
from explorer.gui.run_view import GROUP_GAP, THUMBNAIL_GAP, RunView

COLORMAP = "viridis"


class AttentionPanel(QWidget):
    head_selected = Signal(int, int)  # layer, head
    token_selected = Signal(int)  # query position
    options_changed = Signal(dict)  # {"head_mean": bool} or {"hide_first": bool}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        cmap = pg.colormap.get(COLORMAP)
        self.view: RunView | None = None
        self.selection = Selection()

        # model view: one mosaic image for the whole grid
        self.grid_widget = pg.GraphicsLayoutWidget()
        self.grid_plot = self.grid_widget.addPlot()
        self.grid_plot.invertY(True)
        self.grid_plot.setAspectLocked(True)
        self.grid_plot.setMenuEnabled(False)
        self.grid_plot.showAxis("top")
        self.grid_plot.hideAxis("bottom")
        self.grid_image = ClickableImage()
        self.grid_image.setColorMap(cmap)
        self.grid_plot.addItem(self.grid_image)
        self.grid_highlight = highlight_rect("#ff3b30", alpha=0, width=2.5)
        self.grid_plot.addItem(self.grid_highlight)
        self.grid_image.pixel_clicked.connect(self._on_grid_clicked)

        # detail view: the selected head (or head mean) with token labels
        self.map_widget = pg.GraphicsLayoutWidget()
        self.map_plot = self.map_widget.addPlot()
        self.map_plot.invertY(True)
        self.map_plot.setMenuEnabled(False)
        self.map_plot.setLabel("left", "query (attends from)")
        self.map_plot.setLabel("bottom", "key (attends to)")
        self.map_image = ClickableImage()
        self.map_image.setColorMap(cmap)
        self.map_plot.addItem(self.map_image)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=cmap, interactive=False, width=12)
        self.colorbar.setImageItem(self.map_image, insert_in=self.map_plot)
        self.row_highlight = highlight_rect("#ff3b30", alpha=0, width=2.0)
        self.col_highlight = highlight_rect("#ff9500", alpha=0, width=1.5)
        self.map_plot.addItem(self.row_highlight)
        self.map_plot.addItem(self.col_highlight)
        self.map_image.pixel_clicked.connect(self._on_map_clicked)

        self.title = QLabel("Load a model and type a prompt.")
        self.title.setObjectName("attention-title")
        self.title.setTextFormat(Qt.RichText)
        self.head_mean_box = QCheckBox("Mean over heads")
        self.head_mean_box.setToolTip("Show the mean of all heads of the selected layer")
        self.hide_first_box = QCheckBox("Hide first token")
        self.hide_first_box.setToolTip(
            "Hide key 0 (often an 'attention sink') and renormalise each row, so the rest is visible")
        self.head_mean_box.toggled.connect(lambda on: self.options_changed.emit({"head_mean": on}))
        self.hide_first_box.toggled.connect(lambda on: self.options_changed.emit({"hide_first": on}))

        options = QHBoxLayout()
        options.addWidget(self.head_mean_box)
        options.addWidget(self.hide_first_box)
        options.addStretch(1)
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel("<b>All heads</b> (rows = layers, columns = heads; click one)"))
        left_layout.addWidget(self.grid_widget, 1)
        left_layout.addWidget(self.legend)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.title)
        right_layout.addWidget(self.map_widget, 1)
        right_layout.addLayout(options)
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        self.shown_map: np.ndarray | None = None

    # -- drawing -------------------------------------------------------------------------
    def show_run(self, view: RunView, selection: Selection) -> None:
        self.view = view
        self.selection = selection
        info = view.result.model_info
        self.grid_plot.getAxis("left").setTicks(
            [[((layer + 0.5) * (view.cell + THUMBNAIL_GAP), str(layer)) for layer in range(info.layers)]])
        self.grid_plot.getAxis("top").setTicks([[
            (tile_origin(0, h, view.cell, THUMBNAIL_GAP, GROUP_GAP, view.group_size)[1] + view.cell / 2, str(h))
            for h in range(info.heads)]])
        self.grid_plot.setLabel("left", "layer")
        self.grid_plot.setLabel("top", "head")
        labels = [short_label(display_piece(p, info.piece_style)) for p in view.result.tokens]
        self.map_plot.getAxis("left").setTicks([strided_ticks(labels)])
        self.map_plot.getAxis("bottom").setTicks([strided_ticks(labels, max_labels=18)])
        if info.group_size > 1:
            self.legend.setText(
                f"Grouped-query attention: every {info.group_size} query heads share one key/value "
                f"head ({info.kv_heads} groups, separated by wider gaps). Each thumbnail is scaled to "
                "its own maximum.")
        else:
            self.legend.setText("Each thumbnail is scaled to its own maximum.")
        self._draw_grid()
        self._draw_map()
        n = view.result.num_tokens
        self.map_plot.setRange(xRange=(0, n), yRange=(0, n), padding=0.02)
        self.grid_plot.autoRange(padding=0.01)

    def show_selection(self, selection: Selection) -> None:
        old = self.selection
        self.selection = selection
        for box, value in ((self.head_mean_box, selection.head_mean), (self.hide_first_box, selection.hide_first)):
            if box.isChecked() != value:
                box.blockSignals(True)
                box.setChecked(value)
                box.blockSignals(False)
        if self.view is None:
            return
        if old.hide_first != selection.hide_first:
            self._draw_grid()
        if (old.layer, old.head, old.head_mean, old.hide_first) != (
                selection.layer, selection.head, selection.head_mean, selection.hide_first) or self.shown_map is None:
            self._draw_map()
        else:
            self._place_highlights()

    def _draw_grid(self) -> None:
        assert self.view is not None
        self.grid_image.setImage(self.view.mosaics[self.selection.hide_first], levels=(0.0, 1.0))
        self._place_grid_highlight()

    def selected_map(self) -> np.ndarray:
        """The map drawn large: float32[query, key]."""
        assert self.view is not None
        result = self.view.result
        s = self.selection
        matrix = mean_map(result, s.layer) if s.head_mean else head_map(result, s.layer, s.head)
        if s.hide_first and matrix.shape[0] > 1:
            matrix = drop_first_and_renormalise(matrix)
        return matrix

    def _draw_map(self) -> None:
        assert self.view is not None
        matrix = self.selected_map()
        self.shown_map = matrix
        peak = float(matrix.max()) or 1.0
        self.map_image.setImage(matrix, levels=(0.0, peak))
        self.colorbar.setLevels((0.0, peak))
        self._place_highlights()

    def _place_grid_highlight(self) -> None:
        assert self.view is not None
        s, v = self.selection, self.view
        if s.head_mean:
            heads = v.result.model_info.heads
            y, x0 = tile_origin(s.layer, 0, v.cell, THUMBNAIL_GAP, GROUP_GAP, v.group_size)
            _, x1 = tile_origin(s.layer, heads - 1, v.cell, THUMBNAIL_GAP, GROUP_GAP, v.group_size)
            self.grid_highlight.setRect(x0 - 1, y - 1, x1 - x0 + v.cell + 2, v.cell + 2)
        else:
            y, x = tile_origin(s.layer, s.head, v.cell, THUMBNAIL_GAP, GROUP_GAP, v.group_size)
            self.grid_highlight.setRect(x - 1, y - 1, v.cell + 2, v.cell + 2)

    def _place_highlights(self) -> None:
        assert self.view is not None
        result, s = self.view.result, self.selection
        n = result.num_tokens
        self.row_highlight.setRect(0, s.token, n, 1)
        self.col_highlight.setRect(s.token, 0, 1, n)
        self._place_grid_highlight()
        info = result.model_info
        piece = display_piece(result.tokens[s.token], info.piece_style)
        if s.head_mean:
            which = f"layer {s.layer}, mean of {info.heads} heads"
        else:
            group = s.head // info.group_size
            which = f"layer {s.layer}, head {s.head}"
            if info.group_size > 1:
                first = group * info.group_size
                which += f" (key/value group {group}: heads {first}–{first + info.group_size - 1})"
        row = self.shown_map[s.token] if self.shown_map is not None else np.zeros(0)
        top = int(np.argmax(row)) if row.size else 0
        top_piece = display_piece(result.tokens[top], info.piece_style) if row.size else ""
        self.title.setText(
            f"<b>{which}</b> — token #{s.token} <code>{escape(piece)}</code>: "
            f"<span style='color:#d0021b'>row</span> = what it attends to (most: #{top} "
            f"<code>{escape(top_piece)}</code> {row[top] if row.size else 0:.2f}), "
            f"<span style='color:#ff9500'>column</span> = who attends to it")

    # -- clicks → intents ---------------------------------------------------------------------
    def _on_grid_clicked(self, x: float, y: float) -> None:
        if self.view is None:
            return
        info = self.view.result.model_info
        hit = tile_at(y, x, info.layers, info.heads, self.view.cell, THUMBNAIL_GAP, GROUP_GAP,
                      self.view.group_size)
        if hit is not None:
            self.head_selected.emit(*hit)

    def _on_map_clicked(self, x: float, y: float) -> None:
        if self.view is None:
            return
        row = int(y)
        if 0 <= row < self.view.result.num_tokens:
            self.token_selected.emit(row)

"""The selected head (or head mean) drawn large, readable at thousands of tokens.

Short maps are drawn cell for cell. Long maps are drawn as a block-pooled overview (max
or mean, labelled as such); zoom (wheel) and pan (drag) are free, token labels appear
once few enough tokens are visible, and a zoomed window is redrawn exactly. Under the map,
the selected token's row (what it attends to) and column (who attends to it) are plotted
as curves over position. A "jump to token" box selects a token and centres the view on it.
The map data comes from a ``map_source`` (the controller: at once when cheap, else
computed in the worker and delivered to ``detail_arrived``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from explorer.core.map_view import (
    DIRECT_LIMIT,
    DetailMap,
    MapKey,
    cheap_enough,
    detail_map,
    exact_window,
    selected_curves,
)
from explorer.core.selection import Selection
from explorer.core.tokens import display_piece
from explorer.core.types import ModelInfo, RunResult
from explorer.gui.plotting import (
    ClickableImage,
    ShortLabels,
    blank_axes,
    escape,
    highlight_rect,
    labels_that_fit,
    lean_axes,
    position_ticks,
)

COLORMAP = "viridis"
ROW_COLOR = "#d0021b"
COLUMN_COLOR = "#ff9500"
JUMP_WINDOW = 64
"""Tokens shown around a token reached with "jump to token" (when the prompt is longer)."""


def below_first_row(image: np.ndarray) -> np.ndarray:
    """``image`` without its first row, whose first cell is 1 in a causal map (the first
    token attends only to itself); all of it when that is its only row."""
    return image[1:] if image.shape[0] > 1 else image


def _local_source(result: RunResult) -> tuple[Callable[[MapKey], DetailMap | None],
                                              Callable[..., Any]]:
    """Without a controller: compute on this thread."""
    return (lambda key: detail_map(result, key),
            lambda key, rows, cols: exact_window(result, key, rows, cols))


class AttentionMap(QWidget):
    token_selected = Signal(int)  # query position
    options_changed = Signal(dict)  # {"head_mean": bool} or {"hide_first": bool}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        cmap = pg.colormap.get(COLORMAP)
        self.result: RunResult | None = None
        self.selection = Selection()
        self.detail: DetailMap | None = None
        self.shown_map: np.ndarray | None = None  # float32 image as drawn (exact or pooled)
        self.shown_row = np.zeros(0, np.float32)
        self.shown_column = np.zeros(0, np.float32)
        self.detail_source: Callable[[MapKey], DetailMap | None] | None = None
        self.window_source: Callable[..., Any] | None = None
        self._labels: Sequence[str] = []
        self._key_labels: Sequence[str] = []
        self._window_key: tuple | None = None  # (map key, rows, columns) of the window asked for
        self._drawn_window: tuple | None = None  # ... and of the one drawn
        self._span_items: list[QGraphicsRectItem] = []

        # options: one fixed row at the top, so nothing moves when they change
        self.head_mean_box = QCheckBox("Mean over heads")
        self.head_mean_box.setToolTip("Show the mean of all heads of the selected layer")
        self.hide_first_box = QCheckBox("Hide first token")
        self.hide_first_box.setToolTip(
            "Hide key 0 (often an 'attention sink') and renormalise each row, so the rest is visible")
        self.pooling_box = QComboBox()
        self.pooling_box.addItem("overview: max", "max")
        self.pooling_box.addItem("overview: mean", "mean")
        self.pooling_box.setToolTip("How a long map is shrunk to the screen: the max or the mean "
                                    "of each block of tokens (zoom in for exact values)")
        self.colour_box = QComboBox()
        self.colour_box.addItem("colour: auto", "auto")
        self.colour_box.addItem("colour: 0–1", "fixed")
        self.colour_box.addItem("colour: in view", "view")
        self.colour_box.setToolTip("auto: the colour bar spans 0 to the largest weight below the "
                                   "first row (whose first cell is always 1 in a causal model); "
                                   "0–1: the same fixed scale for every head and model; "
                                   "in view: 0 to the largest weight in the zoomed view (below "
                                   "the first row, or row of blocks), so faint weights far from "
                                   "the diagonal show")
        self.jump_box = QSpinBox()
        self.jump_box.setPrefix("#")
        self.jump_box.setToolTip("Jump to token: select it and centre the map on it")
        # as wide as six digits from the start: a box that widened with the run's length
        # widened the panel, moved its splitter, and the whole window was laid out and
        # painted again right after the run was drawn
        self.jump_box.setRange(0, 999_999)
        self.jump_box.setFixedWidth(self.jump_box.sizeHint().width())
        self.jump_box.setRange(0, 0)
        self.jump_button = QPushButton("Go")
        self.jump_button.setToolTip("Select this token and centre the view on it")
        self.reset_button = QPushButton("Whole map")
        self.reset_button.setToolTip("Zoom out to the whole map (zoom: wheel, pan: drag)")
        options = QHBoxLayout()
        options.setContentsMargins(0, 0, 0, 0)
        for widget in (self.head_mean_box, self.hide_first_box, self.pooling_box, self.colour_box):
            options.addWidget(widget)
        options.addStretch(1)
        options.addWidget(QLabel("Jump to"))
        options.addWidget(self.jump_box)
        options.addWidget(self.jump_button)
        options.addWidget(self.reset_button)

        self.title = QLabel("Load a model and type a prompt.")
        self.title.setObjectName("attention-title")
        self.title.setTextFormat(Qt.RichText)
        self.title.setWordWrap(True)
        self.title.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.title.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.title.setFixedHeight(2 * self.title.fontMetrics().lineSpacing() + 4)

        self.map_widget = pg.GraphicsLayoutWidget()
        self.map_plot = self.map_widget.addPlot()
        self.map_plot.invertY(True)
        self.map_plot.setMenuEnabled(False)
        self.map_plot.setLabel("left", "query (attends from)")
        self.map_plot.setLabel("bottom", "key (attends to)")
        self.map_plot.hideButtons()
        self.map_image = ClickableImage()
        self.map_image.setColorMap(cmap)
        self.map_plot.addItem(self.map_image)
        self.window_image = pg.ImageItem()
        self.window_image.setColorMap(cmap)
        self.window_image.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.window_image.setZValue(1)
        self.window_image.hide()
        self.map_plot.addItem(self.window_image)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=cmap, interactive=False, width=12)
        self.colorbar.setImageItem([self.map_image, self.window_image], insert_in=self.map_plot)
        self.row_highlight = highlight_rect(ROW_COLOR, alpha=0, width=2.0)
        self.col_highlight = highlight_rect(COLUMN_COLOR, alpha=0, width=1.5)
        self.map_plot.addItem(self.row_highlight)
        self.map_plot.addItem(self.col_highlight)
        self.map_image.pixel_clicked.connect(self._on_map_clicked)
        self.status = QLabel("")
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.status.setStyleSheet("color:#555")

        self.curves_widget = pg.GraphicsLayoutWidget()
        self.curves_widget.setMinimumHeight(110)  # room for the title, the curves and their axis
        self.curves_plot = self.curves_widget.addPlot()
        self.curves_plot.setMenuEnabled(False)
        self.curves_plot.setMouseEnabled(x=True, y=False)
        for axis in ("bottom", "left"):
            self.curves_plot.getAxis(axis).enableAutoSIPrefix(False)
        # a fixed width: labels that widened the axis as the curves came in laid the plot
        # out and painted it three times over
        self.curves_plot.getAxis("left").setWidth(48)
        self.curves_plot.setTitle(
            f"<span style='color:{ROW_COLOR}'>row</span>: what the token attends to, by key position · "
            f"<span style='color:{COLUMN_COLOR}'>column</span>: who attends to it, by query position",
            size="8pt")
        # one-pixel pens: Qt strokes wider lines through a slow path (two 8,192-point
        # curves took 14 ms to paint at 1.5 px, 3 ms at 1 px)
        self.row_curve = self.curves_plot.plot([], [], pen=pg.mkPen(ROW_COLOR, width=1))
        self.column_curve = self.curves_plot.plot([], [], pen=pg.mkPen(COLUMN_COLOR, width=1))
        self.token_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#444", style=Qt.DashLine))
        self.curves_plot.addItem(self.token_line)
        self.curves_plot.scene().sigMouseClicked.connect(self._on_curves_clicked)
        lean_axes(self.map_widget)
        lean_axes(self.curves_widget)
        # blank until the first map: its axes then get token labels, the curves' count again
        self._blank_curve_axes = [self.curves_plot.getAxis(name) for name in ("left", "bottom")]
        blank_axes(self.map_plot.getAxis("left"), self.map_plot.getAxis("bottom"),
                   *self._blank_curve_axes)

        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(self.map_widget)
        splitter.addWidget(self.curves_widget)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([500, 130])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(options)
        layout.addWidget(self.title)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.status)

        self.head_mean_box.toggled.connect(lambda on: self.options_changed.emit({"head_mean": on}))
        self.hide_first_box.toggled.connect(lambda on: self.options_changed.emit({"hide_first": on}))
        self.pooling_box.currentIndexChanged.connect(lambda _i: self._request_detail())
        self.colour_box.currentIndexChanged.connect(lambda _i: self._apply_levels())
        self.jump_button.clicked.connect(self.jump)
        self.jump_box.editingFinished.connect(self.jump)
        self.reset_button.clicked.connect(self.show_whole_map)
        self._range_timer = QTimer(self, singleShot=True, interval=80)
        self._range_timer.timeout.connect(self._on_range_settled)
        self.map_plot.sigRangeChanged.connect(lambda *_: self._range_timer.start())
        self.map_plot.vb.sigResized.connect(lambda *_: self._range_timer.start())  # labels that fit

    # -- the data source -----------------------------------------------------------------
    def set_sources(self, detail: Callable[[MapKey], DetailMap | None],
                    window: Callable[..., Any]) -> None:
        """Where maps come from (the controller): may answer None and deliver later."""
        self.detail_source, self.window_source = detail, window

    def _sources(self) -> tuple[Callable[[MapKey], DetailMap | None], Callable[..., Any]]:
        if self.detail_source is not None and self.window_source is not None:
            return self.detail_source, self.window_source
        assert self.result is not None
        return _local_source(self.result)

    def current_key(self) -> MapKey:
        return self.key_for(self.selection)

    def key_for(self, s: Selection) -> MapKey:
        """The map this panel asks for to show selection ``s``."""
        return MapKey(s.layer, None if s.head_mean else s.head, s.hide_first,
                      str(self.pooling_box.currentData()))

    # -- drawing -------------------------------------------------------------------------
    def show_model(self, info: ModelInfo) -> None:
        """``info`` is loaded: before its first run, say how to get a map."""
        if self.result is None:
            self.title.setText("Type a prompt and press Run (Ctrl+Enter): the selected head's "
                               "attention map appears here.")

    def show_run(self, result: RunResult, selection: Selection) -> None:
        self.result = result
        self.selection = selection
        self.detail = None
        info = result.model_info
        self._labels = ShortLabels(result.tokens, info.piece_style)
        self._key_labels = ShortLabels(result.key_labels, info.piece_style)
        self._sync_boxes(selection)
        self.jump_box.blockSignals(True)
        self.jump_box.setRange(0, max(0, result.num_tokens - 1))
        self.jump_box.setValue(selection.token)
        self.jump_box.blockSignals(False)
        self.highlight_keys([])
        if not result.has_attention:
            self._clear("This run kept no attention (attention mode: none).")
            return
        self._set_title(np.zeros(0, np.float32))
        self.show_whole_map()  # first: a map drawn at once is settled on this run's range
        self._request_detail()

    def show_selection(self, selection: Selection) -> None:
        old = self.selection
        self.selection = selection
        self._sync_boxes(selection)
        if self.result is None or not self.result.has_attention:
            return
        self.jump_box.blockSignals(True)
        self.jump_box.setValue(selection.token)
        self.jump_box.blockSignals(False)
        if (old.layer, old.head, old.head_mean, old.hide_first) != (
                selection.layer, selection.head, selection.head_mean, selection.hide_first) \
                or self.detail is None:
            self._request_detail()
        else:
            self._draw_selection()

    def _sync_boxes(self, selection: Selection) -> None:
        for box, value in ((self.head_mean_box, selection.head_mean),
                           (self.hide_first_box, selection.hide_first)):
            if box.isChecked() != value:
                box.blockSignals(True)
                box.setChecked(value)
                box.blockSignals(False)

    def _clear(self, message: str) -> None:
        self.map_image.clear()
        self.window_image.hide()
        self.shown_map = None
        self.row_curve.setData([], [])
        self.column_curve.setData([], [])
        self.title.setText(escape(message))
        self.status.setText("")

    def _request_detail(self) -> None:
        if self.result is None or not self.result.has_attention:
            return
        key = self.current_key()
        detail_source, _ = self._sources()
        detail = detail_source(key)
        if detail is not None:
            self.draw_detail(detail)
        else:
            self.status.setText(f"Computing layer {key.layer}, "
                                f"{'mean of heads' if key.head is None else f'head {key.head}'}…")
            self.map_image.setOpacity(0.35)  # the previous map, marked stale
            self.window_image.setOpacity(0.35)  # with its exact window
            self._set_title(np.zeros(0, np.float32))

    def detail_arrived(self, detail: DetailMap) -> bool:
        """A map computed in the worker; drawn (True) if it is still the one asked for."""
        if self.result is not None and detail.key == self.current_key() \
                and detail.num_tokens == self.result.num_tokens:
            self.draw_detail(detail)
            return True
        return False

    def draw_detail(self, detail: DetailMap) -> None:
        assert self.result is not None
        self.detail = detail
        for axis in self._blank_curve_axes:  # the first map: positions and weights to count
            axis.setTicks(None)
        self._blank_curve_axes = []
        self.shown_map = detail.image
        t = detail.num_tokens
        keys = len(self._key_labels)
        self.map_image.setImage(detail.image)
        self.map_image.setRect(QRectF(0, 0, keys if not detail.pooled else detail.image.shape[1] * detail.block,
                                      t if not detail.pooled else detail.image.shape[0] * detail.block))
        self.map_image.setOpacity(1.0)
        self._window_key = None
        self.window_image.hide()
        self._apply_levels()
        if detail.pooled:
            self.status.setText(self._overview_text(detail))
        else:
            self.status.setText(f"{t:,} × {keys:,} tokens, exact. Wheel: zoom, drag: pan.")
        self._draw_selection()
        self._on_range_settled()

    def _apply_levels(self) -> None:
        if self.detail is None:
            return
        mode = self.colour_box.currentData()
        if mode == "fixed":
            peak = 1.0
        else:
            values = self._values_in_view() if mode == "view" else below_first_row(self.detail.image)
            peak = (float(values.max()) if values.size else 0.0) or 1.0
        self.map_image.setLevels((0.0, peak))
        self.window_image.setLevels((0.0, peak))
        self.colorbar.setLevels((0.0, peak))

    def _draw_selection(self) -> None:
        """Highlights, curves and the title for the selected token (cheap)."""
        assert self.result is not None and self.detail is not None
        result, s = self.result, self.selection
        t, keys = result.num_tokens, len(self._key_labels)
        self.row_highlight.setRect(0, s.token, keys, 1)
        self.col_highlight.setRect(s.token, 0, 1, t)
        row, column = selected_curves(result, self.detail, s.token)
        self.shown_row, self.shown_column = row, column
        self.row_curve.setData(np.arange(len(row)) + 0.5, row)
        if result.key_tokens is None:
            self.column_curve.setData(np.arange(len(column)) + 0.5, column)
        else:
            self.column_curve.setData([], [])
        self.token_line.setPos(s.token + 0.5)
        self._set_title(row)

    def _set_title(self, row: np.ndarray) -> None:
        assert self.result is not None
        result, s = self.result, self.selection
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
        if row.size:
            top = int(np.argmax(row))
            top_piece = display_piece(result.key_labels[top], info.piece_style)
            most = f"most: #{top} <code>{escape(top_piece)}</code> {row[top]:.2f}"
        else:
            most = "computing…"
        self.title.setText(
            f"<b>{which}</b> — token #{s.token} <code>{escape(piece)}</code>: "
            f"<span style='color:{ROW_COLOR}'>row</span> = what it attends to ({most}), "
            f"<span style='color:{COLUMN_COLOR}'>column</span> = who attends to it")

    # -- zoom, labels, exact windows -------------------------------------------------------
    def show_whole_map(self) -> None:
        if self.result is None:
            return
        # limits first: the previous run's (a shorter prompt's) would clamp the new range
        self.map_plot.setLimits(xMin=-0.05 * len(self._key_labels), xMax=1.05 * len(self._key_labels),
                                yMin=-0.05 * self.result.num_tokens, yMax=1.05 * self.result.num_tokens)
        self.map_plot.setRange(xRange=(0, len(self._key_labels)), yRange=(0, self.result.num_tokens),
                               padding=0.02)

    def visible_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((x0, x1), (y0, y1)) in token units."""
        (x0, x1), (y0, y1) = self.map_plot.viewRange()
        return (x0, x1), (y0, y1)

    def _on_range_settled(self) -> None:
        if self.result is None or self.detail is None:
            return
        (x0, x1), (y0, y1) = self.visible_range()
        bottom, left = self.map_plot.getAxis("bottom"), self.map_plot.getAxis("left")
        metrics = QFontMetrics(bottom.style.get("tickFont") or self.font())
        box = self.map_plot.vb.boundingRect()
        first = max(0, int(x0))  # at most 400 labels measured (each is made when asked for)
        visible = self._key_labels[first:min(max(0, int(x1) + 1), first + 400)]
        widest = max((metrics.horizontalAdvance(text) for text in visible), default=0)
        columns = labels_that_fit(box.width(), widest, gap=6)
        rows = labels_that_fit(box.height(), metrics.height(), gap=1)
        bottom.setTicks([position_ticks(x0, x1, self._key_labels, columns)])
        left.setTicks([position_ticks(y0, y1, self._labels, rows)])
        if self.detail.key != self.current_key():
            return  # the map of another head is being computed: a window would supersede it
        self._maybe_exact_window()
        if self.colour_box.currentData() == "view":
            self._apply_levels()

    def visible_cells(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The query rows and key columns [start, end) with any part in view."""
        assert self.result is not None
        (x0, x1), (y0, y1) = self.visible_range()
        t, keys = self.result.num_tokens, len(self._key_labels)
        return ((max(0, int(np.floor(y0))), min(t, int(np.ceil(y1)))),
                (max(0, int(np.floor(x0))), min(keys, int(np.ceil(x1)))))

    def _maybe_exact_window(self) -> None:
        """On a pooled overview zoomed in to at most DIRECT_LIMIT tokens a side, draw the
        visible cells exactly on top of it."""
        detail = self.detail
        assert detail is not None
        rows, cols = self.visible_cells()
        small = rows[1] - rows[0] <= DIRECT_LIMIT and cols[1] - cols[0] <= DIRECT_LIMIT
        if not detail.pooled or not small or rows[0] >= rows[1] or cols[0] >= cols[1]:
            if self.window_image.isVisible():
                self.status.setText(self._overview_text(detail))
            self.window_image.hide()
            self._window_key = None
            return
        wanted = (detail.key, rows, cols)
        if wanted == self._window_key:
            return
        self._window_key = wanted
        _, window_source = self._sources()
        values = window_source(detail.key, rows, cols)
        if values is not None:
            self.draw_window((detail.key, rows, cols, values))
        else:
            self.status.setText(f"Computing the exact values of queries #{rows[0]}–#{rows[1] - 1} × "
                                f"keys #{cols[0]}–#{cols[1] - 1}…")

    def window_arrived(self, payload: tuple) -> None:
        key, rows, cols, _ = payload
        if self.detail is not None and (key, rows, cols) == self._window_key:
            self.draw_window(payload)

    def _values_in_view(self) -> np.ndarray:
        """The drawn weights in view, without the map's first row (of blocks, on an
        overview) when it is in view with others: the exact window when the one for this
        view is drawn, else the map's pixels in view. float32[row, column]."""
        assert self.detail is not None
        if self.window_image.isVisible() and self._drawn_window == self._window_key:
            rows = self._drawn_window[1]
            values = self.window_image.image
            return below_first_row(values) if rows[0] == 0 else values
        (rows, cols), block = self.visible_cells(), self.detail.block if self.detail.pooled else 1
        r0, r1 = rows[0] // block, -(-rows[1] // block)
        c0, c1 = cols[0] // block, -(-cols[1] // block)
        in_view = self.detail.image[r0:r1, c0:c1]
        return below_first_row(in_view) if r0 == 0 else in_view

    def draw_window(self, payload: tuple) -> None:
        key, rows, cols, values = payload
        self._drawn_window = (key, rows, cols)
        self.window_image.setImage(np.asarray(values, np.float32))
        self.window_image.setRect(QRectF(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0]))
        self.window_image.setOpacity(1.0)
        self.window_image.show()
        self._apply_levels()  # shown first: 'in view' then spans this window's values
        self.status.setText(f"Exact values in view: queries #{rows[0]}–#{rows[1] - 1} × keys "
                            f"#{cols[0]}–#{cols[1] - 1}.")

    @staticmethod
    def _overview_text(detail: DetailMap) -> str:
        return (f"Overview: {detail.describe()} of {detail.num_tokens:,} tokens — zoom in "
                "(wheel) for exact values and token labels.")

    def center_on(self, token: int) -> None:
        """Centre the map on ``token``'s row and column (zoomed to JUMP_WINDOW tokens when the
        map is larger)."""
        if self.result is None:
            return
        t = self.result.num_tokens
        half = min(JUMP_WINDOW, t) / 2
        lo = min(max(token + 0.5 - half, 0), max(t - 2 * half, 0))
        self.map_plot.setRange(xRange=(lo, lo + 2 * half), yRange=(lo, lo + 2 * half), padding=0)

    def jump(self) -> None:
        if self.result is None:
            return
        token = int(self.jump_box.value())
        self.token_selected.emit(token)
        self.center_on(token)

    def highlight_keys(self, spans: list[tuple[int, int]]) -> None:
        """Shade key-column spans [start, end) (e.g. a demonstration's tokens); [] clears."""
        for item in self._span_items:
            self.map_plot.removeItem(item)
        self._span_items = []
        if self.result is None:
            return
        for start, end in spans:
            item = QGraphicsRectItem(start, 0, max(0, end - start), self.result.num_tokens)
            fill = QColor("#4a90d9")
            fill.setAlpha(60)
            item.setBrush(QBrush(fill))
            pen = QPen(QColor("#1f5fa8"))
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setZValue(5)
            item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            self.map_plot.addItem(item)
            self._span_items.append(item)

    # -- clicks → intents ------------------------------------------------------------------
    def _on_map_clicked(self, _x: float, y: float) -> None:
        if self.result is None or self.detail is None:
            return
        row = int(y * self.detail.block) if self.detail.pooled else int(y)
        if 0 <= row < self.result.num_tokens:
            self.token_selected.emit(row)

    def _on_curves_clicked(self, event: Any) -> None:
        if self.result is None or event.button() != Qt.MouseButton.LeftButton:
            return
        point = self.curves_plot.vb.mapSceneToView(event.scenePos())
        position = int(point.x())
        if 0 <= position < self.result.num_tokens and \
                self.curves_plot.vb.sceneBoundingRect().contains(event.scenePos()):
            self.token_selected.emit(position)

    def selected_map(self) -> np.ndarray:
        """The exact map of the current head / head mean (hide-first applied):
        float32[query, key] — computed in full (large for long prompts)."""
        assert self.result is not None
        return exact_window(self.result, self.current_key(), (0, self.result.num_tokens),
                            (0, len(self._key_labels)))

    def is_cheap(self) -> bool:
        return self.result is not None and cheap_enough(self.result, self.current_key())

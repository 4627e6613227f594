"""The layer x head grid: every head's thumbnail in one mosaic image.

Long runs arrive with an empty mosaic that the worker fills layer by layer (a progress
bar with Cancel shows how far it got). Ctrl+click marks heads (``head_toggled``), the grid
can be coloured by one score per head instead of the thumbnails (``set_grid_scores``),
and sliding-window (local) and full (global) layers are labelled when the model has both.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from explorer.core.selection import Selection
from explorer.core.thumbnails import tile_at, tile_origin
from explorer.core.types import ModelInfo
from explorer.gui.plotting import ClickableImage, blank_axes, highlight_rect
from explorer.gui.progress_bar import ProgressBar
from explorer.gui.run_view import GROUP_GAP, THUMBNAIL_GAP, RunView

COLORMAP = "viridis"
SCORE_COLORMAP = "plasma"
UNDRAWN = -1.0  # a mosaic pixel of a layer not drawn yet
MOSAIC_LEVELS = (-1 / 256, 1.0)  # [0, 1] -> entries 1..256 of mosaic_lut, below 0 -> entry 0


def mixes_windows(info: ModelInfo) -> bool:
    """Whether the model has both sliding-window and full layers (Gemma 3)."""
    windows = info.layer_windows
    return len(windows) == info.layers and len({w is None for w in windows}) == 2


def grid_legend(info: ModelInfo) -> str:
    """What the grid's layout means for this model: shared key/value heads, L/G layers."""
    parts = []
    if info.group_size > 1:
        if info.kv_heads == 1:
            parts.append(f"Multi-query attention: all {info.heads} query heads share one "
                         "key/value head.")
        else:
            parts.append(f"Grouped-query attention: every {info.group_size} query heads share "
                         f"one key/value head ({info.kv_heads} groups, separated by wider gaps).")
    if mixes_windows(info):
        window = next(w for w in info.layer_windows if w is not None)
        parts.append(f"L = sliding-window (local) layer, window {window} tokens; "
                     "G = full (global) layer.")
    parts.append("Each thumbnail is max-pooled and scaled to its own maximum.")
    return " ".join(parts)


def mosaic_lut(name: str) -> np.ndarray:
    """uint8[257, 4]: transparent, then the colour map's 256 colours."""
    colours = pg.colormap.get(name).getLookupTable(nPts=256, alpha=True)
    return np.vstack([np.zeros((1, 4), np.uint8), colours])


class AttentionGrid(QWidget):
    head_selected = Signal(int, int)  # layer, head
    head_toggled = Signal(int, int)  # layer, head (Ctrl+click)
    cancel_requested = Signal()  # stop filling the thumbnails

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view: RunView | None = None
        self.selection = Selection()
        self.marked: set[tuple[int, int]] = set()
        self.scores: np.ndarray | None = None
        self.scores_label = ""
        self.grid_widget = pg.GraphicsLayoutWidget()
        self.grid_plot = self.grid_widget.addPlot()
        self.grid_plot.invertY(True)
        self.grid_plot.setAspectLocked(True)
        self.grid_plot.setMenuEnabled(False)
        self.grid_plot.showAxis("top")
        self.grid_plot.hideAxis("bottom")
        self.grid_plot.setLabel("left", "layer")
        self.grid_plot.setLabel("top", "head")
        blank_axes(self.grid_plot.getAxis("left"), self.grid_plot.getAxis("top"))  # show_run labels them
        self.grid_image = ClickableImage()
        self.grid_image.setLookupTable(mosaic_lut(COLORMAP))
        self.grid_plot.addItem(self.grid_image)
        self.score_image = ClickableImage()
        self.score_image.setColorMap(pg.colormap.get(SCORE_COLORMAP))
        self.score_image.hide()
        self.grid_plot.addItem(self.score_image)
        self.grid_highlight = highlight_rect("#ff3b30", alpha=0, width=2.5)
        self.grid_plot.addItem(self.grid_highlight)
        self.marks = pg.ScatterPlotItem(symbol="x", pen=pg.mkPen("#ff3b30", width=2),
                                        brush=pg.mkBrush("#ff3b30"), pxMode=False)
        self.marks.setZValue(12)
        self.grid_plot.addItem(self.marks)
        for image in (self.grid_image, self.score_image):
            image.pixel_clicked.connect(self._on_clicked)
            image.pixel_ctrl_clicked.connect(self._on_ctrl_clicked)

        self.progress = ProgressBar()
        self.progress.setMaximumHeight(16)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip("Stop drawing the remaining thumbnails (the drawn ones stay)")
        self.cancel_button.clicked.connect(self.cancel_requested.emit)
        progress_row = QHBoxLayout()
        progress_row.setContentsMargins(0, 0, 0, 0)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        self.progress_host = QWidget()
        self.progress_host.setLayout(progress_row)
        self.progress_host.setFixedHeight(22)
        self._set_progress_visible(False)
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        self.legend.setMinimumWidth(1)
        header = QLabel("<b>All heads</b> (rows = layers, columns = heads; click one, "
                        "Ctrl+click to mark)")
        header.setWordWrap(True)
        header.setMinimumWidth(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(header)
        layout.addWidget(self.grid_widget, 1)
        layout.addWidget(self.progress_host)
        layout.addWidget(self.legend)

    # -- drawing ----------------------------------------------------------------------
    def show_model(self, info: ModelInfo) -> None:
        """The legend says how this model's heads are laid out. Set when the model loads, so
        the first run's hand-over does not grow the legend and lay the panel out again."""
        self.legend.setText(grid_legend(info))

    def show_run(self, view: RunView, selection: Selection) -> None:
        self.view = view
        self.selection = selection
        info = view.result.model_info
        mixed = mixes_windows(info)
        windows = info.layer_windows

        def layer_label(layer: int) -> str:
            if not mixed:
                return str(layer)
            return f"{layer} {'G' if windows[layer] is None else 'L'}"

        self.grid_plot.getAxis("left").setTicks(
            [[((layer + 0.5) * (view.cell + THUMBNAIL_GAP), layer_label(layer))
              for layer in range(view.layers)]])
        self.grid_plot.getAxis("top").setTicks([[
            (tile_origin(0, h, view.cell, THUMBNAIL_GAP, GROUP_GAP, view.group_size)[1] + view.cell / 2,
             str(h)) for h in range(info.heads)]])
        self.legend.setText(grid_legend(info))  # the same text as at load: no new layout
        self.draw()
        self.grid_plot.autoRange(padding=0.01)

    def show_selection(self, selection: Selection) -> None:
        old = self.selection
        self.selection = selection
        if self.view is None:
            return
        if old.hide_first != selection.hide_first:
            self.draw()
        else:
            self._place_highlight()

    def draw(self) -> None:
        """The mosaic of the shown hide-first variant (or the score colouring)."""
        if self.view is None:
            return
        self._show_mosaic(self.view.mosaics[self.selection.hide_first])
        self._draw_scores()
        self._place_highlight()
        self._draw_marks()

    def layer_drawn(self, view: RunView, hide_first: bool, layer: int) -> bool:
        """A streamed layer arrived: redraw the mosaic if it is the one shown; True when
        that changed what is drawn (not under a score colouring)."""
        if view is not self.view or hide_first != self.selection.hide_first:
            return False
        self._show_mosaic(view.mosaics[hide_first])
        return self.scores is None

    def _show_mosaic(self, mosaic: np.ndarray) -> None:
        """float32[y, x] in [0, 1], NaN where a layer is not drawn yet. The image holds
        UNDRAWN there instead, which the lookup table's first entry draws transparent:
        pyqtgraph paints a float image with NaN through a slower path (30 ms against 12 ms
        for SmolLM2's 1,230 × 375 mosaic)."""
        self.grid_image.setImage(np.nan_to_num(mosaic, nan=UNDRAWN), levels=MOSAIC_LEVELS)

    def show_progress(self, done: int, total: int, running: bool) -> None:
        self._set_progress_visible(running or 0 < done < total)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"thumbnails: {done}/{total} layers" + ("" if running else " (stopped)"))
        self.cancel_button.setEnabled(running)

    def _set_progress_visible(self, visible: bool) -> None:
        # the row keeps its height, so nothing below it moves when it appears
        self.progress.setVisible(visible)
        self.cancel_button.setVisible(visible)

    def _place_highlight(self) -> None:
        assert self.view is not None
        s, v = self.selection, self.view
        heads = v.result.model_info.heads
        if s.head_mean:
            y, x0 = tile_origin(s.layer, 0, v.cell, THUMBNAIL_GAP, GROUP_GAP, v.group_size)
            _, x1 = tile_origin(s.layer, heads - 1, v.cell, THUMBNAIL_GAP, GROUP_GAP, v.group_size)
            self.grid_highlight.setRect(x0 - 1, y - 1, x1 - x0 + v.cell + 2, v.cell + 2)
        else:
            y, x = tile_origin(s.layer, s.head, v.cell, THUMBNAIL_GAP, GROUP_GAP, v.group_size)
            self.grid_highlight.setRect(x - 1, y - 1, v.cell + 2, v.cell + 2)

    # -- marks and scores ------------------------------------------------------------------
    def set_marked_heads(self, heads: set[tuple[int, int]]) -> None:
        self.marked = set(heads)
        self._draw_marks()

    def _draw_marks(self) -> None:
        v = self.view
        if v is None or not self.marked:
            self.marks.setData([], [])
            return
        spots = []
        for layer, head in sorted(self.marked):
            if layer < v.layers and head < v.result.model_info.heads:
                y, x = tile_origin(layer, head, v.cell, THUMBNAIL_GAP, GROUP_GAP, v.group_size)
                spots.append((x + v.cell / 2, y + v.cell / 2))
        xs, ys = zip(*spots, strict=True) if spots else ((), ())
        self.marks.setData(list(xs), list(ys), size=v.cell * 0.7)

    def set_grid_scores(self, scores: np.ndarray | None, label: str = "") -> None:
        """Colour every tile by one value per head, float32[layer, head]; None: thumbnails."""
        self.scores = None if scores is None else np.asarray(scores, dtype=np.float32)
        self.scores_label = label
        self._draw_scores()

    def _draw_scores(self) -> None:
        v = self.view
        if v is None or self.scores is None:
            self.score_image.hide()
            self.grid_image.show()
            return
        image = np.full(v.mosaics[False].shape, np.nan, np.float32)
        layers, heads = self.scores.shape
        for layer in range(min(layers, v.layers)):
            for head in range(min(heads, v.result.model_info.heads)):
                y, x = tile_origin(layer, head, v.cell, THUMBNAIL_GAP, GROUP_GAP, v.group_size)
                image[y:y + v.cell, x:x + v.cell] = self.scores[layer, head]
        finite = self.scores[np.isfinite(self.scores)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        self.score_image.setImage(image, levels=(lo, hi if hi > lo else lo + 1e-9))
        self.score_image.show()
        self.grid_image.hide()
        self.legend.setText(f"Coloured by <b>{self.scores_label or 'score'}</b>: "
                            f"{lo:.3g} (dark) … {hi:.3g} (bright). Clear the scores to see the "
                            "thumbnails again.")

    # -- clicks -------------------------------------------------------------------------
    def _hit(self, x: float, y: float) -> tuple[int, int] | None:
        if self.view is None:
            return None
        v = self.view
        return tile_at(y, x, v.layers, v.result.model_info.heads, v.cell, THUMBNAIL_GAP,
                       GROUP_GAP, v.group_size)

    def _on_clicked(self, x: float, y: float) -> None:
        hit = self._hit(x, y)
        if hit is not None:
            self.head_selected.emit(*hit)

    def _on_ctrl_clicked(self, x: float, y: float) -> None:
        hit = self._hit(x, y)
        if hit is not None:
            self.head_toggled.emit(*hit)

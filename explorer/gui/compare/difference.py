"""Attention of column B minus column A among the query's tokens, for one layer and head."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from explorer.core.compare import ColumnAnalysis, query_difference, query_pieces
from explorer.gui.plotting import escape, highlight_rect, short_label, strided_ticks

DIVERGING = "CET-D1"  # blue (B < A) – white – red (B > A)


class DifferenceView(QWidget):
    """float32[query token, query token] image: rows attend, columns are attended to."""

    choice_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.a_box, self.b_box = QComboBox(), QComboBox()
        for box in (self.a_box, self.b_box):
            box.currentIndexChanged.connect(lambda _i: self.choice_changed.emit())
        self.caption = QLabel("Run the columns to compare their attention over the query.")
        self.caption.setTextFormat(Qt.RichText)
        self.caption.setWordWrap(True)
        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot = self.plot_widget.addPlot()
        self.plot.invertY(True)
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("left", "query token (attends from)")
        self.plot.setLabel("bottom", "query token (attends to)")
        cmap = pg.colormap.get(DIVERGING)
        self.image = pg.ImageItem()
        self.image.setColorMap(cmap)
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=(-1, 1), colorMap=cmap, interactive=False, width=12)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.row_highlight = highlight_rect("#000000", alpha=0, width=2.0)
        self.plot.addItem(self.row_highlight)
        self.shown: np.ndarray | None = None

        choose = QHBoxLayout()
        choose.addWidget(QLabel("B"))
        choose.addWidget(self.b_box)
        choose.addWidget(QLabel("minus A"))
        choose.addWidget(self.a_box)
        choose.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(choose)
        layout.addWidget(self.caption)
        layout.addWidget(self.plot_widget, 1)

    def set_column_count(self, count: int) -> None:
        """Offer columns A.. for A and B; keep the choice when possible (default A and last)."""
        names = [chr(ord("A") + i) for i in range(count)]
        old = (self.a_box.currentIndex(), self.b_box.currentIndex())
        for box, index, default in ((self.a_box, old[0], 0), (self.b_box, old[1], count - 1)):
            box.blockSignals(True)
            box.clear()
            box.addItems(names)
            box.setCurrentIndex(index if 0 <= index < count else default)
            box.blockSignals(False)

    def choice(self) -> tuple[int, int]:
        return self.a_box.currentIndex(), self.b_box.currentIndex()

    def set_choice(self, a: int, b: int) -> None:
        for box, index in ((self.a_box, a), (self.b_box, b)):
            if 0 <= index < box.count():
                box.setCurrentIndex(index)

    def show_difference(self, columns: Sequence[ColumnAnalysis | None], layer: int,
                        head: int | None, query_index: int) -> None:
        a_index, b_index = self.choice()
        if not (0 <= a_index < len(columns) and 0 <= b_index < len(columns)):
            return
        a, b = columns[a_index], columns[b_index]
        if a is None or b is None:
            self.caption.setText("Run the columns to compare their attention over the query.")
            return
        info_a, info_b = a.result.model_info, b.result.model_info
        if (info_a.name, info_a.layers, info_a.heads) != (info_b.name, info_b.layers, info_b.heads):
            self.shown = None
            self.image.clear()
            self.caption.setText(f"Columns {chr(ord('A') + b_index)} and {chr(ord('A') + a_index)} "
                                 f"run on different models ({escape(info_b.name)}, "
                                 f"{escape(info_a.name)}): their attention maps do not subtract.")
            return
        diff = query_difference(a, b, layer, head)
        self.shown = diff
        n = diff.shape[0]
        peak = float(np.abs(diff).max()) if diff.size else 0.0
        peak = peak or 1e-6
        self.image.setImage(diff, levels=(-peak, peak))
        self.colorbar.setLevels((-peak, peak))
        pieces_a, pieces_b = query_pieces(a), query_pieces(b)
        labels = [short_label(p, 8) for p in pieces_b[:n]]
        self.plot.getAxis("left").setTicks([strided_ticks(labels, max_labels=10)])
        self.plot.getAxis("bottom").setTicks([strided_ticks(labels, max_labels=30)])
        self.plot.setRange(xRange=(0, max(n, 1)), yRange=(0, max(n, 1)), padding=0.02)
        row = min(max(query_index, 0), max(n - 1, 0))
        self.row_highlight.setRect(0, row, n, 1)
        which = "mean over heads" if head is None else f"head {head}"
        names = chr(ord("A") + b_index), chr(ord("A") + a_index)
        note = ""
        if pieces_a[:n] != pieces_b[:n] or len(pieces_a) != len(pieces_b):
            note = (f" <span style='color:#8a1f11'>The query tokenises differently "
                    f"({len(pieces_a)} vs {len(pieces_b)} tokens); the first {n} are compared.</span>")
        selected = diff[row] if n else np.zeros(0)
        biggest = int(np.argmax(np.abs(selected))) if selected.size else 0
        detail = (f" Selected token's row (outlined): largest change {selected[biggest]:+.3f} "
                  f"on '{labels[biggest]}'." if selected.size else "")
        self.caption.setText(
            f"<b>{names[0]} − {names[1]}</b>, layer {layer}, {which}: attention among the query's "
            f"tokens (rows attend, columns are attended to; red = more in {names[0]}, blue = "
            f"more in {names[1]}).{detail}{note}")

"""Order sensitivity of one column: p(each label) under N orders of its demonstrations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.gui.compare.column import label_color
from explorer.gui.plotting import escape

BEST_COLOR, WORST_COLOR = "#d8f0d8", "#f6d5d3"


def order_name(order: tuple[int, ...]) -> str:
    """(2, 0, 1) -> 'd3 d1 d2' (the column's demonstrations, 1-based, in the new order)."""
    return " ".join(f"d{i + 1}" for i in order)


class OrderView(QWidget):
    """A strip of points per label (share of the labels under each order; the column's
    own order as a ring) and a table of the orders with the best and worst marked."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spread: Any = None  # core.icl.OrderSpread shown
        self.name = ""
        self.target_box = QComboBox()
        self.target_box.setToolTip("Best and worst order: highest and lowest share of this label")
        self.target_box.currentIndexChanged.connect(lambda _i: self._draw())
        self.caption = QLabel("Press a column's Shuffle ×N to see how much the order of its "
                              "demonstrations matters.")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.RichText)
        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot = self.plot_widget.addPlot()
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("left", "p(label) / Σ p(labels)")
        self.plot.setYRange(0, 1, padding=0.02)
        self.points = pg.ScatterPlotItem(size=9)
        self.own = pg.ScatterPlotItem(size=15, pen=pg.mkPen("#000", width=2), brush=pg.mkBrush(0, 0, 0, 0))
        self.ranges = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0),
                                      bottom=np.zeros(0), beam=0.2, pen=pg.mkPen("#555"))
        for item in (self.ranges, self.points, self.own):
            self.plot.addItem(item)
        self.table = QTableWidget(0, 0)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        top = QHBoxLayout()
        top.addWidget(QLabel("Best / worst for"))
        top.addWidget(self.target_box)
        top.addStretch(1)
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.plot_widget)
        splitter.addWidget(self.table)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.caption)
        layout.addWidget(splitter, 1)

    def show_message(self, text: str) -> None:
        self.caption.setText(text)

    def show_spread(self, spread: Any, name: str) -> None:
        """Draw ``spread`` (core.icl.OrderSpread) of column ``name``; the ranking label
        defaults to what the column's own order predicts."""
        self.spread, self.name = spread, name
        self.target_box.blockSignals(True)
        self.target_box.clear()
        self.target_box.addItems(list(spread.labels))
        self.target_box.setCurrentIndex(spread.labels.index(spread.predicted[0]))
        self.target_box.blockSignals(False)
        self._draw()

    def best_and_worst(self) -> tuple[int, int]:
        return self.spread.best_and_worst(max(self.target_box.currentIndex(), 0))

    def _draw(self) -> None:
        spread = self.spread
        if spread is None:
            return
        labels = spread.labels
        shares = spread.shares  # float64[order, label]
        orders = len(spread.orders)
        target = max(self.target_box.currentIndex(), 0)
        best, worst = spread.best_and_worst(target)
        offsets = np.linspace(-0.25, 0.25, orders) if orders > 1 else np.zeros(1)
        xs = (np.arange(len(labels))[None, :] + offsets[:, None]).ravel()
        brushes = [pg.mkBrush(label_color(labels[j], labels)) for _ in range(orders)
                   for j in range(len(labels))]
        self.points.setData(x=xs, y=shares.ravel(), brush=brushes)
        self.own.setData(x=np.arange(len(labels)) + offsets[0], y=shares[0])
        low, high = shares.min(axis=0), shares.max(axis=0)
        mid = (low + high) / 2
        self.ranges.setData(x=np.arange(len(labels), dtype=float), y=mid, top=high - mid,
                            bottom=mid - low)
        self.plot.getAxis("bottom").setTicks([[(j, label) for j, label in enumerate(labels)]])
        self.plot.setXRange(-0.6, len(labels) - 0.4, padding=0)
        self._fill_table(best, worst)
        counts = spread.counts()
        predicted = ", ".join(f"{escape(lab)} {counts[lab]}/{orders}" for lab in labels if counts[lab])
        self.caption.setText(
            f"Column {self.name} under {orders} orders of its demonstrations (ring: its own order). "
            f"Predicted: {predicted}. p({escape(labels[target])}) share ranges "
            f"{low[target]:.3f}–{high[target]:.3f}: best order {best + 1} "
            f"({order_name(spread.orders[best])}), worst order {worst + 1} "
            f"({order_name(spread.orders[worst])}).")

    def _fill_table(self, best: int, worst: int) -> None:
        spread = self.spread
        headers = ["order", "demonstrations", *(f"p({lab})" for lab in spread.labels), "predicted"]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(spread.orders))
        for row, order in enumerate(spread.orders):
            cells = [str(row + 1) + (" (own)" if row == 0 else ""), order_name(order),
                     *(f"{p:.4f}" for p in spread.probs[row]), spread.predicted[row]]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if row in (best, worst):
                    item.setBackground(QBrush(QColor(BEST_COLOR if row == best else WORST_COLOR)))
                    item.setToolTip("best order" if row == best else "worst order")
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()

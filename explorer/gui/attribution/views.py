"""The attribution panel's read-only views: ranked tokens, faithfulness table, deletion plot.

Each draws from an ``Attribution`` record and a method name only (no model, no worker).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from explorer.core.attribution import METHOD_TITLES, Attribution
from explorer.core.faithfulness import RANDOM
from explorer.core.tokens import display_piece

RANKED_ROWS = 40
"""Rows of the ranked list (the heat strip on the token chips shows every token)."""
CURVE_COLORS = {"grad_x_input": "#d62728", "integrated_gradients": "#1f77b4",
                "rollout": "#2ca02c", "attention": "#ff7f0e", RANDOM: "#7f7f7f"}


def method_title(method: str) -> str:
    return "random ordering" if method == RANDOM else METHOD_TITLES.get(method, method)


def aopc_text(value: float) -> str:
    """AOPC as shown in the table: 4 significant digits (p(target) can be tiny)."""
    return f"{value:.4g}"


LEFT = Qt.AlignLeft | Qt.AlignVCenter
RIGHT = Qt.AlignRight | Qt.AlignVCenter
_FLAGS = Qt.ItemIsEnabled | Qt.ItemIsSelectable


def _item(text: str, align: Qt.AlignmentFlag = LEFT) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setTextAlignment(align)
    item.setFlags(_FLAGS)
    return item


def _setup(table: QTableWidget, headers: list[str]) -> None:
    table.setColumnCount(len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)  # sized once per fill
    table.horizontalHeader().setStretchLastSection(True)


def _fill(table: QTableWidget, rows: list[list[QTableWidgetItem]]) -> None:
    """Replace the table's cells, then size the columns once (ResizeToContents would
    measure every column again on every setItem)."""
    table.setUpdatesEnabled(False)
    try:
        table.setRowCount(len(rows))
        for row, cells in enumerate(rows):
            for column, cell in enumerate(cells):
                table.setItem(row, column, cell)
        table.resizeColumnsToContents()
    finally:
        table.setUpdatesEnabled(True)


class RankedList(QTableWidget):
    """Tokens 0..position by score, highest first (at most RANKED_ROWS rows)."""

    COLUMNS = ["rank", "#", "token", "score"]

    def __init__(self) -> None:
        super().__init__()
        _setup(self, self.COLUMNS)

    def show_scores(self, record: Attribution | None, method: str, style: str = "byte_level") -> None:
        if record is None or method not in record.scores:
            self.setRowCount(0)
            return
        ranked = record.ranked(method, RANKED_ROWS)
        _fill(self, [[_item(str(row + 1), RIGHT), _item(str(position), RIGHT),
                      _item(display_piece(record.tokens[position], style)),
                      _item(f"{score:+.4f}", RIGHT)]
                     for row, (position, score) in enumerate(ranked)])


class FaithfulnessTable(QTableWidget):
    """One row per method and the random ordering: AOPC comprehensiveness and sufficiency."""

    COLUMNS = ["ordering", "compr. ↑", "suff. ↓"]

    def __init__(self) -> None:
        super().__init__()
        _setup(self, self.COLUMNS)
        self.setSelectionMode(QAbstractItemView.NoSelection)
        self.horizontalHeaderItem(1).setToolTip("AOPC comprehensiveness")
        self.horizontalHeaderItem(2).setToolTip("AOPC sufficiency")
        self.setToolTip("Names are coloured like their curves. AOPC over the k grid: comprehensiveness = mean drop of p(target) when the "
                        "top-k tokens are replaced by the baseline (higher = more faithful); "
                        "sufficiency = mean drop when only the top-k are kept (lower = more "
                        "faithful). Compare each method with the random ordering.")

    def show_record(self, record: Attribution | None, method: str) -> None:
        curves = {} if record is None else record.faithfulness
        bold = QFont()
        bold.setBold(True)
        rows = []
        for name, curve in curves.items():
            title = _item(method_title(name))
            title.setForeground(QColor(CURVE_COLORS.get(name, "#000000")))  # the plot's legend
            cells = [title,
                     _item(aopc_text(curve.comprehensiveness), RIGHT),
                     _item(aopc_text(curve.sufficiency), RIGHT)]
            for cell in cells:
                if name == method:
                    cell.setFont(bold)
            rows.append(cells)
        _fill(self, rows)


class DeletionPlot(pg.PlotWidget):
    """p(target) against the number of replaced tokens, one curve per ordering; the
    chosen method drawn thick, the random ordering dashed (the faithfulness table, coloured
    alike, is the legend). Items are updated in place."""

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumHeight(140)
        self.setLabel("bottom", "k: top-k tokens replaced")
        self.setLabel("left", "p(target)")
        self.showGrid(x=True, y=True, alpha=0.2)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.curves: dict[str, pg.PlotDataItem] = {}

    def show_record(self, record: Attribution | None, method: str) -> None:
        curves = {} if record is None else record.faithfulness
        for name in list(self.curves):
            if name not in curves:
                self.removeItem(self.curves.pop(name))
        for name, curve in curves.items():
            color = QColor(CURVE_COLORS.get(name, "#000000"))
            pen = pg.mkPen(color, width=3 if name == method else 1.2,
                           style=Qt.DashLine if name == RANDOM else Qt.SolidLine)
            x = np.asarray(curve.ks, dtype=np.float64)
            y = np.asarray(curve.deletion, dtype=np.float64)
            item = self.curves.get(name)
            if item is None:
                item = self.plot(x, y, pen=pen)
                self.curves[name] = item
            else:
                item.setData(x, y, pen=pen)
            item.setZValue(10 if name == method else 0)

"""Label words as anchors (Wang et al. 2023): S_wp, S_pq and S_ww across layers for one column."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

FLOW_COLORS = {"S_wp": "#1f77b4", "S_pq": "#ff7f0e", "S_ww": "#7f7f7f"}
FLOW_NAMES = {"S_wp": "S_wp: text → label words", "S_pq": "S_pq: label words → final position",
              "S_ww": "S_ww: all other pairs"}


class AnchorView(QWidget):
    """Three lines over the layers; ``column_changed`` asks the window to compute a column."""

    column_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.flow: Any = None  # core.icl.AnchorFlow shown
        self.column_box = QComboBox()
        self.column_box.setToolTip("The column whose information flow is shown")
        self.column_box.currentIndexChanged.connect(self._column_chosen)
        self.relative = QCheckBox("Relative (share of the three per layer)")
        self.relative.setChecked(True)
        self.relative.setToolTip("Wang et al. compare the three flows' relative sizes; untick "
                                 "for the mean saliency values themselves")
        self.relative.toggled.connect(lambda _on: self._draw())
        self.caption = QLabel("Run the columns, then choose one: the flows need one forward and "
                              "one backward pass.")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.RichText)
        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot = self.plot_widget.addPlot()
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "layer")
        self.plot.showGrid(x=False, y=True, alpha=0.3)
        self.plot.addLegend(offset=(10, 2), colCount=3)
        self.curves = {key: self.plot.plot([], [], pen=pg.mkPen(color, width=2), symbol="o",
                                           symbolSize=5, symbolBrush=color, name=FLOW_NAMES[key])
                       for key, color in FLOW_COLORS.items()}
        top = QHBoxLayout()
        top.addWidget(QLabel("Column"))
        top.addWidget(self.column_box)
        top.addWidget(self.relative)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.caption)
        layout.addWidget(self.plot_widget, 1)

    def set_column_count(self, count: int) -> None:
        old = self.column_box.currentIndex()
        self.column_box.blockSignals(True)
        self.column_box.clear()
        self.column_box.addItems([chr(ord("A") + i) for i in range(count)])
        self.column_box.setCurrentIndex(old if 0 <= old < count else max(count - 1, 0))
        self.column_box.blockSignals(False)

    def column(self) -> int:
        return self.column_box.currentIndex()

    def set_column(self, index: int) -> None:
        if 0 <= index < self.column_box.count():
            self.column_box.setCurrentIndex(index)

    def _column_chosen(self, index: int) -> None:
        if index >= 0:
            self.column_changed.emit(index)

    def show_message(self, text: str) -> None:
        self.flow = None
        for curve in self.curves.values():
            curve.setData([], [])
        self.caption.setText(text)

    def show_flow(self, flow: Any, name: str) -> None:
        """Draw ``flow`` (core.icl.AnchorFlow) of column ``name``."""
        self.flow = flow
        self._draw()
        layers = len(flow.s_wp)
        if not flow.label_positions:
            self.caption.setText(f"Column {name} has no demonstrations with a label word: only "
                                 "S_ww exists.")
            return
        half = layers // 2
        shares = _shares(flow)  # compared as shares, like the plot and the paper
        shallow = bool(half) and shares["S_wp"][:half].mean() > shares["S_pq"][:half].mean()
        deep = shares["S_pq"][half:].mean() > shares["S_wp"][half:].mean()
        reading = ("as Wang et al. found: shallow layers gather the demonstrations into their label "
                   "words (S_wp larger), deep layers read the answer from them (S_pq larger)"
                   if shallow and deep else
                   "S_wp leads in the first half of the layers" if shallow else
                   "S_pq leads in the second half of the layers" if deep else
                   "neither flow dominates the way Wang et al. describe")
        self.caption.setText(
            f"Column {name}: saliency |Σ<sub>heads</sub> A ⊙ ∂L/∂A| with L = −log p('{flow.loss_label}') "
            f"(the predicted label), averaged over each set of token pairs; "
            f"{len(flow.label_positions)} label words, final position {flow.target}. Here {reading}.")

    def shown(self) -> dict[str, np.ndarray]:
        """The values drawn, per flow (float64[layer])."""
        return {key: np.asarray(curve.getData()[1]) for key, curve in self.curves.items()}

    def _draw(self) -> None:
        if self.flow is None:
            return
        values = {"S_wp": self.flow.s_wp, "S_pq": self.flow.s_pq, "S_ww": self.flow.s_ww}
        layers = np.arange(len(self.flow.s_wp), dtype=float)
        relative = self.relative.isChecked()
        if relative:
            values = _shares(self.flow)
            self.plot.setLabel("left", "share")
        else:
            self.plot.setLabel("left", "saliency")
        for key, curve in self.curves.items():
            curve.setData(layers, np.asarray(values[key], dtype=float))
        step = max(1, int(np.ceil(len(layers) / 16)))
        self.plot.getAxis("bottom").setTicks([[(int(x), str(int(x))) for x in layers[::step]]])
        self.plot.enableAutoRange()
        if relative:  # room above 1 for the legend
            self.plot.setYRange(-0.02, 1.35, padding=0)


def _shares(flow: Any) -> dict[str, np.ndarray]:
    """Each flow's share of the three per layer (NaN counts as 0; a zero total stays 0)."""
    values = {"S_wp": flow.s_wp, "S_pq": flow.s_pq, "S_ww": flow.s_ww}
    stacked = np.nan_to_num(np.stack([np.asarray(v, dtype=float) for v in values.values()]))
    total = stacked.sum(axis=0)
    total[total == 0] = 1.0
    return {key: row / total for key, row in zip(values, stacked, strict=True)}

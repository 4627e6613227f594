"""A layer x head heatmap of an ablation scan (diverging: red = the head helps the target)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from explorer.core.ablation import AblationScan
from explorer.gui.plotting import ClickableImage

COLORS = pg.ColorMap([0.0, 0.5, 1.0], [(178, 24, 43), (247, 247, 247), (33, 102, 172)])
"""Δ log p < 0 (ablating the head lowers the target) red, 0 white, > 0 blue."""


class ScanHeatmap(pg.GraphicsLayoutWidget):
    """``image``: float32[H, L] as drawn (x = head, y = layer, layer 0 at the top); a click on a
    cell emits ``head_clicked(layer, head)``."""

    head_clicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = self.addPlot()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.invertY(True)
        self.plot.setLabel("bottom", "head")
        self.plot.setLabel("left", "layer")
        self.image = ClickableImage(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.bar = pg.ColorBarItem(colorMap=COLORS, interactive=False, width=12)
        self.bar.setImageItem(self.image, insert_in=self.plot)
        self.scan: AblationScan | None = None
        self.image.pixel_clicked.connect(self._clicked)
        self.setMinimumHeight(160)
        self.setVisible(False)

    def show_scan(self, scan: AblationScan | None) -> None:
        self.scan = scan
        self.setVisible(scan is not None)
        if scan is None:
            self.image.clear()
            return
        delta = scan.delta_logprob
        limit = max(float(np.abs(delta).max()), 1e-6)
        self.image.setImage(delta, levels=(-limit, limit))
        self.bar.setLevels((-limit, limit))
        layers, heads = delta.shape
        self.plot.setXRange(0, heads, padding=0)
        self.plot.setYRange(0, layers, padding=0)
        for axis, count in (("bottom", heads), ("left", layers)):
            step = max(1, -(-count // 12))  # at most about 12 labels
            self.plot.getAxis(axis).setTicks([[(i + 0.5, str(i)) for i in range(0, count, step)]])

    def _clicked(self, x: float, y: float) -> None:
        if self.scan is None:
            return
        layers, heads = self.scan.delta_logprob.shape
        layer, head = int(y), int(x)
        if 0 <= layer < layers and 0 <= head < heads:
            self.head_clicked.emit(layer, head)

"""The ablation scan in the few-shot comparison window: which heads a column's prediction of
a label word rests on. Kept apart from ``explorer.gui.compare`` (it only reads a column's
analysis and calls ``set_head``): a dock in that window, added by ``attach``."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from explorer.core.ablation import ABLATION_MODES, AblationScan
from explorer.core.errors import ExplorerError
from explorer.core.tokens import display_piece
from explorer.gui.ablation.heatmap import ScanHeatmap
from explorer.gui.ablation.jobs import scan_job
from explorer.gui.plotting import escape
from explorer.gui.progress_bar import ProgressBar

DOCK_TITLE = "Head scan for a label"


class LabelScan(QWidget):
    """Column and label choosers, Scan / Cancel, progress and the layer x head heatmap of
    Δ log p(label) after the column's last token (the label's likeliest first token)."""

    def __init__(self, compare: Any) -> None:
        super().__init__()
        self.compare = compare
        self.controller = compare.controller
        self.job: Any = None
        self.scan: AblationScan | None = None
        self.column_box = QComboBox()
        self.label_box = QComboBox()
        self.mode_box = QComboBox()
        self.mode_box.addItems(list(ABLATION_MODES))
        self.scan_button = QPushButton("Scan heads for this label")
        self.scan_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = ProgressBar()
        self.progress.setRange(0, 1000)
        self.heatmap = ScanHeatmap()
        self.heatmap.head_clicked.connect(lambda layer, head: compare.set_head(layer, head))
        self.status = QLabel("Run the columns, then pick a column and a label word.")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.RichText)
        row = QHBoxLayout()
        for text, widget in (("Column", self.column_box), ("Label", self.label_box),
                             ("Mode", self.mode_box)):
            row.addWidget(QLabel(text))
            row.addWidget(widget)
        row.addWidget(self.scan_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.progress, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.heatmap, 1)
        self.refresh()

    def refresh(self) -> None:
        """Offer the window's current columns and label words."""
        column, label = self.column_box.currentIndex(), self.label_box.currentText()
        self.column_box.clear()
        self.column_box.addItems([chr(ord("A") + i) for i in range(len(self.compare.columns))])
        self.column_box.setCurrentIndex(max(0, min(column, self.column_box.count() - 1)))
        self.label_box.clear()
        with contextlib.suppress(ExplorerError):  # a half-typed label list: offer none
            self.label_box.addItems(list(self.compare.builder.label_words()))
        index = self.label_box.findText(label)
        self.label_box.setCurrentIndex(max(index, 0))

    def start(self) -> Any:
        """Scan the chosen column for the chosen label; returns the Job (None if not sent)."""
        if self.job is not None:
            return None
        self.refresh()
        index = self.column_box.currentIndex()
        columns = self.compare.columns
        analysis = columns[index].analysis if 0 <= index < len(columns) else None
        label = self.label_box.currentText()
        if analysis is None:
            return self._say("Run the columns first.", error=True)
        sums = {s.label: s for s in analysis.label_sums}
        if label not in sums:
            return self._say(f"No label probabilities for {label!r} in this column (run the "
                             "columns again after changing the labels).", error=True)
        result = analysis.result
        ids = list(sums[label].ids)
        target = ids[int(np.argmax(result.last_probs[ids]))]
        self.scan_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self._say(f"Scanning column {self.column_box.currentText()} for {label!r}…")
        job = scan_job(result.prompt, None, self.mode_box.currentText(), target_id=int(target))
        self.job = self.controller.submit(
            self.compare.column_job(columns[index], job),  # on the column's own model if it has one
            on_done=lambda scan, r=result, lab=label: self._done(scan, r, lab),
            on_error=self._failed,
            on_progress=lambda f, _m: self.progress.setValue(int(f * 1000)))
        return self.job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _finish(self) -> None:
        self.job = None
        self.scan_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _done(self, scan: AblationScan, result: Any, label: str) -> None:
        self._finish()
        self.progress.setValue(1000)
        self.scan = scan
        self.heatmap.show_scan(scan)
        dock = self.parentWidget()
        if isinstance(dock, QDockWidget):  # room for the heatmap, the columns keep the rest
            self.compare.resizeDocks([dock], [300], Qt.Vertical)
        piece = display_piece(scan.target_token, result.model_info.piece_style)
        strongest = ", ".join(f"{layer}.{head} {delta:+.3f}"
                              for layer, head, delta in scan.strongest(3))
        self._say(f"Δ log p({label!r} as <code>{escape(piece)}</code>, p = {scan.base_prob:.2%}) "
                  f"with each head ablated alone. Most needed: {escape(strongest)}. Click a "
                  "cell to show that head in every column.", rich=True)

    def _failed(self, message: str, cancelled: bool) -> None:
        self._finish()
        self.progress.setValue(0)
        self._say("Scan cancelled: nothing changed." if cancelled else message, error=not cancelled)

    def _say(self, text: str, error: bool = False, rich: bool = False) -> None:
        safe = text if rich else escape(text)
        self.status.setText(f"<span style='color:#8a1f11'>{safe}</span>" if error else safe)


def attach(compare: Any) -> LabelScan:
    """Add the label scan dock to a CompareWindow once; returns its LabelScan."""
    existing = getattr(compare, "label_scan", None)
    if existing is not None:
        return existing
    panel = LabelScan(compare)
    dock = QDockWidget(DOCK_TITLE, compare)
    dock.setObjectName("dock-label-scan")
    dock.setWidget(panel)
    compare.addDockWidget(Qt.BottomDockWidgetArea, dock)
    compare.label_scan = panel
    return panel

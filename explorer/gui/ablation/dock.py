"""The Ablation dock: the ablated heads, mode, Clear; the scan's target, Scan / Cancel,
progress and heatmap. Widgets only: ``AblationFeature`` does the work."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from explorer.core.ablation import ABLATION_MODES, Ablation, AblationScan
from explorer.core.tokens import display_piece
from explorer.gui.ablation.heatmap import ScanHeatmap
from explorer.gui.plotting import escape
from explorer.gui.progress_bar import ProgressBar

NOTHING = "No heads ablated. Ctrl+click heads in the attention grid to knock them out."


class AblationDock(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.heads_label = QLabel(NOTHING)
        self.heads_label.setWordWrap(True)
        self.heads_label.setTextFormat(Qt.RichText)
        self.mode_box = QComboBox()
        for mode in ABLATION_MODES:
            self.mode_box.addItem({"zero": "Zero (output = 0)",
                                   "mean": "Mean (output = its mean over positions)"}[mode], mode)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Restore every head (runs the prompt again)")
        self.target_edit = QLineEdit()
        self.target_edit.setPlaceholderText("target token (default: the actual next token)")
        self.target_edit.setToolTip("The token whose log-probability the scan measures: one "
                                    "token, mind the leading space (e.g. ' Paris')")
        self.scan_button = QPushButton("Scan heads")
        self.scan_button.setToolTip("Ablate each head alone and measure Δ log p(target) after "
                                    "the selected token")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = ProgressBar()
        self.progress.setRange(0, 1000)
        self.grid_box = QCheckBox("Colour the attention grid by the scan")
        self.grid_box.setEnabled(False)
        self.heatmap = ScanHeatmap()
        self.scan_label = QLabel("")
        self.scan_label.setWordWrap(True)
        self.scan_label.setTextFormat(Qt.RichText)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.RichText)

        row = QHBoxLayout()
        row.addWidget(QLabel("Mode"))
        row.addWidget(self.mode_box, 1)
        row.addWidget(self.clear_button)
        scan_row = QHBoxLayout()
        scan_row.addWidget(self.target_edit, 1)
        scan_row.addWidget(self.scan_button)
        scan_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.heads_label)
        layout.addLayout(row)
        layout.addSpacing(6)
        layout.addLayout(scan_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.scan_label)
        layout.addWidget(self.heatmap, 1)
        layout.addWidget(self.grid_box)
        layout.addWidget(self.status)

    def mode(self) -> str:
        return str(self.mode_box.currentData())

    def show_ablation(self, ablation: Ablation) -> None:
        if ablation.empty:
            self.heads_label.setText(NOTHING)
        else:
            count = len(ablation.heads)
            self.heads_label.setText(f"<b>{count} head{'s' if count > 1 else ''} ablated</b> "
                                     f"({ablation.mode}): {escape(ablation.describe())}. "
                                     "Every panel shows the ablated model.")
        self.clear_button.setEnabled(not ablation.empty)

    def set_scanning(self, on: bool) -> None:
        self.scan_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)
        if on:
            self.progress.setValue(0)

    def show_scan(self, scan: AblationScan, tokens: tuple[str, ...], style: str) -> None:
        self.heatmap.show_scan(scan)
        piece = display_piece(tokens[scan.position], style) if scan.position < len(tokens) else ""
        target = display_piece(scan.target_token, style)
        strongest = ", ".join(f"{layer}.{head} {delta:+.3f}"
                              for layer, head, delta in scan.strongest(3))
        self.scan_label.setText(
            f"Δ log p(<code>{escape(target)}</code>) after token #{scan.position} "
            f"<code>{escape(piece)}</code> (p = {scan.base_prob:.2%}), {scan.mode} ablation, "
            f"each head alone. Most needed: {escape(strongest)}. Click a cell to select the head.")
        self.grid_box.setEnabled(True)

    def say(self, text: str, error: bool = False) -> None:
        safe = escape(text)
        self.status.setText(f"<span style='color:#8a1f11'>{safe}</span>" if error else safe)

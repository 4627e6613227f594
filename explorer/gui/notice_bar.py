"""The strip above the attention panel: what the panels show, and errors over it.

The strip's height is fixed at construction (two lines of text), whatever it shows, so a
message never pushes the panels below it down and no control moves under the pointer.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QWidget

from explorer.gui.widgets import ElidedLabel

LINES = 2
STYLES = {
    "idle": "background:#f3f4f6; color:#4b5563;",
    "source": "background:#e0ecfb; color:#1d3f73;",
    "stale": "background:#fff4d6; color:#7a5200;",
}


def _elide_lines(label: QLabel, text: str, lines: int) -> str:
    """``text`` cut with "…" so that, wrapped at the label's width, it fits ``lines`` lines."""
    width = max(label.width(), 50)
    metrics = label.fontMetrics()
    if metrics.boundingRect(0, 0, width, 10_000, Qt.TextWordWrap, text).height() <= metrics.lineSpacing() * lines + 2:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that still fits
        middle = (low + high + 1) // 2
        candidate = text[:middle].rstrip() + "…"
        fits = metrics.boundingRect(0, 0, width, 10_000, Qt.TextWordWrap, candidate).height()
        if fits <= metrics.lineSpacing() * lines + 2:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "…"


class ErrorBanner(QWidget):
    """A dismissable red message (never a blocking dialog). Inside a NoticeBar it covers the
    notice while shown; the whole text is its tooltip when it had to be shortened."""

    def __init__(self) -> None:
        super().__init__()
        self.setAutoFillBackground(True)
        self.setAttribute(Qt.WA_StyledBackground, True)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.PlainText)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.label.setMinimumWidth(50)
        self.close_button = QPushButton("Dismiss")
        self.close_button.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 8, 2)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button)
        self.setStyleSheet("background:#fde2e1; color:#8a1f11;")
        self.message = ""
        self.hide()

    def show_message(self, text: str) -> None:
        self.message = text
        self.label.setToolTip(text)
        self.label.setText(text)
        self.show()
        self.raise_()
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self.message:
            self.label.setText(_elide_lines(self.label, self.message, LINES))


class NoticeBar(QWidget):
    """Fixed-height strip: a notice (idle / source / stale) with an optional *Copy to editor*
    button, and the ErrorBanner stacked over it."""

    copy_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.notice_row = QWidget()
        self.notice_row.setAttribute(Qt.WA_StyledBackground, True)
        self.notice = ElidedLabel("")
        self.notice.setObjectName("panels-notice")
        self.copy_button = QPushButton("Copy to editor")
        self.copy_button.setToolTip("Put the text the panels show into the prompt editor")
        self.copy_button.clicked.connect(self.copy_requested)
        self.copy_button.hide()
        row = QHBoxLayout(self.notice_row)
        row.setContentsMargins(8, 2, 8, 2)
        row.addWidget(self.notice, 1)
        row.addWidget(self.copy_button)
        self.error = ErrorBanner()
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.notice_row, 0, 0)
        grid.addWidget(self.error, 0, 0)
        self.kind = "idle"
        lines = self.fontMetrics().lineSpacing() * LINES + 8
        self.setFixedHeight(max(lines, self.copy_button.sizeHint().height() + 6,
                                self.error.close_button.sizeHint().height() + 6))
        self.show_notice("idle", "")

    def show_notice(self, kind: str, text: str, copy: bool = False) -> None:
        """kind: "idle" (panels show the editor's prompt), "source" (they show another text)
        or "stale" (a newer run is pending)."""
        self.kind = kind
        self.notice_row.setStyleSheet(STYLES[kind])
        self.notice.setText(text)
        self.copy_button.setVisible(copy)

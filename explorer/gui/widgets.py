"""Small widgets whose size never follows their content (so the window never grows by itself)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

MIN_ELIDED_WIDTH = 40


class ElidedLabel(QLabel):
    """One line of plain text, cut with "…" when it does not fit; the full text is the tooltip.

    Its minimum width is small and fixed: long text never widens the window."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.PlainText)
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Preferred)  # shrinks to 40 px
        self._full = ""
        self._note = ""
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt naming
        self._full = text
        self.setToolTip(self._note or text)
        super().setText(text)
        self.update()

    def set_note(self, note: str) -> None:
        """A tooltip that outlives later ``setText`` calls (empty: the full text again)."""
        self._note = note
        self.setToolTip(note or self._full)

    def full_text(self) -> str:
        return self._full

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt naming
        return QSize(MIN_ELIDED_WIDTH, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt naming
        hint = super().sizeHint()
        return QSize(min(hint.width(), 400), hint.height())

    def shown_text(self) -> str:
        """The text as drawn at the current width (elided or whole)."""
        margins = self.contentsMargins()
        width = self.width() - margins.left() - margins.right()
        return self.fontMetrics().elidedText(self._full, Qt.ElideRight, max(width, 0))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt naming
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.contentsRect(), int(self.alignment() | Qt.AlignVCenter), self.shown_text())


class DimOverlay(QWidget):
    """A translucent veil over ``target`` (mouse clicks pass through): "out of date"."""

    def __init__(self, target: QWidget, alpha: int = 150) -> None:
        super().__init__(target)
        self.target = target
        self.color = QColor(255, 255, 255, alpha)
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.setObjectName("dim-overlay")
        target.installEventFilter(self)
        self.hide()

    def set_dimmed(self, dimmed: bool) -> None:
        if dimmed:
            self.setGeometry(self.target.rect())
            self.raise_()
        self.setVisible(dimmed)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt naming
        if watched is self.target and event.type() == QEvent.Resize:
            self.setGeometry(self.target.rect())
        elif watched is self.target and event.type() == QEvent.ChildAdded and self.isVisible():
            self.raise_()
        return False

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt naming
        QPainter(self).fillRect(self.rect(), self.color)

"""The prompt as a strip of token chips; click or arrow keys select a token."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.core.selection import Selection
from explorer.core.tokens import display_piece
from explorer.core.types import RunResult

CHIP_STYLE = """
QListWidget { background: palette(base); }
QListWidget::item { border: 1px solid #9aa5b1; border-radius: 4px; padding: 2px 6px; margin: 2px; }
QListWidget::item:selected { background: #ffcf40; color: black; border: 1px solid #c47f00; }
"""


def chip_tooltip(result: RunResult, index: int) -> str:
    start, end = (int(v) for v in result.offsets[index])
    span = "special token (no text span)" if start < 0 else f"characters {start}–{end}"
    text = "" if start < 0 else f"\ntext: {result.prompt[start:end]!r}"
    return (f"#{index}  id {int(result.token_ids[index])}\npiece: {result.tokens[index]!r}\n"
            f"{span}{text}")


class TokensPanel(QWidget):
    token_selected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chips = QListWidget()
        self.chips.setObjectName("token-chips")
        self.chips.setFlow(QListView.LeftToRight)
        self.chips.setWrapping(True)
        self.chips.setResizeMode(QListView.Adjust)
        self.chips.setUniformItemSizes(False)
        self.chips.setSelectionMode(QAbstractItemView.SingleSelection)
        self.chips.setSpacing(1)
        self.chips.setTextElideMode(Qt.ElideNone)
        self.chips.setStyleSheet(CHIP_STYLE)
        font = QFont("monospace")
        font.setStyleHint(QFont.Monospace)
        self.chips.setFont(font)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.chips)
        self.chips.currentRowChanged.connect(self._on_row_changed)
        self._updating = False

    def sizeHint(self) -> QSize:
        return QSize(600, 110)

    def show_result(self, result: RunResult) -> None:
        self._updating = True
        try:
            self.chips.clear()
            style = result.model_info.piece_style
            for i, piece in enumerate(result.tokens):
                text = display_piece(piece, style)
                item = QListWidgetItem(text)
                width = self.chips.fontMetrics().horizontalAdvance(text) + 22
                item.setSizeHint(QSize(width, self.chips.fontMetrics().height() + 12))
                item.setToolTip(chip_tooltip(result, i))
                item.setData(Qt.UserRole, i)
                if result.offsets[i, 0] < 0:
                    item.setForeground(QColor("#7a4fd6"))
                self.chips.addItem(item)
        finally:
            self._updating = False

    def show_selection(self, selection: Selection) -> None:
        if selection.token == self.chips.currentRow() or self.chips.count() == 0:
            return
        self._updating = True
        try:
            self.chips.setCurrentRow(selection.token)
            self.chips.scrollToItem(self.chips.item(selection.token))
        finally:
            self._updating = False

    def _on_row_changed(self, row: int) -> None:
        if not self._updating and row >= 0:
            self.token_selected.emit(row)

    def chip_text(self, index: int) -> str:
        return self.chips.item(index).text()

"""The prompt as a strip of token chips; click or arrow keys select a token.

A list model and a painting delegate, not one widget per token: the strip lays out 8,000
chips in batches and paints only the visible ones, and it scrolls to the selection. Chips
can carry a heat colour per token (``set_token_heat``, e.g. attribution scores).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QEvent,
    QModelIndex,
    QObject,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from explorer.core.selection import Selection
from explorer.core.tokens import display_piece
from explorer.core.types import RunResult

SPECIAL_COLOR = QColor("#7a4fd6")
BORDER_COLOR = QColor("#9aa5b1")
SELECTED_FILL = QColor("#ffcf40")
SELECTED_BORDER = QColor("#c47f00")
WHITE, BLACK = QColor("white"), QColor("black")
BORDER_PEN, SELECTED_PEN = QPen(BORDER_COLOR, 1), QPen(SELECTED_BORDER, 2)
CHIP_PADDING = 12
HEAT_ROLE = Qt.UserRole + 1
MEASURE_AHEAD = 250
"""Chips measured at once beyond the one the list asks for (its layout batch)."""


def chip_tooltip(result: RunResult, index: int) -> str:
    start, end = (int(v) for v in result.offsets[index])
    span = "special token (no text span)" if start < 0 else f"characters {start}–{end}"
    text = "" if start < 0 else f"\ntext: {result.prompt[start:end]!r}"
    return (f"#{index}  id {int(result.token_ids[index])}\npiece: {result.tokens[index]!r}\n"
            f"{span}{text}")


def heat_color(value: float, scale: float, signed: bool) -> QColor:
    """White -> red for positive values, white -> blue for negative ones (signed data)."""
    if not np.isfinite(value) or scale <= 0:
        return QColor("white")
    x = float(min(1.0, abs(value) / scale))
    if value >= 0 or not signed:
        return QColor(255, int(255 * (1 - 0.75 * x)), int(255 * (1 - 0.75 * x)))
    return QColor(int(255 * (1 - 0.75 * x)), int(255 * (1 - 0.5 * x)), 255)


class TokenModel(QAbstractListModel):
    """One row per token: readable piece, tooltip, special flag and optional heat."""

    def __init__(self) -> None:
        super().__init__()
        self.result: RunResult | None = None
        self.texts: list[str] = []
        self.special: list[bool] = []  # no text span in the prompt (BOS, separators)
        self.heat: np.ndarray | None = None
        self._heat_scale = 1.0
        self._signed = False
        self._fills: dict[int, QColor] = {}  # row -> heat colour, filled as chips are painted

    def set_result(self, result: RunResult) -> None:
        self.beginResetModel()
        self.result = result
        style = result.model_info.piece_style
        self.texts = [display_piece(p, style) for p in result.tokens]
        self.special = (np.asarray(result.offsets)[:, 0] < 0).tolist()
        self.heat = None
        self._fills.clear()
        self.endResetModel()

    def fill(self, row: int) -> QColor | None:
        """Chip ``row``'s heat colour (None without heat)."""
        if self.heat is None or row >= len(self.heat):
            return None
        colour = self._fills.get(row)
        if colour is None:
            colour = self._fills[row] = heat_color(float(self.heat[row]), self._heat_scale, self._signed)
        return colour

    def set_heat(self, values: np.ndarray | None) -> None:
        self.heat = None if values is None else np.asarray(values, dtype=np.float32)
        self._fills.clear()
        if self.heat is not None:
            finite = self.heat[np.isfinite(self.heat)]
            self._heat_scale = float(np.abs(finite).max()) if finite.size else 1.0
            self._signed = bool(finite.size and finite.min() < 0)
        # paint-only data: the view repaints (no dataChanged, which would lay 8,000 chips out again)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.texts)

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole) -> Any:
        row = index.row()
        if not index.isValid() or not 0 <= row < len(self.texts) or self.result is None:
            return None
        if role == Qt.DisplayRole:
            return self.texts[row]
        if role == Qt.ToolTipRole:
            tip = chip_tooltip(self.result, row)
            if self.heat is not None and row < len(self.heat):
                tip += f"\nscore: {float(self.heat[row]):.4g}"
            return tip
        if role == Qt.ForegroundRole:
            return SPECIAL_COLOR if self.special[row] else None
        if role == HEAT_ROLE:
            return self.fill(row)
        return None


class ChipDelegate(QStyledItemDelegate):
    """Paints a token as a rounded chip: heat or selection fill, border, text.

    It reads the TokenModel's lists directly: a chip asked the model for its text, colour
    and flags through ``index.data`` four times, about 30 µs each from C++ into Python,
    which made a chip cost 0.3 ms to paint and a strip of visible chips tens of ms."""

    def __init__(self, model: TokenModel, parent: Any = None) -> None:
        super().__init__(parent)
        self.model = model
        self._sizes: dict[tuple[str, str], QSize] = {}  # (font, text) -> chip size
        self._row_sizes: list[QSize] = []  # chips 0..n-1 measured so far (the model's texts)
        model.modelAboutToBeReset.connect(self.forget_sizes)  # before the list lays out again

    def forget_sizes(self) -> None:
        """Measure the chips again as the list lays them out (new texts, or a new font)."""
        self._row_sizes = []

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        # the list asks for every chip, twice, while it lays the strip out in batches: the
        # chips are measured a batch ahead, and each call only looks its size up
        row = index.row()
        if row >= len(self._row_sizes):
            self._measure(option, row + MEASURE_AHEAD)
        sizes = self._row_sizes
        return sizes[row] if 0 <= row < len(sizes) else QSize()

    def _measure(self, option: QStyleOptionViewItem, stop: int) -> None:
        """Measure chips up to ``stop`` in ``option``'s font (each distinct text once)."""
        font, metrics = option.font.key(), option.fontMetrics
        if len(self._sizes) > 100_000:
            self._sizes.clear()
        height = metrics.height() + 10
        sizes, texts = self._row_sizes, self.model.texts
        for text in texts[len(sizes):stop]:
            size = self._sizes.get((font, text))
            if size is None:
                size = QSize(metrics.horizontalAdvance(text) + CHIP_PADDING + 6, height)
                self._sizes[(font, text)] = size
            sizes.append(size)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        row = index.row()
        if not 0 <= row < len(self.model.texts):
            return
        selected = bool(option.state & QStyle.State_Selected)
        rect: QRect = option.rect.adjusted(2, 2, -2, -2)
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing, True)
        painter.setBrush(SELECTED_FILL if selected else (self.model.fill(row) or WHITE))
        painter.setPen(SELECTED_PEN if selected else BORDER_PEN)
        painter.drawRoundedRect(rect, 4, 4)
        painter.setPen(SPECIAL_COLOR if self.model.special[row] else BLACK)
        painter.drawText(rect, Qt.AlignCenter, self.model.texts[row])
        painter.restore()


class TokensPanel(QWidget):
    token_selected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = TokenModel()
        self.chips = QListView()
        self.chips.setObjectName("token-chips")
        self.chips.setModel(self.model)
        self.chips.setItemDelegate(ChipDelegate(self.model, self.chips))
        self.chips.setFlow(QListView.LeftToRight)
        self.chips.setWrapping(True)
        self.chips.setResizeMode(QListView.Adjust)
        self.chips.setLayoutMode(QListView.Batched)
        self.chips.setBatchSize(MEASURE_AHEAD)
        self.chips.setUniformItemSizes(False)
        self.chips.setSelectionMode(QAbstractItemView.SingleSelection)
        self.chips.setSpacing(0)
        self.chips.setTextElideMode(Qt.ElideNone)
        font = QFont("monospace")
        font.setStyleHint(QFont.Monospace)
        self.chips.setFont(font)
        self.chips.installEventFilter(self)  # a new font: the chips are measured again
        self.heat_label = QLabel("")
        self.heat_label.setWordWrap(True)
        self.heat_label.setMinimumWidth(1)
        self.heat_label.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.chips, 1)
        layout.addWidget(self.heat_label)
        self.chips.selectionModel().currentRowChanged.connect(self._on_row_changed)
        self._updating = False
        # long strips are laid out in batches between events: scroll once the chip has a
        # place, as soon as a batch gives the strip more height (and, should no batch come,
        # on a timer)
        self._scroll_row = -1
        self._scroll_timer = QTimer(self, singleShot=True, interval=20)
        self._scroll_timer.timeout.connect(self._scroll_when_laid_out)
        self.chips.verticalScrollBar().rangeChanged.connect(lambda *_: self._scroll_when_laid_out())

    def sizeHint(self) -> QSize:
        return QSize(600, 110)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if watched is self.chips and event.type() == QEvent.Type.FontChange:
            self.chips.itemDelegate().forget_sizes()
        return False

    def show_result(self, result: RunResult) -> None:
        self._scroll_row = -1  # a chip of the run before
        self._updating = True
        try:
            self.model.set_result(result)
            self.set_token_heat(None)
        finally:
            self._updating = False

    def show_selection(self, selection: Selection) -> bool:
        """Select ``selection.token``'s chip; False when it is selected already."""
        if selection.token == self.current_token() or self.count() == 0:
            return False
        self._updating = True
        try:
            index = self.model.index(min(selection.token, self.count() - 1))
            self.chips.setCurrentIndex(index)
        finally:
            self._updating = False
        self._scroll_row = index.row()
        self._scroll_when_laid_out()
        return True

    def _scroll_when_laid_out(self) -> None:
        """Scroll to the pending chip once it has a place and the scroll range reaches it.
        A batch can place a chip before the list grows its range (it did so only when the
        layout was done, at 6,001 chips): the chip then stays pending, and the next
        ``rangeChanged`` scrolls to it."""
        row = self._scroll_row
        if not 0 <= row < self.count():
            return
        if not self.chip_rect(row).isValid():
            self._scroll_timer.start()  # not placed yet: look again in a moment
            return
        self.chips.scrollTo(self.model.index(row), QAbstractItemView.EnsureVisible)
        if self.chips.viewport().rect().intersects(self.chip_rect(row)):
            self._scroll_row = -1

    def _on_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not self._updating and current.isValid():
            self._scroll_row = -1  # the user's chip: no older one to scroll to
            self.token_selected.emit(current.row())

    # -- reading what is shown (tests, other panels) ---------------------------------------
    def count(self) -> int:
        return self.model.rowCount()

    def current_token(self) -> int:
        index = self.chips.currentIndex()
        return index.row() if index.isValid() else -1

    def chip_text(self, index: int) -> str:
        return self.model.texts[index]

    def chip_rect(self, index: int) -> QRect:
        """Where chip ``index`` is drawn, in the list viewport's coordinates."""
        return self.chips.visualRect(self.model.index(index))

    def shows_selection(self) -> bool:
        """The selected chip has its place and is in view (a long strip is laid out in
        batches, and scrolled to the chip once the chip is laid out); True when none is."""
        row = self.current_token()
        if row < 0:
            return True
        rect = self.chip_rect(row)
        return rect.isValid() and self.chips.viewport().rect().intersects(rect)

    # -- heat ----------------------------------------------------------------------------------
    def set_token_heat(self, values: np.ndarray | None, label: str = "") -> None:
        """Colour each chip by float32[T] (white -> red, and blue for negative values);
        None clears."""
        self.model.set_heat(values)
        self.heat_label.setVisible(values is not None and bool(label))
        self.heat_label.setText(label)
        self.chips.viewport().update()

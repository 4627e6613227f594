"""Small pyqtgraph helpers shared by the panels."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import overload

import pyqtgraph as pg
from PySide6.QtCore import QCoreApplication, QEvent, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPicture
from PySide6.QtWidgets import QGraphicsRectItem, QGraphicsWidget, QWidget

from explorer.core.tokens import display_piece

_configured = False


def configure_pyqtgraph() -> None:
    """Global pyqtgraph options, set once before any plot is created."""
    global _configured
    if not _configured:
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="w", foreground="k")
        _configured = True


class ClickableImage(pg.ImageItem):
    """An ImageItem that reports the pixel (column x, row y) under a left click, and under a
    Ctrl+left click separately (``pixel_ctrl_clicked``)."""

    pixel_clicked = Signal(float, float)
    pixel_ctrl_clicked = Signal(float, float)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - Qt naming
        if ev.button() == Qt.MouseButton.LeftButton:
            pos = ev.pos()
            if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
                self.pixel_ctrl_clicked.emit(pos.x(), pos.y())
            else:
                self.pixel_clicked.emit(pos.x(), pos.y())
            ev.accept()
        else:
            super().mouseClickEvent(ev)


def settle_plots(widget: QWidget) -> None:
    """Let the pyqtgraph views inside ``widget`` apply their new ranges now.

    A view box applies a new range (and an axis its new ticks) when the scene is about to
    be painted; the change then asks for a second paint of the whole view. Settled before
    Qt paints, a panel is painted once."""
    for view in _views(widget):
        view.scene().prepareForPaint()


def ready_to_paint(widget: QWidget) -> None:
    """Do now what painting ``widget``'s pyqtgraph views would otherwise start anew.

    Besides a new range (``settle_plots``), an axis lays out its tick labels while it is
    painted, and labels wider than the last ones widen the axis: the plots are laid out
    again and painted a second time (measured at 2,048 tokens: the positional panel
    painted twice, 15 + 27 ms, in one GUI block). Here the axes record their pictures (by
    painting into a scratch picture: ``AxisItem.paint`` records once and then only plays
    what it recorded), the layouts they changed are applied (those of ``widget`` and of
    the items in its scenes, not the whole window's), and the scene's queued report of
    what changed is delivered, so the paint that follows is the only one. ``PanelStages``
    calls it in a turn of its own before the paint turn: it holds most of the paint's
    cost."""
    views = _views(widget)
    for _ in range(_MAX_LAYOUT_PASSES):  # a wider axis lays the plot out anew, which
        settle_plots(widget)  # clears the pictures of its axes
        if not _record_axes(views):
            break
        for target in [widget, *(item for view in views for item in view.scene().items()
                                 if isinstance(item, QGraphicsWidget))]:
            QCoreApplication.sendPostedEvents(target, QEvent.Type.LayoutRequest)
    for view in views:
        QCoreApplication.sendPostedEvents(view.scene(), QEvent.Type.MetaCall)


_MAX_LAYOUT_PASSES = 6
"""Record, lay out, record again: a panel's axes settle in two to four passes."""


def has_plots(widget: QWidget) -> bool:
    """True when ``widget`` is or holds a pyqtgraph view (``ready_to_paint`` has work)."""
    return bool(_views(widget))


def _views(widget: QWidget) -> list[pg.GraphicsView]:
    views = widget.findChildren(pg.GraphicsView)
    return [widget, *views] if isinstance(widget, pg.GraphicsView) else views


def _record_axes(views: list[pg.GraphicsView]) -> int:
    """Record the picture of every shown axis that has none; how many were recorded."""
    axes = [item for view in views for item in view.items()
            if isinstance(item, pg.AxisItem) and item.isVisible() and item.picture is None]
    for axis in axes:
        scratch = QPicture()
        painter = QPainter(scratch)
        try:
            axis.paint(painter, None, None)
        finally:
            painter.end()
    return len(axes)


def lean_axes(view: pg.GraphicsView) -> None:
    """Major ticks only on the axes in ``view`` (pyqtgraph adds two finer levels), and no
    SI prefix.

    An axis lays out and draws its ticks again whenever its range changes: 3.6 ms with the
    finer levels, 1.8 ms without (measured on an idle machine; four times as much while
    the worker holds the interpreter lock), and a run changes the range of every axis.
    Axes with ticks set by hand (token labels) have one level anyway.

    Nor do they pick an SI prefix (our axes count tokens and positions, and have no
    units): with it, each range change set the label's rich text again, 24 times in one
    run's hand-over to the positional panel (8 of its 35 ms at 4,096 tokens)."""
    for item in view.scene().items():
        if isinstance(item, pg.AxisItem):
            item.setStyle(maxTickLevel=0)
            item.enableAutoSIPrefix(False)


def blank_axes(*axes: pg.AxisItem) -> None:
    """No numbers on axes that have nothing to count yet: before the first run a plot's
    default range (-1 to 1, say "layer -0.5") would read as data. ``axis.setTicks(None)``
    (or ticks set by hand) brings them back."""
    for axis in axes:
        axis.setTicks([[]])


def highlight_rect(color: str, alpha: int = 60, width: float = 0.0) -> QGraphicsRectItem:
    rect = QGraphicsRectItem(0, 0, 0, 0)
    fill = QColor(color)
    fill.setAlpha(alpha)
    rect.setBrush(QBrush(fill))
    pen = QPen(QColor(color))
    pen.setWidthF(width)
    pen.setCosmetic(True)
    rect.setPen(pen if width else QPen(QColor(0, 0, 0, 0)))
    rect.setZValue(10)
    rect.setAcceptedMouseButtons(Qt.MouseButton.NoButton)  # clicks go to the image below
    return rect


def strided_ticks(labels: list[str], max_labels: int = 40, offset: float = 0.5) -> list[tuple[float, str]]:
    """Tick (position, label) pairs, showing every n-th label when there are many."""
    stride = max(1, math.ceil(len(labels) / max_labels))
    return [(i + offset, labels[i]) for i in range(0, len(labels), stride)]


def position_ticks(first: float, last: float, labels: Sequence[str], max_labels: int = 40
                   ) -> list[tuple[float, str]]:
    """Ticks for the visible token range [first, last]: every token's label when at most
    ``max_labels`` fit (the caller measures the axis in pixels), every n-th label up to
    ``max_labels`` * 5 visible tokens, and plain positions beyond (labels would not be
    readable)."""
    n = len(labels)
    lo, hi = max(0, int(math.floor(first))), min(n, int(math.ceil(last)) + 1)
    span = hi - lo
    max_labels = max(1, max_labels)
    if span <= 0:
        return []
    if span <= max_labels:
        return [(i + 0.5, labels[i]) for i in range(lo, hi)]
    if span <= max_labels * 5:
        stride = math.ceil(span / max_labels)
        return [(i + 0.5, labels[i]) for i in range(lo - lo % stride, hi, stride) if i >= lo]
    step = nice_step(span / max(2, min(10, max_labels)))
    return [(i + 0.5, str(i)) for i in range(lo - lo % step, hi, step) if i >= lo]


def labels_that_fit(pixels: float, label_pixels: float, gap: float = 4.0) -> int:
    """How many labels of ``label_pixels`` (plus a ``gap``) fit along ``pixels``."""
    return max(1, int(pixels // max(1.0, label_pixels + gap)))


def nice_step(raw: float) -> int:
    """1, 2, 5, 10, 20, 50, … at or above ``raw``."""
    if raw <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return int(factor * magnitude)
    return int(10 * magnitude)


def short_label(text: str, limit: int = 12) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ShortLabels(Sequence[str]):
    """The axis labels of a run's tokens (``display_piece``, then ``short_label``), made
    when a tick asks for one: a 32,768-token prompt's two label lists took the window's
    thread 12-14 ms to build whole, and an axis shows at most a few hundred."""

    def __init__(self, pieces: Sequence[str], style: str) -> None:
        self.pieces, self.style = pieces, style

    def __len__(self) -> int:
        return len(self.pieces)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self._label(p) for p in self.pieces[index]]
        return self._label(self.pieces[index])

    def _label(self, piece: str) -> str:
        return short_label(display_piece(piece, self.style))


def escape(text: str) -> str:
    """Text for a Qt rich-text label: <, > and & escaped (quotes kept, they are not markup)."""
    return html.escape(text, quote=False)

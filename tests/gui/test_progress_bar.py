"""The window's progress bars paint with the rest of the window, never inside setValue."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QProgressBar

from explorer.gui.progress_bar import ProgressBar


class PaintCounter(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.paints = 0

    def eventFilter(self, _watched, event) -> bool:  # noqa: N802
        if event.type() == QEvent.Paint:
            self.paints += 1
        return False


def filled_fraction(bar: QProgressBar) -> float:
    """How much of the bar's middle row is drawn, judged from the pixels: the groove is
    white (Fusion), the chunk is not."""
    image = bar.grab().toImage()
    y = image.height() // 2
    groove = image.pixel(image.width() - 3, y)
    inner = range(1, image.width() - 1)
    return sum(image.pixel(x, y) != groove for x in inner) / len(inner)


def shown_bar(qtbot, cls):
    bar = cls()
    bar.setRange(0, 100)
    bar.setTextVisible(False)
    bar.resize(300, 20)
    qtbot.addWidget(bar)
    bar.show()
    qtbot.waitExposed(bar)
    counter = PaintCounter()
    bar.installEventFilter(counter)
    return bar, counter


def test_set_value_schedules_the_paint_instead_of_painting(qtbot):
    bar, counter = shown_bar(qtbot, ProgressBar)
    QApplication.processEvents()
    counter.paints = 0
    bar.setValue(80)
    assert counter.paints == 0  # Qt's own bar paints here (checked below)
    qtbot.waitUntil(lambda: counter.paints > 0)
    assert bar.value() == 80
    assert 0.7 < filled_fraction(bar) < 0.9
    bar.setValue(20)
    assert 0.1 < filled_fraction(bar) < 0.3


def test_plain_qprogressbar_repaints_inside_set_value(qtbot):
    """What ProgressBar avoids (if Qt changes this, the subclass can go)."""
    bar, counter = shown_bar(qtbot, QProgressBar)
    QApplication.processEvents()
    counter.paints = 0
    bar.setValue(80)
    assert counter.paints > 0


def test_a_hidden_or_frozen_bar_still_takes_its_value(qtbot):
    bar, counter = shown_bar(qtbot, ProgressBar)
    bar.setUpdatesEnabled(False)
    bar.setValue(60)
    assert bar.value() == 60 and not bar.updatesEnabled()
    bar.setUpdatesEnabled(True)
    qtbot.waitUntil(lambda: counter.paints > 0)
    assert 0.5 < filled_fraction(bar) < 0.7

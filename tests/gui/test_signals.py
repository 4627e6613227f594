"""Guard against PySide6 6.12.0's Signal.emit() reference leak (aborts after a few thousand)."""

import sys

from PySide6.QtCore import QObject, Signal


class Emitter(QObject):
    fired = Signal(int, bool)


def test_twenty_thousand_emits(qtbot):
    emitter = Emitter()
    count = {"n": 0}
    emitter.fired.connect(lambda i, flag: count.__setitem__("n", count["n"] + 1))
    before = sys.getrefcount(True)
    for i in range(20000):
        emitter.fired.emit(i, True)
    assert count["n"] == 20000
    assert sys.getrefcount(True) - before < 1000  # no leak of a reference per emit

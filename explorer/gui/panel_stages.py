"""Hand a run to the panels one panel per event-loop turn.

Showing a long run touches every panel (token chips, maps, bars, positional table) and
then paints them all. Done in one go, the window stopped answering for 0.3–0.5 s at
2,048 tokens. Staged, each panel takes the run in its own turn and is painted before the
next one starts, so input and timers are served in between.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

Stage = tuple[str, Callable[[], None]]


class PanelStages(QObject):
    """A queue of named stages, run one per event-loop turn.

    ``start`` replaces what is queued (a newer run makes the older stages moot);
    ``pending(name)`` says whether a panel still waits for its stage; ``flush`` runs the
    rest now (closing, exporting)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: list[Stage] = []
        self._done: Callable[[], None] | None = None
        # a timer, not a queued call: Qt delivers posted events (the paint request among
        # them) before timers, so each stage is painted before the next one runs
        self._timer = QTimer(self, singleShot=True, interval=0)
        self._timer.timeout.connect(self._next)

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    def pending(self, name: str) -> bool:
        return any(stage == name for stage, _ in self._queue)

    def start(self, stages: list[Stage], done: Callable[[], None] | None = None) -> None:
        self._queue = list(stages)
        self._done = done
        self._timer.start()

    def flush(self) -> None:
        while self._queue:
            self._next()

    def _next(self) -> None:
        if not self._queue:
            return
        _, run = self._queue.pop(0)
        try:
            run()
        finally:
            if self._queue:
                self._timer.start()
            elif self._done is not None:
                done, self._done = self._done, None
                done()

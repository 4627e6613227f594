"""Hand a run to the panels one panel per event-loop turn.

Showing a long run touches every panel (token chips, maps, bars, positional table) and
then paints them all. Done in one go, the window stopped answering for 0.3–0.5 s at
2,048 tokens. Staged, each panel takes the run in one turn, is made ready to paint (its
plots' axes laid out) in the next and painted in the one after, so input and timers are
served in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QWidget

PAINT = "paint"
READY = "ready"
TURN_MS = 1
"""Milliseconds between turns: other timers that are due run in between."""


class Stage(NamedTuple):
    name: str
    run: Callable[[], None]
    widget: QWidget | None = None  # the panel the stage changes (painted in turns after it)


class PanelStages(QObject):
    """A queue of named stages, run one per event-loop turn.

    A stage that names its panel (``widget``) changes the panel with its updates off, and
    the panel is made ready to paint (``before_paint``) and painted in turns of their own
    right after. ``start`` replaces what is queued (a newer run makes the older stages
    moot); ``pending(name)`` says whether a panel still waits for its stage,
    ``painted(panel)`` whether it has taken and painted what was queued for it; ``flush``
    runs the rest now (exporting, a screenshot); ``cancel`` drops them (closing).
    ``busy_changed`` says when turns start and when the last one is done."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None,
                 before_paint: Callable[[QWidget], None] | None = None,
                 wants_ready: Callable[[QWidget], bool] | None = None) -> None:
        """``before_paint(panel)`` runs in a turn of its own before a panel's paint turn,
        for the panels ``wants_ready(panel)`` says need it (default: every panel), and
        again at the start of the paint turn (cheap when nothing changed in between)."""
        super().__init__(parent)
        self._before_paint = before_paint
        self._wants_ready = wants_ready
        self._queue: list[Stage] = []
        self._reported_busy = False
        self._done: Callable[[], None] | None = None
        self._frozen: list[QWidget] = []  # panels changed, not painted yet
        # a timer, not a queued call, started when a turn (and its paint, see _thaw_one)
        # is over. One millisecond, not zero: timers that fell due during the turn (the
        # window's own timers, a heartbeat) run before the next turn
        self._timer = QTimer(self, singleShot=True, interval=TURN_MS)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._next)

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    def pending(self, name: str) -> bool:
        return any(stage.name == name for stage in self._queue)

    def painted(self, panel: QWidget) -> bool:
        """No stage queued changes or paints ``panel``, a widget inside it or one that
        holds it (a frozen widget always has its paint queued): whatever it was handed
        is painted. (Also true of a panel never handed anything.)"""
        def touches(widget: QWidget | None) -> bool:
            return widget is not None and (
                widget is panel or panel.isAncestorOf(widget) or widget.isAncestorOf(panel))

        return not any(touches(stage.widget) or touches(getattr(stage.run, "widget", None))
                       for stage in self._queue)

    def start(self, stages: Iterable[Stage | tuple], done: Callable[[], None] | None = None) -> None:
        """Queue ``stages`` ((name, run) or (name, run, widget)) in place of what is queued;
        ``done`` is called after the last one."""
        self._thaw()  # panels of replaced stages are painted as they are
        self._queue = [Stage(*stage) for stage in stages]
        self._done = done
        self._timer.start()
        self._report_busy()

    def cancel(self) -> None:
        """Drop what is queued (``done`` is not called); frozen panels are thawed."""
        self._timer.stop()
        self._queue = []
        self._done = None
        self._thaw()
        self._report_busy()

    def flush(self) -> None:
        while self._queue:
            self._next()

    def paint_in_turns(self, widgets: list[QWidget]) -> None:
        """Paint ``widgets`` (already changed) one per turn, in this order, instead of all
        in this one. While stages run, the paints go first in their queue, or right after
        the paint of a frozen panel that holds them (its paint would take them along)."""
        fresh = [widget for widget in widgets if widget not in self._frozen]
        paints = [self._paint_stages(widget) for widget in fresh]
        if not self.busy:
            if paints:
                self.start([stage for stages in paints for stage in stages])  # (thaws nothing)
        else:
            first: list[Stage] = []
            after: dict[int, list[Stage]] = {}  # id of a panel's paint stage -> paints
            for stages, widget in zip(paints, fresh, strict=True):
                holder = self._holder_paint(widget)
                (first if holder is None else after.setdefault(id(holder), [])).extend(stages)
            queue = first
            for stage in self._queue:
                queue += [stage, *after.get(id(stage), [])]
            self._queue = queue
        for widget in fresh:
            self._freeze(widget)

    def _holder_paint(self, widget: QWidget) -> Stage | None:
        """The queued paint of a frozen panel that contains ``widget``."""
        for stage in self._queue:
            owner = getattr(stage.run, "widget", None)
            if stage.name == PAINT and owner is not None and owner.isAncestorOf(widget):
                return stage
        return None

    def _report_busy(self) -> None:
        if self.busy != self._reported_busy:
            self._reported_busy = self.busy
            self.busy_changed.emit(self.busy)

    def _freeze(self, widget: QWidget) -> None:
        # frozen on its own even inside a frozen panel: thawing the panel leaves it frozen
        if not widget.testAttribute(Qt.WidgetAttribute.WA_ForceUpdatesDisabled):
            widget.setUpdatesEnabled(False)
            self._frozen.append(widget)

    def _paint_stages(self, widget: QWidget) -> list[Stage]:
        """The turns that paint ``widget``: its ``before_paint`` (when there is one; it can
        take as long as the paint itself), then the paint."""
        paint = Stage(PAINT, self._thaw_one(widget))
        before_paint = self._before_paint
        if before_paint is None or not self._wants_ready_for(widget):
            return [paint]

        def ready() -> None:
            if widget in self._frozen:  # (a paint that ran early, see flush, is done)
                before_paint(widget)
        return [Stage(READY, ready), paint]

    def _wants_ready_for(self, widget: QWidget) -> bool:
        return self._wants_ready is None or self._wants_ready(widget)

    def _thaw_one(self, widget: QWidget) -> Callable[[], None]:
        def thaw() -> None:
            if widget in self._frozen:
                try:
                    if self._before_paint is not None and self._wants_ready_for(widget):
                        self._before_paint(widget)  # again, should anything have changed
                        # since its turn (cheap if nothing did)
                finally:  # (a panel is never left frozen, even if that fails)
                    self._frozen.remove(widget)
                    widget.setUpdatesEnabled(True)
                # painted in this turn, so the next stage's timer is armed after the paint:
                # armed before it, it came due ahead of timers that fell due during the
                # paint, and the paint and the next stage made one block
                widget.repaint()
        thaw.widget = widget  # type: ignore[attr-defined]  # read by _holder_paint
        return thaw

    def _thaw(self) -> None:
        while self._frozen:
            self._frozen.pop().setUpdatesEnabled(True)

    def _next(self) -> None:
        if not self._queue:
            return
        name, run, widget = self._queue.pop(0)
        try:
            if widget is not None:
                self._freeze(widget)
                self._queue[:0] = self._paint_stages(widget)
            run()
        finally:
            if self._queue:
                self._timer.start()
            else:
                self._thaw()
                self._report_busy()
                if self._done is not None:
                    done, self._done = self._done, None
                    done()

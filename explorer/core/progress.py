"""Task state handed to long-running work: progress reports and cooperative cancellation.

The work is a plain function taking a ``TaskState``; the GUI worker and the CLI
supply their own callbacks, tests supply a recording one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from explorer.core.errors import Cancelled

ProgressCallback = Callable[[float, str], None]
"""Called with (fraction done in [0, 1], short human-readable stage)."""


def _no_progress(fraction: float, message: str) -> None:
    return None


def _never_cancelled() -> bool:
    return False


def throttled(report: ProgressCallback, interval: float = 0.1,
              clock: Callable[[], float] | None = None) -> ProgressCallback:
    """``report`` passed on when its message changes (a new stage, a new layer), when it
    reaches 1.0 (so a bar still ends full), and otherwise at most once per ``interval``
    seconds. Long work that reports every chunk of a stage then does not flood the GUI
    thread with repaints."""
    now = clock or time.monotonic
    last_time = [-float("inf")]
    last_message: list[str | None] = [None]

    def forward(fraction: float, message: str) -> None:
        moment = now()
        if fraction >= 1.0 or message != last_message[0] or moment - last_time[0] >= interval:
            last_time[0], last_message[0] = moment, message
            report(fraction, message)

    return forward


@dataclass
class TaskState:
    """Progress sink plus a cancel flag, checked by the work at safe points."""

    report: ProgressCallback = field(default=_no_progress)
    is_cancel_requested: Callable[[], bool] = field(default=_never_cancelled)

    def progress(self, fraction: float, message: str) -> None:
        self.check_cancelled()
        self.report(min(max(fraction, 0.0), 1.0), message)

    def check_cancelled(self) -> None:
        if self.is_cancel_requested():
            raise Cancelled("cancelled by the user")

    def sub(self, start: float, end: float) -> TaskState:
        """A task state whose [0, 1] maps onto [start, end] of this one."""
        span = end - start

        def report(fraction: float, message: str) -> None:
            self.report(start + span * fraction, message)

        return TaskState(report=report, is_cancel_requested=self.is_cancel_requested)

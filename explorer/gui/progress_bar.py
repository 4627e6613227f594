"""A progress bar that repaints with the rest of the window.

``QProgressBar.setValue`` repaints the bar at once (``repaint()``, not ``update()``)
whenever the shown percentage changes, and a synchronous repaint paints every other
widget of the window that is waiting to be painted too. A run's hand-over to the panels
spent about 0.1 s inside such a call. This bar changes its value with updates off, then
schedules its paint like any widget. (Only ``setValue``: ``setRange`` to a range that
excludes the value still resets the bar, and ``reset`` repaints at once.)
"""

from __future__ import annotations

from PySide6.QtWidgets import QProgressBar


class ProgressBar(QProgressBar):
    def setValue(self, value: int) -> None:  # noqa: N802 - Qt naming
        if not self.updatesEnabled():
            super().setValue(value)
            return
        self.setUpdatesEnabled(False)
        try:
            super().setValue(value)
        finally:
            self.setUpdatesEnabled(True)  # schedules a paint (update())

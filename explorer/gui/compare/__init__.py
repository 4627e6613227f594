"""Few-shot comparison: a separate window opened from Tools → Few-shot comparison….

``install(window)`` adds the menu action and returns the ``CompareFeature``; the window
itself is built on first use.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction, QKeySequence

SHORTCUT = "Ctrl+Shift+F"


class CompareFeature(QObject):
    """Owns the comparison window and its part of a saved session."""

    def __init__(self, main_window: Any) -> None:
        super().__init__(main_window)
        self.main_window = main_window
        self.window: Any = None
        self._pending: dict[str, Any] = {}
        self.action = QAction("Few-shot comparison…", main_window)
        self.action.setShortcut(QKeySequence(SHORTCUT))
        self.action.setToolTip("Zero-, one- and few-shot prompts side by side, and accuracy against k")
        self.action.triggered.connect(self.open)
        main_window.tools_menu.addAction(self.action)
        main_window.extras_providers.append(self)
        main_window.installEventFilter(self)

    def open(self) -> Any:
        """Show (building on first use) and return the CompareWindow."""
        if self.window is None:
            from explorer.gui.compare.window import CompareWindow

            self.window = CompareWindow(self.main_window)
            if self._pending:
                self.window.apply_state(self._pending)
                self._pending = {}
        self.window.show()
        self.window.raise_()
        return self.window

    def session_extras(self) -> dict[str, Any]:
        state = self.window.state() if self.window is not None else dict(self._pending)
        return {"comparison": state} if state else {}

    def apply_session_extras(self, extras: dict[str, Any]) -> None:
        state = extras.get("comparison") or {}
        if not isinstance(state, dict) or not state:
            return
        if self.window is None:
            self._pending = dict(state)
        else:
            self.window.apply_state(state)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt naming
        if watched is self.main_window and event.type() == QEvent.Close and self.window is not None:
            self.window.close()  # the comparison window goes with the main window
        return False


def install(window: Any) -> CompareFeature:
    return CompareFeature(window)

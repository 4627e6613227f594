"""A feature's dock tabbed beside the positional panel, with its Tools menu entry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QWidget

BESIDE = "Positional encoding"


def add_tool_dock(window: Any, panel: QWidget, title: str, object_name: str, action_text: str,
                  shortcut: str, on_visible: Callable[[bool], None] | None = None) -> QDockWidget:
    """Put ``panel`` in a dock at the bottom, tabbed with the positional panel (which stays
    in front), register it in ``window.docks`` and add a Tools entry that shows and raises
    it with ``shortcut``. ``on_visible(bool)`` follows the dock's visibility (panels skip
    work while hidden)."""
    dock = QDockWidget(title, window)
    dock.setObjectName(object_name)
    dock.setWidget(panel)
    window.addDockWidget(Qt.BottomDockWidgetArea, dock)
    beside = window.docks.get(BESIDE)
    if beside is not None:
        window.tabifyDockWidget(beside, dock)
        beside.raise_()
    window.docks[title] = dock
    if on_visible is not None:
        dock.visibilityChanged.connect(on_visible)

    def show() -> None:
        dock.show()
        dock.raise_()

    action = QAction(action_text, window)
    action.setShortcut(QKeySequence(shortcut))
    action.triggered.connect(show)
    window.tools_menu.addAction(action)
    return dock


def dock_showing(dock: QDockWidget | None) -> bool:
    """Whether a dock's contents are on screen. A dock tabbed behind another still says
    ``isVisible()``; its visible region is empty. No dock (a panel used on its own): True."""
    return dock is None or (dock.isVisible() and not dock.visibleRegion().isEmpty())

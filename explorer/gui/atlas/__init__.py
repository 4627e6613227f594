"""The head atlas dock (Tools ▸ Head atlas): every head's scores in a sortable table, the
attention grid coloured by a score, and the induction probe (see ``panel``)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget

from explorer.gui.atlas.panel import AtlasPanel

DOCK_TITLE = "Head atlas"
SHORTCUT = "Ctrl+Shift+H"


def install(window: Any) -> AtlasPanel:
    """Add the Head atlas dock, tabbed with the positional panel at the bottom."""
    panel = AtlasPanel(window)
    dock = QDockWidget(DOCK_TITLE, window)
    dock.setObjectName("dock-head-atlas")
    dock.setWidget(panel)
    window.addDockWidget(Qt.BottomDockWidgetArea, dock)
    beside = window.docks.get("Positional encoding")
    if beside is not None:
        window.tabifyDockWidget(beside, dock)
        beside.raise_()
    window.docks[DOCK_TITLE] = dock
    panel.dock = dock
    dock.visibilityChanged.connect(panel.on_visible)

    def show() -> None:
        dock.show()
        dock.raise_()

    action = QAction("Head &atlas", window)
    action.setShortcut(QKeySequence(SHORTCUT))
    action.triggered.connect(show)
    window.tools_menu.addAction(action)
    return panel

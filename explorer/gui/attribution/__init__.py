"""Attribution: which input tokens matter for the next token at the selected position.

``install(window)`` adds the "Attribution" dock (a tab next to the positional encoding),
its Tools-menu entry and returns the ``AttributionPanel``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget

from explorer.gui.attribution.panel import AttributionPanel

DOCK_TITLE = "Attribution"
SHORTCUT = "Ctrl+Shift+I"


def install(window: Any) -> AttributionPanel:
    panel = AttributionPanel(window)
    dock = QDockWidget(DOCK_TITLE, window)
    dock.setObjectName("dock-attribution")
    dock.setWidget(panel)
    window.addDockWidget(Qt.BottomDockWidgetArea, dock)
    neighbour = window.docks.get("Positional encoding")
    if neighbour is not None:
        window.tabifyDockWidget(neighbour, dock)
        neighbour.raise_()
    window.docks[DOCK_TITLE] = dock
    panel.dock = dock
    dock.visibilityChanged.connect(panel.set_shown)

    def show() -> None:
        dock.show()
        dock.raise_()

    action = QAction("&Attribution (which tokens matter)", window)
    action.setShortcut(QKeySequence(SHORTCUT))
    action.triggered.connect(show)
    window.tools_menu.addAction(action)
    return panel

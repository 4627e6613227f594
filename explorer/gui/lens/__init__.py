"""The logit-lens dock (Tools ▸ Logit lens): every layer's next-token guesses for the
selected token and a layer × position heatmap, linked to the selection (see ``panel``)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget

from explorer.gui.lens.panel import LensPanel

DOCK_TITLE = "Logit lens"
SHORTCUT = "Ctrl+Shift+L"


def install(window: Any) -> LensPanel:
    """Add the Logit lens dock, tabbed with the positional panel at the bottom."""
    panel = LensPanel(window)
    dock = QDockWidget(DOCK_TITLE, window)
    dock.setObjectName("dock-logit-lens")
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

    action = QAction("&Logit lens", window)
    action.setShortcut(QKeySequence(SHORTCUT))
    action.triggered.connect(show)
    window.tools_menu.addAction(action)
    return panel

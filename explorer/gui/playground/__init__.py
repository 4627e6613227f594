"""The generation playground: a dock with the prompt, sampling controls, Generate / Stop
and the streamed, inspectable completion (see ``panel.Playground``)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget

from explorer.gui.playground.panel import Playground

DOCK_TITLE = "Playground"


def install(window: Any) -> Playground:
    """Add the Playground dock (left side, hidden until opened), its Tools-menu entries and
    session hooks."""
    panel = Playground(window)
    dock = QDockWidget(DOCK_TITLE, window)
    dock.setObjectName("dock-playground")
    dock.setWidget(panel)
    window.addDockWidget(Qt.LeftDockWidgetArea, dock)
    window.docks[DOCK_TITLE] = dock
    panel.dock = dock
    dock.hide()  # opened from Tools ▸ Playground; keeps the default window laptop-sized

    def focus_editor(opened: bool) -> None:
        if opened:
            dock.raise_()
            panel.editor.setFocus()

    # one Tools entry: the dock's own show/hide action (checked while the dock is open)
    toggle = dock.toggleViewAction()
    toggle.setText("&Playground (generate text)")
    toggle.setShortcut(QKeySequence("Ctrl+Shift+P"))
    toggle.triggered.connect(focus_editor)
    menu = window.tools_menu
    menu.addAction(toggle)
    for text, slot, keys in (("&Generate", panel.generate, "Ctrl+Shift+G"),
                             ("&Stop generating", panel.stop, None)):
        action = QAction(text, window)
        if keys:
            action.setShortcut(QKeySequence(keys))
        action.triggered.connect(slot)
        menu.addAction(action)
    window.extras_providers.append(panel)
    return panel

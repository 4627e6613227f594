"""Head ablation in the window: Ctrl+click heads in the attention grid to knock them out
(zero or mean), every panel then shows the ablated model, the probability panel the plain
distribution beside it, and an ablation scan colours a layer x head heatmap. The few-shot
comparison window gets a scan that targets a label word (``fewshot.LabelScan``)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget

from explorer.gui.ablation.dock import AblationDock
from explorer.gui.ablation.feature import DOCK_TITLE, AblationFeature


def install(window: Any) -> AblationFeature:
    """Add the Ablation dock (right side, hidden until opened or a head is Ctrl+clicked),
    its Tools-menu entries, and the label scan of the few-shot window."""
    panel = AblationDock()
    dock = QDockWidget(DOCK_TITLE, window)
    dock.setObjectName("dock-ablation")
    dock.setWidget(panel)
    window.addDockWidget(Qt.RightDockWidgetArea, dock)
    window.docks[DOCK_TITLE] = dock
    dock.hide()
    feature = AblationFeature(window, panel)

    def show() -> None:
        dock.show()
        dock.raise_()

    menu = window.tools_menu
    for text, slot, keys in (("&Ablation (knock heads out)", show, "Ctrl+Shift+A"),
                             ("Ablation &scan", feature.start_scan, None),
                             ("&Clear ablation", feature.clear, None)):
        action = QAction(text, window)
        if keys:
            action.setShortcut(QKeySequence(keys))
        action.triggered.connect(slot)
        menu.addAction(action)
    QTimer.singleShot(0, lambda: _follow_compare(window))
    return feature


def _follow_compare(window: Any) -> None:
    """Give the few-shot comparison window its label scan when it is opened."""
    compare = getattr(window, "features", {}).get("explorer.gui.compare")
    if compare is None:
        return
    from explorer.gui.ablation.fewshot import attach

    compare.action.triggered.connect(lambda: attach(compare.window) if compare.window else None)

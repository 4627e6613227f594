"""The logit-lens dock (Tools ▸ Logit lens): every layer's next-token guesses for the
selected token and a layer × position heatmap, linked to the selection (see ``panel``)."""

from __future__ import annotations

from typing import Any

from explorer.gui.lens.panel import LensPanel
from explorer.gui.tool_dock import add_tool_dock

DOCK_TITLE = "Logit lens"
SHORTCUT = "Ctrl+Shift+L"


def install(window: Any) -> LensPanel:
    """Add the Logit lens dock, tabbed with the positional panel at the bottom."""
    panel = LensPanel(window)
    panel.dock = add_tool_dock(window, panel, DOCK_TITLE, "dock-logit-lens", "&Logit lens", SHORTCUT,
                               panel.on_visible)
    return panel

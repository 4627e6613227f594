"""The head atlas dock (Tools ▸ Head atlas): every head's scores in a sortable table, the
attention grid coloured by a score, and the induction probe (see ``panel``)."""

from __future__ import annotations

from typing import Any

from explorer.gui.atlas.panel import AtlasPanel
from explorer.gui.tool_dock import add_tool_dock

DOCK_TITLE = "Head atlas"
SHORTCUT = "Ctrl+Shift+H"


def install(window: Any) -> AtlasPanel:
    """Add the Head atlas dock, tabbed with the positional panel at the bottom."""
    panel = AtlasPanel(window)
    panel.dock = add_tool_dock(window, panel, DOCK_TITLE, "dock-head-atlas", "Head &atlas", SHORTCUT,
                               panel.on_visible)
    return panel

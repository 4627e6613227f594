"""Attribution: which input tokens matter for the next token at the selected position.

``install(window)`` adds the "Attribution" dock (a tab next to the positional encoding),
its Tools-menu entry and returns the ``AttributionPanel``.
"""

from __future__ import annotations

from typing import Any

from explorer.gui.attribution.panel import AttributionPanel
from explorer.gui.tool_dock import add_tool_dock

DOCK_TITLE = "Attribution"
SHORTCUT = "Ctrl+Shift+I"


def install(window: Any) -> AttributionPanel:
    panel = AttributionPanel(window)
    panel.dock = add_tool_dock(window, panel, DOCK_TITLE, "dock-attribution", "&Attribution (which tokens matter)", SHORTCUT,
                               panel.set_shown)
    return panel

"""Shared pyqtgraph helpers, as the window's panels use them."""

import pyqtgraph as pg

from tests.gui.conftest import load_and_run


def test_the_panels_axes_draw_major_ticks_only(qtbot, window):
    """Every axis that picks its own ticks in the map, its curves, the bars and the
    positional plots draws one level of ticks; pyqtgraph's default draws finer levels
    over the same range (each level is laid out and drawn again when the range moves)."""
    load_and_run(qtbot, window, "tiny-llama", "The cat sat on the mat and the dog sat on the log")
    qtbot.waitUntil(lambda: not window.stages.busy, timeout=5000)
    views = [window.attention_panel.map.map_widget, window.attention_panel.map.curves_widget,
             window.probability_panel.plot_widget, window.positional_panel.plots]
    checked = 0
    for view in views:
        for axis in (item for item in view.scene().items() if isinstance(item, pg.AxisItem)):
            if axis._tickLevels is not None or not axis.isVisible():
                continue  # ticks set by hand (token labels), or hidden
            low, high = axis.range
            pixels = max(axis.width(), axis.height())
            assert len(axis.tickValues(low, high, pixels)) == 1, (view, axis.orientation)
            default = pg.AxisItem(axis.orientation)
            assert len(default.tickValues(low, high, pixels)) > 1
            checked += 1
    assert checked >= 5

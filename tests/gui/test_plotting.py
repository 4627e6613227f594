"""Shared pyqtgraph helpers, as the window's panels use them."""

import pyqtgraph as pg
import pytest
from PySide6.QtWidgets import QApplication

from explorer.core.tokens import display_piece
from explorer.gui.panel_stages import PanelStages
from explorer.gui.plotting import ShortLabels, position_ticks, ready_to_paint, short_label
from tests.gui.conftest import PaintLog, load_and_run


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


def _plot_with_ticks(qtbot) -> tuple[pg.GraphicsLayoutWidget, pg.PlotItem]:
    plots = pg.GraphicsLayoutWidget()
    qtbot.addWidget(plots)
    plot = plots.addPlot()
    plot.plot([0, 1], [0, 1])
    plot.setRange(xRange=(0, 1), yRange=(0, 9), padding=0)
    plots.resize(400, 300)
    plots.show()
    qtbot.waitExposed(plots)
    qtbot.wait(100)  # painted with narrow tick labels
    return plots, plot


@pytest.mark.parametrize("prepared", [True, False])
def test_a_panel_whose_tick_labels_widen_is_painted_once(qtbot, prepared):
    """Wider tick labels widen the axis, which lays the plot out again: without
    ``ready_to_paint`` in its paint turn the view is painted a second time."""
    plots, plot = _plot_with_ticks(qtbot)
    log: list[str] = []
    painted = PaintLog(log, "view")
    plots.viewport().installEventFilter(painted)
    left = plot.getAxis("left")
    width = left.width()
    stages = PanelStages(before_paint=ready_to_paint if prepared else None)
    stages.start([("plot", lambda: plot.setRange(yRange=(0, 9_000_000), padding=0), plots)])
    qtbot.waitUntil(lambda: not stages.busy, timeout=5000)
    qtbot.wait(200)  # a second paint, if one was asked for, comes within a few turns
    assert left.width() > width  # the labels did widen the axis
    if prepared:
        assert log == ["paint view"]
    else:  # what the window did before ready_to_paint
        assert log.count("paint view") >= 2


def test_a_range_change_leaves_the_axis_labels_text_alone(qtbot, window):
    """pyqtgraph's SI prefix sets an axis label's rich text again on every range change;
    the panels' axes (no units) do without it."""
    load_and_run(qtbot, window, "tiny-llama", "The cat sat on the mat")
    qtbot.waitUntil(lambda: not window.stages.busy, timeout=5000)
    plot = window.positional_panel.heat_plot
    left = plot.getAxis("left")
    assert left.label.isVisible()  # "position"
    texts: list[str] = []
    original = left.label.setHtml
    left.label.setHtml = lambda html: (texts.append(html), original(html))
    plot.setRange(yRange=(0, 5000), padding=0)
    assert texts == []
    assert left.labelText == "position" and left.autoSIPrefixScale == 1.0
    default = pg.PlotItem()
    default.setLabel("left", "position")
    default_texts: list[str] = []
    default_original = default.getAxis("left").label.setHtml
    default.getAxis("left").label.setHtml = lambda html: (default_texts.append(html), default_original(html))
    default.setRange(yRange=(0, 5000), padding=0)
    assert default_texts  # what pyqtgraph does by default


def test_ready_to_paint_leaves_no_layout_for_later(qtbot):
    """Done in one turn, it applies the layout the wider labels asked for and records the
    axes again, so the paint turn finds them ready (nothing left that clears them)."""
    plots, plot = _plot_with_ticks(qtbot)
    plots.setUpdatesEnabled(False)
    plot.setRange(yRange=(0, 9_000_000), padding=0)
    ready_to_paint(plots)
    QApplication.processEvents()  # what Qt would do before the paint turn
    axes = [plot.getAxis(side) for side in ("left", "bottom")]
    assert all(axis.picture is not None for axis in axes)
    plots.setUpdatesEnabled(True)


def test_short_labels_are_made_on_demand_like_the_whole_list():
    pieces = ["Ġthe", "Ġextraordinarily", "<0x0A>", "Ċ", "cat"] * 3
    whole = [short_label(display_piece(p, "byte_level")) for p in pieces]
    labels = ShortLabels(pieces, "byte_level")
    assert len(labels) == len(whole)
    assert [labels[i] for i in range(len(pieces))] == whole
    assert labels[-1] == whole[-1] and labels[3:9] == whole[3:9] and labels[::4] == whole[::4]
    assert labels[1] == "␣extraordin…"  # display_piece (a visible space), then short_label
    assert position_ticks(2, 7, labels, 10) == position_ticks(2, 7, whole, 10)

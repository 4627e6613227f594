"""Long prompts in the window: lazy runs, streamed thumbnails, a pooled overview with exact
zoomed windows, row/column curves, jump to token, and a token strip of thousands of chips."""

import dataclasses
import itertools
import math

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QWidget

from explorer.core.attention import head_map
from explorer.core.map_view import DIRECT_LIMIT
from explorer.core.thumbnails import layer_tiles, tile_origin
from explorer.core.tokens import display_piece
from explorer.gui.panels.attention_grid import UNDRAWN
from explorer.gui.plotting import short_label
from explorer.gui.run_view import GROUP_GAP, THUMBNAIL_CELL, THUMBNAIL_GAP
from tests.gui.conftest import PaintLog, load_and_run

LONG = "The cat sat on the mat. The dog sat on the log. " * 75  # ~1,200 tokens


@pytest.fixture
def long_view(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-llama-long", LONG)
    assert view.result.attention_mode == "lazy"  # auto: lazy from 1,024 tokens
    assert view.result.num_tokens > DIRECT_LIMIT
    return view


def tile_pixel(win, view, layer: int, head: int):
    """The colour drawn in the grid widget below the diagonal of tile (layer, head)."""
    grid = win.attention_panel.grid
    y, x = tile_origin(layer, head, view.cell, THUMBNAIL_GAP, GROUP_GAP, view.group_size)
    scene = grid.grid_image.mapToScene(QPointF(x + view.cell / 4, y + 3 * view.cell / 4))
    point = grid.grid_widget.mapFromScene(scene)
    return grid.grid_widget.grab().toImage().pixelColor(point)


def wait_for_thumbnails(qtbot, window):
    controller = window.controller
    qtbot.waitUntil(lambda: controller.view.complete(controller.selection.hide_first), timeout=60000)


def test_thumbnails_stream_in_and_equal_the_pooled_maps(qtbot, window, long_view):
    assert not long_view.complete(False) or long_view.filled[False]  # not drawn all at once
    wait_for_thumbnails(qtbot, window)
    mosaic = window.attention_panel.grid_image.image  # what is drawn: UNDRAWN for NaN
    assert not np.isnan(mosaic).any()
    assert (mosaic[: 3 * (long_view.cell + THUMBNAIL_GAP)] >= 0).any()
    tiles = layer_tiles(long_view.result, 2, THUMBNAIL_CELL)  # independent core computation
    c = long_view.cell
    for head in range(4):
        y, x = tile_origin(2, head, c, THUMBNAIL_GAP, GROUP_GAP, long_view.group_size)
        np.testing.assert_allclose(mosaic[y:y + c, x:x + c], np.nan_to_num(tiles[head], nan=UNDRAWN),
                                   atol=1e-6)
    assert window.attention_panel.grid.progress.value() == 3


def test_a_layer_of_thumbnails_is_painted_in_a_turn_after_it_arrives(qtbot, window, long_view):
    """Taking a layer into the mosaic and painting the grid made one block of 26-34 ms at
    4,096 tokens: the grid is painted in a turn of its own, with the layer drawn."""
    grid = window.attention_panel.grid
    log: list[str] = []
    painted = PaintLog(log, "grid")
    painted.setParent(grid.grid_widget)  # kept alive with the widget it watches
    grid.grid_widget.viewport().installEventFilter(painted)
    window.stages._timer.timeout.connect(lambda: log.append("turn"))
    window.controller.thumbnails_changed.connect(
        lambda *_: log.append("layer" if grid.updatesEnabled() else "layer, grid frozen"))
    wait_for_thumbnails(qtbot, window)
    qtbot.waitUntil(lambda: not window.stages.busy, timeout=5000)
    qtbot.wait(50)
    arrivals = [n for n, entry in enumerate(log) if entry.startswith("layer")]
    assert arrivals, log
    for n in arrivals:
        assert log[n] == "layer, grid frozen", log  # taken with its updates off ...
        after = log[n + 1:]
        assert "paint grid" in after, log
        assert "turn" in after[:after.index("paint grid")], log  # ... painted in a later turn
    assert grid.updatesEnabled()
    layers = long_view.result.model_info.layers
    assert tile_pixel(window, long_view, layers - 1, 0).name() != "#ffffff"  # the last layer


def test_a_layer_under_a_score_colouring_leaves_the_grid_as_drawn(qtbot, window, long_view):
    """The mosaic takes a layer that arrives while the grid is coloured by scores (drawn
    when they are cleared), but what is drawn did not change: nothing to paint."""
    grid = window.attention_panel.grid
    wait_for_thumbnails(qtbot, window)
    heads = long_view.result.model_info.heads
    grid.set_grid_scores(np.ones((long_view.layers, heads), np.float32), "test")
    assert not window.attention_panel.thumbnails_arrived(long_view, False, 0)
    grid.set_grid_scores(None)
    assert window.attention_panel.thumbnails_arrived(long_view, False, 0)


def test_the_long_map_is_a_labelled_pooled_overview_with_curves(qtbot, window, long_view):
    panel = window.attention_panel
    window.controller.select_head(1, 2)
    qtbot.waitUntil(lambda: panel.map.detail is not None and panel.map.detail.key.layer == 1
                    and panel.map.detail.key.head == 2, timeout=60000)
    detail = panel.map.detail
    t = long_view.result.num_tokens
    block = -(-t // DIRECT_LIMIT)
    assert detail.block == block and panel.shown_map.shape == (-(-t // block),) * 2
    assert f"max-pooled {block}×{block}-token blocks" in panel.map.status.text()
    assert t >= 1000  # the count has a thousands separator, as the editor's count does
    assert f"{t:,} tokens on tiny-llama-long" in window.notice_bar.notice.full_text()
    full = head_map(long_view.result, 1, 2)  # the exact map, for checking only
    r, c = 100, 37
    assert panel.shown_map[r, c] == pytest.approx(full[r * block:(r + 1) * block, c * block:(c + 1) * block].max(), abs=1e-6)
    window.controller.select_token(700)
    np.testing.assert_allclose(panel.map.row_curve.getData()[1], full[700], atol=1e-6)
    np.testing.assert_allclose(panel.map.column_curve.getData()[1], full[:, 700], atol=1e-6)
    assert panel.row_highlight.rect().top() == 700


def test_zooming_in_draws_the_window_exactly_with_token_labels(qtbot, window, long_view):
    panel = window.attention_panel
    qtbot.waitUntil(lambda: panel.map.detail is not None, timeout=60000)
    panel.map.map_plot.setRange(xRange=(500, 540), yRange=(600, 640), padding=0)
    qtbot.waitUntil(lambda: panel.map.window_image.isVisible(), timeout=60000)
    s = window.controller.selection
    rect = panel.map.window_image.mapRectToParent(panel.map.window_image.boundingRect())
    r0, c0 = int(rect.top()), int(rect.left())
    shown = panel.map.window_image.image
    expected = head_map(long_view.result, s.layer, s.head)[r0:r0 + shown.shape[0], c0:c0 + shown.shape[1]]
    np.testing.assert_allclose(shown, expected, atol=1e-6)
    # the window is the cells with any part in view, and the status names them
    (x0, x1), (y0, y1) = panel.map.visible_range()
    rows, cols = (math.floor(y0), math.ceil(y1)), (math.floor(x0), math.ceil(x1))
    assert (r0, c0) == (rows[0], cols[0]) and shown.shape == (rows[1] - rows[0], cols[1] - cols[0])
    assert panel.map.status.text() == (f"Exact values in view: queries #{rows[0]}–#{rows[1] - 1} × "
                                       f"keys #{cols[0]}–#{cols[1] - 1}.")
    qtbot.wait(300)  # the labels follow the settled range
    axis = panel.map.map_plot.getAxis("bottom")
    ticks = axis._tickLevels[0]
    assert len(ticks) >= 3 and all(not label.isdigit() for _, label in ticks)  # token pieces
    style = long_view.result.model_info.piece_style
    assert all(label == short_label(display_piece(long_view.result.key_labels[int(at)], style))
               for at, label in ticks)  # each the piece of the token under it
    panel.map.map_plot.setRange(yRange=(610, 616), padding=0)  # few enough rows for labels
    qtbot.wait(300)
    rows = panel.map.map_plot.getAxis("left")._tickLevels[0]
    assert len(rows) >= 2 and all(label == short_label(display_piece(long_view.result.tokens[int(at)], style))
                                  for at, label in rows)  # the query axis: the prompt's tokens
    # drawn side by side without overlapping: neighbours are at least their widths apart
    metrics = QFontMetrics(axis.style.get("tickFont") or panel.font())
    per_token = panel.map.map_plot.vb.boundingRect().width() / 40
    for (a, left), (b, right) in itertools.pairwise(ticks):
        apart = (b - a) * per_token
        assert apart >= (metrics.horizontalAdvance(left) + metrics.horizontalAdvance(right)) / 2
    panel.map.show_whole_map()  # zoomed out: the overview alone, and the status says so again
    qtbot.waitUntil(lambda: not panel.map.window_image.isVisible(), timeout=5000)
    assert panel.map.status.text().startswith("Overview: max-pooled")


def drawn_map_colour(panel, token_row: float, token_column: float):
    """The colour painted in the map widget at the centre of cell (row, column), in tokens."""
    plot = panel.map_plot
    scene = plot.vb.mapViewToScene(QPointF(token_column + 0.5, token_row + 0.5))
    point = panel.map_widget.mapFromScene(scene)
    return panel.map_widget.grab().toImage().pixelColor(point)


@pytest.mark.parametrize("window_from", ["at once", "the worker"])
def test_colour_in_view_scales_to_the_zoomed_weights(qtbot, window, long_view, monkeypatch, window_from):
    """Zoomed in on a long map, 'in view' spans the colours over the weights shown: the
    largest exact weight in view is drawn in the colour map's top colour. The exact window
    comes at once when cheap, else later from the worker; both ways."""
    if window_from == "the worker":
        monkeypatch.setattr("explorer.gui.controller.cheap_enough", lambda *_: False)
    panel = window.attention_panel.map
    # the mean overview: its blocks in view peak lower than the exact weights they pool
    panel.pooling_box.setCurrentIndex(panel.pooling_box.findData("mean"))
    qtbot.waitUntil(lambda: panel.detail is not None and panel.detail.key.how == "mean", timeout=60000)
    whole = panel.colorbar.levels()[1]
    panel.colour_box.setCurrentIndex(panel.colour_box.findData("view"))
    assert panel.colorbar.levels()[1] == pytest.approx(whole)  # the whole map in view: as auto
    panel.map_plot.setRange(xRange=(300, 340), yRange=(700, 740), padding=0)
    qtbot.waitUntil(lambda: panel.window_image.isVisible(), timeout=60000)
    qtbot.waitUntil(lambda: panel.colorbar.levels()[1] < whole, timeout=5000)
    s = window.controller.selection
    (x0, x1), (y0, y1) = panel.visible_range()  # the cells in view, worked out here
    r0, c0 = math.floor(y0), math.floor(x0)
    exact = head_map(long_view.result, s.layer, s.head)[r0:math.ceil(y1), c0:math.ceil(x1)]
    peak = exact.max()
    assert r0 > 0 and panel.colorbar.levels()[1] == pytest.approx(peak, abs=1e-6)
    assert tuple(panel.window_image.levels) == pytest.approx((0.0, peak), abs=1e-6)
    r, c = np.unravel_index(np.argmax(exact), exact.shape)
    top = panel.colorbar.colorMap().map(1.0, mode="qcolor")
    drawn = drawn_map_colour(panel, r0 + r, c0 + c)
    assert max(abs(drawn.red() - top.red()), abs(drawn.green() - top.green()),
               abs(drawn.blue() - top.blue())) <= 8, (drawn.name(), top.name())
    panel.map_plot.setRange(xRange=(0, 30), yRange=(0, 30), padding=0)  # the first query row in view
    qtbot.waitUntil(lambda: panel.window_image.isVisible() and panel.window_image.mapRectToParent(
        panel.window_image.boundingRect()).top() == 0, timeout=60000)
    (x0, x1), (y0, y1) = panel.visible_range()
    corner = head_map(long_view.result, s.layer, s.head)[:math.ceil(y1), :math.ceil(x1)]
    assert corner[0, 0] == pytest.approx(1.0) and corner[1:].max() < 0.999
    qtbot.waitUntil(lambda: panel.colorbar.levels()[1] == pytest.approx(corner[1:].max(), abs=1e-6),
                    timeout=5000)  # below the first row, as auto
    panel.map_plot.setRange(xRange=(300, 340), yRange=(700, 740), padding=0)
    panel._on_range_settled()  # settled before the window for this view can come
    if window_from == "the worker":  # the corner's window is still drawn, but not for this view
        mean_blocks = panel.detail.image[700 // panel.detail.block:-(-740 // panel.detail.block),
                                         300 // panel.detail.block:-(-340 // panel.detail.block)]
        assert panel.colorbar.levels()[1] == pytest.approx(float(mean_blocks.max()), abs=1e-7)
        assert panel.status.text().startswith("Computing the exact values of queries #700–#739")
    qtbot.waitUntil(lambda: panel.colorbar.levels()[1] == pytest.approx(peak, abs=1e-6), timeout=5000)
    panel.colour_box.setCurrentIndex(panel.colour_box.findData("auto"))
    assert panel.colorbar.levels()[1] == pytest.approx(whole)
    assert drawn_map_colour(panel, r0 + r, c0 + c) != drawn  # dimmer on the whole map's scale
    panel.colour_box.setCurrentIndex(panel.colour_box.findData("view"))
    panel.show_whole_map()  # zoomed out again: the overview's largest block below the first row
    qtbot.waitUntil(lambda: not panel.window_image.isVisible()
                    and panel.colorbar.levels()[1] == pytest.approx(whole), timeout=5000)
    # too wide for an exact window: the overview's blocks in view, worked out here
    panel.map_plot.setRange(xRange=(0, 1100), yRange=(602.3, 702.6), padding=0)
    (x0, x1), (y0, y1) = panel.visible_range()
    block = panel.detail.block
    blocks = panel.detail.image[math.floor(y0) // block:-(-math.ceil(y1) // block),
                                math.floor(x0) // block:-(-math.ceil(x1) // block)]
    assert block > 1 and blocks.max() < whole
    qtbot.waitUntil(lambda: panel.colorbar.levels()[1] == pytest.approx(float(blocks.max()), abs=1e-7),
                    timeout=5000)
    assert not panel.window_image.isVisible()


def test_panning_while_another_heads_map_is_computed_keeps_that_map_coming(qtbot, window, long_view,
                                                                            monkeypatch):
    """A pan asks for an exact window; while the map of a newly selected head is still being
    computed, that request must not supersede it (the map stayed dimmed on the old head)."""
    monkeypatch.setattr("explorer.gui.controller.cheap_enough", lambda *_: False)  # all from the worker
    panel = window.attention_panel.map
    qtbot.waitUntil(lambda: panel.detail is not None, timeout=60000)
    panel.map_plot.setRange(xRange=(300, 340), yRange=(700, 740), padding=0)
    qtbot.waitUntil(lambda: panel.window_image.isVisible(), timeout=30000)  # a window of the first head
    window.controller.select_head(1, 2)
    assert panel.detail.key.head != 2 and "Computing layer 1, head 2" in panel.status.text()
    assert panel.window_image.opacity() < 1 and panel.map_image.opacity() < 1  # both marked stale
    panel.map_plot.setRange(xRange=(500, 540), yRange=(600, 640), padding=0)
    panel._on_range_settled()  # the pan settles before the worker's map comes back
    qtbot.waitUntil(lambda: panel.detail.key.head == 2, timeout=30000)
    qtbot.waitUntil(lambda: panel.window_image.isVisible(), timeout=30000)  # then its window
    assert panel._drawn_window[0].head == 2 and panel.status.text().startswith("Exact values in view")
    assert panel.window_image.opacity() == 1 and panel.map_image.opacity() == 1


def test_the_whole_map_makes_only_the_labels_it_measures(qtbot, window, long_view, monkeypatch):
    """Zoomed out, the axes show positions: a range change makes at most the 400 labels
    the widest-label check measures, not one per token."""
    panel = window.attention_panel.map
    qtbot.waitUntil(lambda: panel.detail is not None, timeout=60000)
    made: list[str] = []

    def counting(piece: str, style: str = "byte_level") -> str:
        made.append(piece)
        return display_piece(piece, style)

    monkeypatch.setattr("explorer.gui.plotting.display_piece", counting)
    panel.show_whole_map()
    panel._on_range_settled()
    ticks = panel.map_plot.getAxis("bottom")._tickLevels[0]
    assert ticks and all(label.isdigit() for _, label in ticks)  # positions, not pieces
    assert 0 < len(made) <= 400 < long_view.result.num_tokens


def test_a_map_from_the_worker_is_painted_in_turns_map_then_curves(qtbot, window, long_view):
    """Its image with its axes and its curves with theirs are each a paint of 25-60 ms at
    8,192 tokens: they take separate event-loop turns."""
    panel, stages = window.attention_panel.map, window.stages
    qtbot.waitUntil(lambda: not stages.busy, timeout=5000)
    log: list[str] = []
    filters = [PaintLog(log, "map"), PaintLog(log, "curves")]
    panel.map_widget.viewport().installEventFilter(filters[0])
    panel.curves_widget.viewport().installEventFilter(filters[1])
    stages._timer.timeout.connect(lambda: log.append("turn"))
    window.controller.detail_ready.connect(lambda _detail: log.append("detail"))
    window.controller.select_head(1, 2)
    assert panel.detail is None or panel.detail.key.head != 2  # computed in the worker
    qtbot.waitUntil(lambda: panel.detail is not None and panel.detail.key.head == 2
                    and not stages.busy, timeout=30000)
    qtbot.wait(50)
    after = log[log.index("detail"):]
    assert "paint map" in after and "paint curves" in after, log
    first_map, first_curves = after.index("paint map"), after.index("paint curves")
    assert first_map < first_curves and "turn" in after[first_map:first_curves], after


def test_jump_to_token_selects_and_centres(qtbot, window, long_view):
    panel = window.attention_panel
    panel.map.jump_box.setValue(1100)
    panel.map.jump_button.click()
    assert window.controller.selection.token == 1100
    (x0, x1), (y0, y1) = panel.map.visible_range()
    assert x0 < 1100.5 < x1 and y0 < 1100.5 < y1 and x1 - x0 < 100
    assert window.tokens_panel.current_token() == 1100


def test_stopping_the_thumbnails_keeps_what_was_drawn(qtbot, window, long_view):
    controller = window.controller
    controller.cancel_thumbnails()
    grid = window.attention_panel.grid
    assert "stopped" in grid.progress.format() and not grid.cancel_button.isEnabled()
    qtbot.wait(200)  # layers already in flight may still land; the bar stays stopped
    assert "stopped" in grid.progress.format() or long_view.complete(False)


def test_a_stopped_worker_computes_no_further_layer(qtbot, long_view):
    """The worker itself: after Stop, the queued head returns at once and no later
    layer is computed; a new pass after resume draws the rest."""
    from explorer.gui.worker import EngineWorker

    worker = EngineWorker()
    arrived, computed = [], []

    def on_layer(run, hide, layer, tiles):
        arrived.append(layer)
        if layer == 0:
            worker.stop_thumbnails(7, False)  # Stop as soon as the first layer lands

    worker.thumbnails_ready.connect(on_layer)
    original = worker._thumbnail_head

    def counting(*args):
        computed.append(args[3:5])  # (layer, head)
        original(*args)

    worker._next_thumbnail.disconnect()
    worker._next_thumbnail.connect(counting, Qt.QueuedConnection)
    heads = long_view.result.model_info.heads
    worker.thumbnails(7, long_view.result, False, 0)  # head 0 of layer 0, the rest queued
    qtbot.waitUntil(lambda: arrived == [0])
    qtbot.wait(200)  # the queued head of layer 1 runs, sees the stop and returns
    assert arrived == [0]
    assert computed[: heads - 1] == [(0, h) for h in range(1, heads)]
    assert computed[heads - 1:] == [(1, 0)]  # layer 1 got no further than its first event
    assert worker._layer_tiles == {}  # the dropped layer's buffer is freed
    worker.resume_thumbnails(7, False)
    worker.thumbnails(7, long_view.result, False, 1)
    qtbot.waitUntil(lambda: arrived == [0, 1, 2])


def test_the_first_map_is_computed_with_the_run_ahead_of_the_rows(qtbot, monkeypatch):
    """The worker computes the map the window will ask for right after handing the run
    over, before it queues any next-token rows: the window's request, queued meanwhile,
    is answered with that map (once), not after a step of rows."""
    import explorer.core.map_view as map_view
    from explorer.core.map_view import MapKey, detail_map
    from explorer.gui.worker import EngineWorker
    from tests.gui.conftest import fake_load

    worker = EngineWorker(load_fn=fake_load)
    worker.load(1, "tiny-llama-long", {})
    views, maps, steps = [], [], []
    worker.run_finished.connect(lambda _id, view: views.append(view))
    worker.map_ready.connect(lambda _id, detail: maps.append(detail))
    worker._next_tokens_step.connect(lambda *_: steps.append(bool(worker._prefetched)))
    key = MapKey(1, 2, False, "max")
    worker.run(5, LONG, 5, "auto", None, key)
    result = views[0].result
    assert result.attention_mode == "lazy" and result.next_tokens_pending
    assert steps == [True]  # the rows were queued after the map was there
    expected = detail_map(result, key)

    def not_again(*_args, **_kwargs):
        raise AssertionError("computed again")

    monkeypatch.setattr(map_view, "detail_map", not_again)
    worker.detail(1, result, key)  # the window's request
    assert len(maps) == 1
    np.testing.assert_array_equal(maps[0].image, expected.image)
    failed = []
    worker.map_failed.connect(lambda _id, message: failed.append(message))
    worker.detail(2, result, key)  # kept for one request only: computed again
    assert failed and "computed again" in failed[0]
    monkeypatch.undo()
    worker.run(8, LONG, 5, "auto", None, key)
    other = dataclasses.replace(views[-1].result)  # equal, but not the run that was shown
    monkeypatch.setattr(map_view, "detail_map", not_again)
    worker.detail(3, other, key)
    assert len(failed) == 2 and len(maps) == 1  # computed for that result, not served
    views[-1] = views[0]
    worker.run_finished.connect(lambda *_: worker.supersede_runs(100))
    monkeypatch.undo()
    worker.run(9, LONG, 5, "auto", None, key)  # superseded while it is handed over
    assert worker._prefetched is None
    worker = EngineWorker(load_fn=fake_load)
    worker.load(1, "tiny-llama-long", {})
    worker.run(6, LONG, 5, "auto", None, MapKey(1, 0, True, "max"))
    assert worker._prefetched is not None
    worker.run(7, "", 5, "auto", None, None)  # a new run (failing here) drops it first
    assert worker._prefetched is None


def test_background_work_waits_while_the_window_takes_a_run(qtbot, monkeypatch):
    """Held (the window hands a run to its panels), a shown run's next-token rows make no
    step and map requests are still answered; released, the rows go on. A hold that is
    never released lets go after HOLD_LIMIT_S."""
    import explorer.gui.worker as worker_module
    from explorer.core.map_view import MapKey
    from explorer.gui.worker import EngineWorker
    from tests.gui.conftest import fake_load

    worker = EngineWorker(load_fn=fake_load)
    worker.load(1, "tiny-llama-long", {})
    views, maps, ready = [], [], []
    worker.run_finished.connect(lambda _id, view: views.append(view))
    worker.map_ready.connect(lambda _id, detail: maps.append(detail))
    worker.next_tokens_ready.connect(lambda _id, result: ready.append(result))
    polls, computed = [], []
    original = worker._fill_next_tokens

    def counting(request_id, pending):
        polls.append(request_id)
        if not hasattr(pending, "counted"):
            step = pending.step
            pending.step = lambda: computed.append(request_id) or step()
            pending.counted = True
        original(request_id, pending)

    worker._next_tokens_step.disconnect()
    worker._next_tokens_step.connect(counting, Qt.QueuedConnection)
    worker.hold_background(True)
    worker.run(5, LONG, 5, "auto", None, None)
    result = views[0].result
    assert result.next_tokens_pending
    pending_rows = int(np.isnan(result.actual_next_probs).sum())
    qtbot.wait(150)
    assert len(polls) > 3 and computed == [] and not ready  # polled, no rows computed
    worker.detail(1, result, MapKey(0, 1, False, "max"))  # maps are not held
    assert len(maps) == 1
    worker.hold_background(False)
    qtbot.waitUntil(lambda: bool(ready), timeout=30000)
    assert not ready[0].next_tokens_pending and pending_rows > 0
    ready.clear()
    assert computed  # the rows were computed once released
    monkeypatch.setattr(worker_module, "HOLD_LIMIT_S", 0.3)
    worker.hold_background(True)  # never released: the limit lets the rows go on
    worker.run(6, LONG, 5, "auto", None, None)
    qtbot.waitUntil(lambda: bool(ready), timeout=30000)
    worker.hold_background(False)


def test_the_window_holds_background_work_while_its_stages_run(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", "The cat sat on the mat")
    worker = window.controller.worker
    assert not worker._background_held()
    window.stages.start([("a", lambda: None), ("b", lambda: None)])
    assert worker._background_held()  # at once, from this thread
    qtbot.waitUntil(lambda: not window.stages.busy, timeout=5000)
    assert not worker._background_held()
    window.stages.start([("a", lambda: None)])
    window.stages.cancel()
    assert not worker._background_held()


def strip_result(tokens: tuple[str, ...]):
    """A result with only tokens (no attention, no next-token rows), for the token strip."""
    from explorer.core.types import ModelInfo, RunResult

    n = len(tokens)
    info = ModelInfo(name="m", architecture="A", layers=1, heads=1, kv_heads=1, hidden_size=4,
                     vocab_size=10, context_length=8192, positional_kind="none", causal=True)
    return RunResult(prompt="x" * n, token_ids=np.zeros(n, np.int64), tokens=tokens,
                     offsets=np.stack([np.arange(n), np.arange(n) + 1], 1), attentions=None,
                     topk_ids=np.zeros((n, 0)), topk_probs=np.zeros((n, 0)), topk_logits=np.zeros((n, 0)),
                     topk_tokens=[[] for _ in range(n)], positional=np.zeros((n, 0)),
                     positional_kind="none", model_info=info, attention_mode="none")


def test_the_token_strip_holds_8000_tokens_without_8000_widgets(qtbot):
    from explorer.core.selection import Selection
    from explorer.gui.panels.tokens_panel import TokensPanel

    n = 8000
    result = strip_result(tuple(f"t{i}" for i in range(n)))
    panel = TokensPanel()
    qtbot.addWidget(panel)
    panel.resize(600, 150)
    panel.show()
    panel.show_result(result)
    assert panel.count() == n
    assert len(panel.findChildren(QWidget)) < 40
    panel.show_selection(Selection(token=7777))
    qtbot.waitUntil(panel.shows_selection)
    assert panel.current_token() == 7777
    heat = np.linspace(-1, 1, n)
    panel.set_token_heat(heat, "test score")
    image = panel.chips.viewport().grab().toImage()
    chip = panel.chip_rect(7777)
    assert image.pixelColor(chip.left() + 5, chip.top() + 6).name() == "#ffcf40"  # selected
    other = panel.chip_rect(7776)
    color = image.pixelColor(other.left() + 5, other.top() + 6)
    assert color.red() > 200 and color.green() < 230  # a strong positive score is red
    panel.set_token_heat(-heat, "flipped")  # new scores: the chips' cached colours go
    image = panel.chips.viewport().grab().toImage()
    color = image.pixelColor(other.left() + 5, other.top() + 6)
    assert color.blue() > 200 and color.red() < 230  # now a strong negative score: blue


def shown_strip(qtbot, n: int):
    """A token strip of ``n`` chips, shown and handed its run (laid out in batches)."""
    from explorer.gui.panels.tokens_panel import TokensPanel

    panel = TokensPanel()
    qtbot.addWidget(panel)
    panel.resize(600, 150)
    panel.show()
    qtbot.waitExposed(panel)
    panel.show_result(strip_result(tuple(f"t{i}" for i in range(n))))
    return panel


def drawn_selected(panel, row: int) -> bool:
    """Chip ``row`` is drawn in the strip's viewport in the selection's colour."""
    chip = panel.chip_rect(row)
    image = panel.chips.viewport().grab().toImage()
    return image.pixelColor(chip.left() + 5, chip.top() + 6).name() == "#ffcf40"


def test_the_strip_scrolls_to_the_selection_in_the_layout_batch_that_places_it(qtbot):
    """A long strip is laid out in batches; it scrolls to the selected chip when a batch
    gives it a place, not on a later poll (the fallback timer is stopped here)."""
    from explorer.core.selection import Selection

    n = 3000
    panel = shown_strip(qtbot, n)
    panel.show_selection(Selection(token=n - 1))
    panel._scroll_timer.setInterval(10**6)  # the poll never fires within this test
    assert not panel.shows_selection()  # the chip has no place yet
    qtbot.waitUntil(panel.shows_selection, timeout=5000)
    assert drawn_selected(panel, n - 1)


def test_the_strip_reaches_a_chip_placed_before_the_scroll_range_grows(qtbot):
    """A batch can give a chip its place before the list makes its scroll range tall
    enough to show it (seen with Gemma 3 at 6,001 tokens: the range grew only when the
    layout was done): the strip scrolls to it once the range lets it, not to the end of
    the range it had."""
    from explorer.core.selection import Selection

    n = 6000
    panel = shown_strip(qtbot, n)
    panel.show_selection(Selection(token=4000))
    bar = panel.chips.verticalScrollBar()
    qtbot.waitUntil(lambda: panel.chip_rect(n - 1).isValid(), timeout=10000)  # laid out
    qtbot.waitUntil(panel.shows_selection, timeout=5000)
    assert drawn_selected(panel, 4000)
    assert 0 < bar.value() < bar.maximum()


def test_a_chip_the_user_clicks_while_the_strip_lays_out_is_where_it_stays(qtbot):
    """The strip waits to scroll to a selected chip not laid out yet; a chip the user
    clicks meanwhile replaces that wait (the strip jumped back to the older chip when the
    layout grew its range)."""
    from PySide6.QtCore import Qt

    from explorer.core.selection import Selection

    n = 6000
    panel = shown_strip(qtbot, n)
    qtbot.waitUntil(lambda: panel.chip_rect(5).isValid(), timeout=5000)
    panel.show_selection(Selection(token=4000))
    assert not panel.chip_rect(4000).isValid()  # placed later: the strip waits for it
    qtbot.mouseClick(panel.chips.viewport(), Qt.LeftButton, pos=panel.chip_rect(5).center())
    assert panel.current_token() == 5
    qtbot.waitUntil(lambda: panel.chip_rect(n - 1).isValid(), timeout=10000)  # laid out
    qtbot.wait(100)  # the range grows, the poll fires
    assert panel.shows_selection() and drawn_selected(panel, 5)
    assert panel.chips.verticalScrollBar().value() == 0


def test_each_chip_is_as_wide_as_its_text_after_a_new_run_and_a_new_font(qtbot):
    """The strip measures every chip once per run (the list asks for each size twice while
    it lays out): a new run's texts and a larger font still give chips that fit them."""
    from explorer.gui.panels.tokens_panel import CHIP_PADDING, TokensPanel

    panel = TokensPanel()
    qtbot.addWidget(panel)
    panel.resize(600, 150)
    panel.show()

    def drawn_widths() -> list[int]:
        return [panel.chip_rect(i).width() for i in range(panel.count())]

    def text_widths(texts: tuple[str, ...]) -> list[int]:
        metrics = panel.chips.fontMetrics()
        return [metrics.horizontalAdvance(text) + CHIP_PADDING + 6 for text in texts]

    for texts in (("a", "a wide piece", "b"), ("another wide piece", "x", "yy", "a")):
        panel.show_result(strip_result(texts))
        qtbot.waitUntil(lambda texts=texts: drawn_widths() == text_widths(texts), timeout=5000)
    before = drawn_widths()
    font = panel.chips.font()
    font.setPointSize(font.pointSize() * 2)
    panel.chips.setFont(font)
    qtbot.waitUntil(lambda: drawn_widths() == text_widths(texts), timeout=5000)
    assert all(after > width for after, width in zip(drawn_widths(), before, strict=True))


def test_a_long_run_after_a_short_one_shows_the_whole_map(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama-long", "The cat sat on the mat")
    view = load_and_run(qtbot, window, "tiny-llama-long", LONG)
    panel = window.attention_panel.map
    qtbot.waitUntil(lambda: panel.detail is not None and panel.detail.num_tokens == view.result.num_tokens,
                    timeout=60000)
    qtbot.wait(300)
    (x0, x1), (y0, y1) = panel.visible_range()
    n = view.result.num_tokens
    assert x0 <= 1 and x1 >= n - 1 and y0 <= 1 and y1 >= n - 1, ((x0, x1), (y0, y1), n)


def window_with_pending(qtbot, tmp_path, wrap):
    """A main window whose runs come back early (``analyze_first``), with the pending rows
    wrapped by ``wrap(pending)``."""
    from PySide6.QtCore import QSettings

    from explorer.backend.engine import analyze_first
    from explorer.gui.controller import Controller
    from explorer.gui.main_window import MainWindow
    from explorer.gui.plotting import configure_pyqtgraph
    from explorer.gui.worker import EngineWorker
    from tests.gui.conftest import fake_load

    configure_pyqtgraph()  # white backgrounds, as the app and the window fixture set

    def analyze_fn(model, prompt, top_k, task, attention="auto", ablation=None):
        first, pending = analyze_first(model, prompt, top_k=top_k, task=task, attention=attention)
        return first, None if pending is None else wrap(pending)

    controller = Controller(EngineWorker(load_fn=fake_load, analyze_fn=analyze_fn))
    win = MainWindow(controller, QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(win)
    win.resize(1400, 900)  # room for the grid's tiles to be looked at
    win.show()
    return win


def run_long(qtbot, win):
    from tests.gui.conftest import WAIT_MS

    with qtbot.waitSignal(win.controller.model_changed, timeout=WAIT_MS):
        win.load_model("tiny-llama-long")
    with qtbot.waitSignal(win.run_displayed, timeout=WAIT_MS,
                          check_params_cb=lambda v: v.result.prompt == LONG) as shown:
        win.prompt_panel.set_text(LONG)
        win.prompt_panel.run_now()
    return shown.args[0]


def gated(gate):
    """A wrapper class for the engine's pending rows that holds each step back until
    ``gate`` is set."""

    class Gated:
        def __init__(self, pending):
            self.pending = pending

        def step(self):
            gate.wait(60)
            return self.pending.step()

        def result(self):
            return self.pending.result()

    return Gated


def test_a_long_run_shows_the_last_bars_first_and_the_others_when_computed(qtbot, tmp_path):
    """The first panels come before every position's next-token row: the last token's bars
    are drawn at once, another token says it is still computing (and exports wait), and
    the bars after that token appear when the worker has the rows, in the same view."""
    import threading

    from tests.gui.conftest import WAIT_MS

    gate = threading.Event()
    complete = {}

    class Kept(gated(gate)):
        def result(self):
            complete["result"] = super().result()
            return complete["result"]

    win = window_with_pending(qtbot, tmp_path, Kept)
    controller = win.controller
    try:
        view = run_long(qtbot, win)
        first = view.result
        panel = win.probability_panel
        n = first.num_tokens
        assert first.next_tokens_pending and controller.selection.token == n - 1
        assert tile_pixel(win, view, 1, 2).name() == "#ffffff"  # no thumbnail yet: background
        np.testing.assert_allclose(panel.bars.opts["width"], first.topk_probs[n - 1, :12], atol=1e-7)
        assert len(panel.bars.opts["width"]) == 12
        controller.select_token(5)
        assert len(panel.bars.opts["width"]) == 0 and "still being computed" in panel.title.text()
        win._ask_path = lambda *args: pytest.fail("no file dialog while the rows are computing")
        win._export_npz()
        assert win.banner.isVisible() and "still being computed" in win.banner.message
        gate.set()
        qtbot.waitUntil(lambda: not controller.view.result.next_tokens_pending, timeout=WAIT_MS)
        assert controller.view is view and view.result is complete["result"]
        key = win.attention_panel.map.current_key()
        assert controller.detail(key) is not None  # the map cached for the first result stays
        done = view.result
        np.testing.assert_allclose(panel.bars.opts["width"], done.topk_probs[5, :12], atol=1e-7)
        ticks = panel.plot.getAxis("left")._tickLevels[0]
        assert len(ticks) == 12 and "still being computed" not in panel.title.text()
        assert f"rank {int(done.actual_next_ranks[5])}" in panel.actual.text()
        # thumbnails still land in the view the panels hold
        qtbot.waitUntil(lambda: view.complete(False) and not win.stages.busy, timeout=WAIT_MS)
        assert (win.attention_panel.grid_image.image >= 0).any()  # (painted in a turn after)
        drawn = tile_pixel(win, view, 1, 2)  # a colour of the map (viridis: never white)
        assert drawn.name() != "#ffffff" and drawn.alpha() == 255
    finally:
        gate.set()
        controller.shutdown()


def test_rows_that_cannot_be_computed_are_reported(qtbot, tmp_path):
    class Failing:
        def __init__(self, pending):
            self.pending = pending

        def step(self):
            raise MemoryError("no room for the logits")

    win = window_with_pending(qtbot, tmp_path, Failing)
    try:
        view = run_long(qtbot, win)
        qtbot.waitUntil(lambda: win.banner.isVisible(), timeout=10000)
        assert "could not be computed" in win.banner.message
        assert "no room for the logits" in win.banner.message
        assert view.result.next_tokens_pending  # the last token's bars stay shown
        panel = win.probability_panel
        assert len(panel.bars.opts["width"]) == 12
        win.controller.select_token(3)  # another token: no promise that never comes true
        assert "could not be computed" in panel.title.text()
        assert "run the prompt again" in panel.actual.text() and "moment" not in panel.actual.text()
        win._ask_path = lambda *args: pytest.fail("no file dialog for rows that will not come")
        win._export_npz()
        assert "could not be computed" in win.banner.message
        qtbot.waitUntil(lambda: view.complete(False), timeout=60000)  # thumbnails still fill
    finally:
        win.controller.shutdown()


def test_a_newer_prompt_that_fails_leaves_the_long_run_to_finish(qtbot, tmp_path):
    """A newer request marks the shown run stale; when it fails (here: past the context
    window), the shown run stays, so its rows and thumbnails must still arrive."""
    import threading

    from tests.gui.conftest import WAIT_MS

    gate = threading.Event()
    win = window_with_pending(qtbot, tmp_path, gated(gate))
    controller = win.controller
    try:
        view = run_long(qtbot, win)
        win.prompt_panel.set_text("x" * 5000)  # 5,000 byte tokens: past the 4,096 context
        win.prompt_panel.run_now()
        gate.set()
        qtbot.waitUntil(lambda: "context window" in win.banner.message, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: not view.result.next_tokens_pending, timeout=WAIT_MS)
        assert controller.view is view
        qtbot.waitUntil(lambda: view.complete(False), timeout=WAIT_MS)
    finally:
        gate.set()
        controller.shutdown()


def test_rows_of_a_run_no_longer_shown_stop(qtbot, tmp_path):
    """A newer run shown while the long run's rows are pending: those rows stop and never
    reach the new view, whose thumbnails are not held back."""
    import threading

    from tests.gui.conftest import WAIT_MS

    gate = threading.Event()
    steps = []

    class Counting(gated(gate)):
        def step(self):
            steps.append(1)
            return super().step()

    win = window_with_pending(qtbot, tmp_path, Counting)
    controller = win.controller
    arrived = []
    controller.next_tokens_changed.connect(arrived.append)
    try:
        run_long(qtbot, win)
        with qtbot.waitSignal(win.run_displayed, timeout=WAIT_MS,
                              check_params_cb=lambda v: v.result.prompt == "The cat sat"):
            win.prompt_panel.set_text("The cat sat")
            win.prompt_panel.run_now()
            gate.set()
        short = controller.view
        assert not short.result.next_tokens_pending and short.complete(False)
        qtbot.wait(300)
        assert arrived == [] and len(steps) == 1  # the step in flight, then nothing more
        assert controller.view is short
    finally:
        gate.set()
        controller.shutdown()


def test_thumbnails_start_after_every_rows_is_computed(qtbot, tmp_path):
    """Both share the worker thread: the bars after every token come first, then the mosaic."""
    from tests.gui.conftest import WAIT_MS

    def small_steps(pending):
        pending.chunk = 5  # hundreds of steps: interleaved, layers would land in between
        return pending

    win = window_with_pending(qtbot, tmp_path, small_steps)
    order = []
    worker = win.controller.worker
    worker.next_tokens_ready.connect(lambda *a: order.append("rows"))
    worker.thumbnails_ready.connect(lambda run, hide, layer, tiles: order.append(layer))
    try:
        view = run_long(qtbot, win)
        # Each connection gets its own queued event: the view may be complete a moment
        # before this test's own slot has seen the last layer.
        qtbot.waitUntil(lambda: view.complete(False) and len(order) > view.layers, timeout=WAIT_MS)
        assert order[0] == "rows" and sorted(order[1:]) == list(range(view.layers))
        assert not view.result.next_tokens_pending
    finally:
        win.controller.shutdown()

"""The attention panel's controls stay put, its colour scale is a choice, and the API other
features use (marks, score colouring, Ctrl+click, key spans) draws what it says."""

import numpy as np
from PySide6.QtCore import QPointF, Qt

from explorer.core.attention import head_map
from explorer.core.thumbnails import tile_origin
from explorer.gui.run_view import GROUP_GAP, THUMBNAIL_GAP
from tests.gui.conftest import load_and_run

PROMPT = "The cat sat on the mat. The dog sat on the log."


def test_toggling_mean_over_heads_does_not_move_the_controls(qtbot, window):
    window.resize(1000, 800)  # narrow: the title wraps differently for a head and the mean
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = window.attention_panel
    window.grab()
    boxes = (panel.head_mean_box, panel.hide_first_box)
    before = [box.mapTo(window, box.rect().topLeft()) for box in boxes]
    width = window.width()
    qtbot.mouseClick(panel.head_mean_box, Qt.LeftButton)
    assert window.controller.selection.head_mean
    window.controller.select_token(len(window.controller.result.tokens) - 1)
    qtbot.wait(50)
    window.grab()
    assert [box.mapTo(window, box.rect().topLeft()) for box in boxes] == before
    panel.title.setText("a very long token piece " * 40)  # a title of many lines
    qtbot.wait(50)  # let the layout settle
    window.grab()
    assert [box.mapTo(window, box.rect().topLeft()) for box in boxes] == before
    qtbot.mouseClick(panel.head_mean_box, Qt.LeftButton)  # the second click hits it again
    assert not window.controller.selection.head_mean
    assert window.width() == width


def test_colour_scale_auto_or_fixed(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-bert", "the cat sat on the mat")
    panel = window.attention_panel
    s = window.controller.selection
    expected = head_map(view.result, s.layer, s.head)[1:].max()
    assert panel.map_image.levels[1] == np.float32(expected) or \
        abs(panel.map_image.levels[1] - expected) < 1e-6
    panel.map.colour_box.setCurrentIndex(panel.map.colour_box.findData("fixed"))
    assert tuple(panel.map_image.levels) == (0.0, 1.0)
    assert tuple(panel.colorbar.levels()) == (0.0, 1.0)


def tile_center(panel, view, layer, head):
    y, x = tile_origin(layer, head, view.cell, THUMBNAIL_GAP, GROUP_GAP, view.group_size)
    scene = panel.grid_image.mapToScene(QPointF(x + view.cell / 2, y + view.cell / 2))
    return panel.grid_widget.mapFromScene(scene), (x + view.cell / 2, y + view.cell / 2)


def test_ctrl_click_toggles_and_marks_are_drawn_on_their_tiles(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = window.attention_panel
    window.grab()
    where, centre = tile_center(panel, view, 1, 2)
    selected = window.controller.selection
    with qtbot.waitSignal(panel.head_toggled) as blocker:
        qtbot.mouseClick(panel.grid_widget.viewport(), Qt.LeftButton, Qt.ControlModifier, where)
    assert blocker.args == [1, 2]
    assert window.controller.selection == selected  # a Ctrl+click does not select
    panel.set_marked_heads({(1, 2), (0, 0)})
    xs, ys = panel.grid.marks.getData()
    assert (centre[0], centre[1]) in set(zip(xs.tolist(), ys.tolist(), strict=True))
    assert len(xs) == 2
    panel.set_marked_heads(set())
    assert len(panel.grid.marks.getData()[0]) == 0


def test_grid_scores_colour_each_tile_with_its_value(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = window.attention_panel
    scores = np.arange(12, dtype=np.float32).reshape(3, 4)
    panel.set_grid_scores(scores, "induction")
    image = panel.grid.score_image.image
    for layer in range(3):
        for head in range(4):
            y, x = tile_origin(layer, head, view.cell, THUMBNAIL_GAP, GROUP_GAP, view.group_size)
            assert np.all(image[y:y + view.cell, x:x + view.cell] == scores[layer, head])
    assert panel.grid.score_image.isVisible() and not panel.grid_image.isVisible()
    assert "induction" in panel.grid.legend.text()
    panel.set_grid_scores(None)
    assert panel.grid_image.isVisible() and not panel.grid.score_image.isVisible()


def test_highlight_keys_shades_the_spans(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    panel = window.attention_panel
    panel.highlight_keys([(2, 5), (7, 8)])
    rects = [item.rect() for item in panel.map._span_items]
    assert [(r.left(), r.width(), r.height()) for r in rects] == \
        [(2, 3, view.result.num_tokens), (7, 1, view.result.num_tokens)]
    panel.highlight_keys([])
    assert panel.map._span_items == []


def test_below_the_first_row_keeps_a_single_row():
    from explorer.gui.panels.attention_map import below_first_row

    image = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert below_first_row(image).tolist() == [[3, 4, 5]]
    assert below_first_row(image[:1]).tolist() == [[0, 1, 2]]  # not an empty scale (it fell back to 0–1)

"""The head atlas dock: the table it draws, numeric sorting, row clicks select the head,
the induction probe, lazy runs with Cancel."""

import numpy as np
from PySide6.QtCore import Qt

from explorer.core.head_scores import CSV_COLUMNS, SCORE_NAMES, score_heads
from tests.gui.conftest import load_and_run
from tests.support import tiny_models

PROMPT = "The cat sat on the mat. The dog sat on the log. The cat sat on the mat."


def atlas(window):
    return window.features["explorer.gui.atlas"]


def open_atlas(qtbot, window):
    panel = atlas(window)
    panel.dock.show()
    panel.dock.raise_()
    return panel


def column_texts(panel, name):
    column = CSV_COLUMNS.index(name)
    model = panel.table.model()
    return [model.index(row, column).data() for row in range(model.rowCount())]


def test_full_runs_are_scored_when_the_dock_opens_and_the_table_shows_them(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = open_atlas(qtbot, window)
    qtbot.waitUntil(panel.prompt_scores_current, timeout=30000)
    scores = panel.scores
    expected = score_heads(view.result)
    np.testing.assert_array_equal(scores.values, expected.values)
    model = panel.table.model()
    assert model.rowCount() == 3 * 4 and model.columnCount() == len(CSV_COLUMNS)
    for row in range(model.rowCount()):
        layer, head = int(model.index(row, 0).data()), int(model.index(row, 1).data())
        assert model.index(row, 2).data() == str(head // 2)  # grouped-query: 2 heads per kv head
        for name in SCORE_NAMES:
            shown = model.index(row, CSV_COLUMNS.index(name)).data()
            assert shown == f"{expected.score(name)[layer, head]:.3f}"
    assert "Scores on the prompt" in panel.status.text()
    layers = [int(text) for text in column_texts(panel, "layer")]
    assert layers == sorted(layers) and layers[0] == 0  # first shown: layer 0, ascending


def test_sorting_is_numeric_and_a_row_click_selects_the_head(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = open_atlas(qtbot, window)
    qtbot.waitUntil(panel.prompt_scores_current, timeout=30000)
    column = CSV_COLUMNS.index("entropy_bits")
    panel.table.sortByColumn(column, Qt.DescendingOrder)
    values = [float(t) for t in column_texts(panel, "entropy_bits")]
    assert values == sorted(values, reverse=True)
    layer, head, _ = panel.scores.top("entropy_bits", 1)[0]
    model = panel.table.model()
    assert (int(model.index(0, 0).data()), int(model.index(0, 1).data())) == (layer, head)
    row = 5
    target = (int(model.index(row, 0).data()), int(model.index(row, 1).data()))
    rect = panel.table.visualRect(model.index(row, 4))
    with qtbot.waitSignal(window.controller.selection_changed, timeout=5000):
        qtbot.mouseClick(panel.table.viewport(), Qt.LeftButton, pos=rect.center())
    selection = window.controller.selection
    assert (selection.layer, selection.head) == target
    window.controller.select_head(0, 1)  # and the table follows the selection
    selected = panel.table.selectionModel().selectedRows()[0]
    assert (int(selected.data()), int(selected.siblingAtColumn(1).data())) == (0, 1)


def test_induction_probe_scores_the_probe_sequence(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", "The cat sat")  # no token repeats
    panel = open_atlas(qtbot, window)
    qtbot.waitUntil(lambda: panel.scores is not None, timeout=30000)
    assert "No token repeats" in panel.status.text()
    qtbot.mouseClick(panel.probe_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.scores is not None and panel.scores.source != "prompt", timeout=30000)
    scores = panel.scores
    half = len(scores.token_ids) // 2
    assert scores.token_ids[:half].tolist() == scores.token_ids[half:].tolist()
    assert not np.isnan(scores.score("induction")).any()
    assert "induction probe" in panel.status.text()
    assert column_texts(panel, "induction")[0] == f"{scores.score('induction')[0, 0]:.3f}"


def test_lazy_runs_wait_for_the_button_and_cancel_keeps_the_table(qtbot, window):
    from explorer.backend.engine import analyze

    load_and_run(qtbot, window, "tiny-llama", "Hello")
    panel = open_atlas(qtbot, window)
    qtbot.waitUntil(lambda: panel.scores is not None, timeout=30000)
    before = panel.scores
    lazy = analyze(tiny_models.loaded("llama"), PROMPT, attention="lazy")
    with qtbot.waitSignal(window.run_displayed, timeout=30000):
        window.controller.show_result(lazy)
    assert panel.scores is None and panel.job is None  # stale prompt scores are gone
    assert "lazy maps" in panel.status.text() and panel.score_button.isEnabled()
    qtbot.mouseClick(panel.score_button, Qt.LeftButton)
    qtbot.mouseClick(panel.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not window.controller.jobs, timeout=30000)
    assert panel.scores is None and panel.score_button.isEnabled()
    qtbot.mouseClick(panel.score_button, Qt.LeftButton)
    qtbot.waitUntil(panel.prompt_scores_current, timeout=30000)
    np.testing.assert_allclose(panel.scores.values, score_heads(lazy).values)
    assert before is not panel.scores


def test_the_attention_grid_is_coloured_by_the_chosen_score(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = open_atlas(qtbot, window)
    qtbot.waitUntil(panel.prompt_scores_current, timeout=30000)
    grid = window.attention_panel.grid
    assert grid.scores is None
    panel.colour_box.setCurrentIndex(panel.colour_box.findData("previous_token"))
    np.testing.assert_array_equal(grid.scores, panel.scores.score("previous_token"))
    assert grid.score_image.isVisible() and not grid.grid_image.isVisible()
    assert "previous (prompt)" in grid.legend.text()
    qtbot.mouseClick(panel.probe_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.scores.source != "prompt", timeout=30000)
    np.testing.assert_array_equal(grid.scores, panel.scores.score("previous_token"))
    assert "induction probe" in grid.legend.text()
    panel.colour_box.setCurrentIndex(panel.colour_box.findData("thumbnails"))
    assert grid.scores is None and grid.grid_image.isVisible()


def test_sort_is_numeric_not_alphabetical_and_empty_scores_sort_last(qtbot, window):
    from explorer.core.head_scores import HeadScores

    panel = atlas(window)
    values = np.zeros((len(SCORE_NAMES), 1, 4), np.float32)
    values[SCORE_NAMES.index("entropy_bits"), 0] = [9.5, 10.25, 2.0, 100.0]
    values[SCORE_NAMES.index("induction"), 0] = [0.2, np.nan, 0.9, 0.05]
    panel._set_scores(HeadScores(values, np.zeros((1, 4)), np.arange(3), "synthetic"))
    panel.table.sortByColumn(CSV_COLUMNS.index("entropy_bits"), Qt.DescendingOrder)
    assert column_texts(panel, "entropy_bits") == ["100.000", "10.250", "9.500", "2.000"]
    panel.table.sortByColumn(CSV_COLUMNS.index("induction"), Qt.DescendingOrder)
    assert column_texts(panel, "induction") == ["0.900", "0.200", "0.050", "–"]

"""The logit-lens dock: what it draws, what a click selects, typed tokens, encoders,
long prompts and Cancel."""

from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from explorer.core.lens import LensResult
from explorer.core.tokens import display_piece
from explorer.gui.lens.panel import GUESSES_SHOWN, MAX_TICKS, probability_colour
from tests.gui.conftest import load_and_run

PROMPT = "The cat sat on the mat. The cat sat on the"


def lens_panel(window):
    return window.features["explorer.gui.lens"]


def open_lens(qtbot, window):
    panel = lens_panel(window)
    panel.dock.show()
    panel.dock.raise_()
    qtbot.waitUntil(panel.is_current, timeout=30000)
    return panel


def click_cell(qtbot, panel, position, layer):
    point = panel.plot.vb.mapViewToScene(QPointF(position + 0.5, layer + 0.5))
    qtbot.mouseClick(panel.plot_widget.viewport(), Qt.LeftButton,
                     pos=panel.plot_widget.mapFromScene(point))


def test_lens_is_computed_when_shown_and_its_last_layer_is_the_model_output(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = lens_panel(window)
    assert panel.lens is None  # the dock is behind the positional tab: nothing computed yet
    panel = open_lens(qtbot, window)
    lens, result = panel.lens, view.result
    # the engine's own next-token output (a different code path) is the lens's last layer
    np.testing.assert_array_equal(lens.lens_ids[-1, :, 0], result.topk_ids[:, 0])
    np.testing.assert_allclose(lens.lens_final_probs[-1], result.topk_probs[:, 0], atol=1e-4)
    # the heatmap draws the final-choice probability of every layer and position
    np.testing.assert_array_equal(panel.image.image, lens.lens_final_probs)
    assert panel.image.image.shape == (3, result.num_tokens)
    assert "ranks first" in panel.heatmap_title.text()


def test_guess_table_shows_every_layer_for_the_selected_token(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = open_lens(qtbot, window)
    window.controller.select_token(4)
    lens = panel.lens
    style = view.result.model_info.piece_style
    assert panel.table.rowCount() == 3
    for layer in range(3):
        for column in range(GUESSES_SHOWN):
            item = panel.table.item(layer, column)
            token = int(lens.lens_ids[layer, 4, column])
            p = float(lens.lens_probs[layer, 4, column])
            assert item.text() == f"{display_piece(lens.pieces([token])[0], style)}  {p:.0%}"
            assert item.background().color() == probability_colour(panel.cmap, p)
        assert panel.table.item(layer, GUESSES_SHOWN).text() == f"{lens.lens_final_probs[layer, 4]:.1%}"
        assert panel.table.item(layer, GUESSES_SHOWN + 1).text() == f"{lens.lens_kl[layer, 4]:.2f}"
    assert "#4" in panel.guesses_title.text()


def test_clicking_a_cell_selects_that_token_and_layer(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = open_lens(qtbot, window)
    window.controller.select_head(0, 3)
    with qtbot.waitSignal(window.controller.selection_changed,
                          check_params_cb=lambda s: (s.token, s.layer) == (6, 2), timeout=5000):
        click_cell(qtbot, panel, 6, 2)
    selection = window.controller.selection
    assert (selection.token, selection.layer, selection.head) == (6, 2, 3)
    rect = panel.marker.rect()
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == (6, 2, 1, 1)
    assert "#6" in panel.guesses_title.text()
    assert panel.table.selectionModel().selectedRows()[0].row() == 2


def test_a_typed_token_is_followed_through_the_layers(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = open_lens(qtbot, window)
    panel.token_edit.setText(" sat")
    qtbot.keyClick(panel.token_edit, Qt.Key_Return)
    qtbot.waitUntil(lambda: panel.trace_job is None, timeout=30000)
    trace = panel.trace
    assert trace is not None, panel.status.text()
    result = view.result
    assert result.tokens.count(trace.piece) == 2  # " sat" is one token of the prompt
    np.testing.assert_array_equal(panel.image.image, trace.probs)
    # the last layer at the last position is the engine's full distribution
    assert trace.probs[-1, -1] == pytest.approx(result.last_probs[trace.token_id], rel=1e-4)
    assert "␣sat" in panel.heatmap_title.text()
    panel.log_box.setChecked(True)
    np.testing.assert_allclose(panel.image.image, np.log10(np.maximum(trace.probs, 1e-6)), rtol=1e-6)
    qtbot.mouseClick(panel.final_button, Qt.LeftButton)
    assert panel.trace is None
    np.testing.assert_allclose(panel.image.image, np.log10(np.maximum(panel.lens.lens_final_probs, 1e-6)))


def test_a_token_that_is_not_one_token_gets_a_message(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = open_lens(qtbot, window)
    panel.follow_token("Classify this review")
    qtbot.waitUntil(lambda: panel.trace_job is None, timeout=30000)
    assert "not one" in panel.status.text() and panel.trace is None


def test_encoder_says_it_has_no_lens(qtbot, window):
    load_and_run(qtbot, window, "tiny-bert", "The cat sat on the mat.")
    panel = lens_panel(window)
    panel.dock.show()
    panel.dock.raise_()
    assert "encoder" in panel.status.text() and "no logit lens" in panel.status.text()
    assert not panel.compute_button.isEnabled() and panel.job is None


def test_long_prompts_wait_for_the_button_and_cancel_leaves_nothing(qtbot, window):
    panel = lens_panel(window)
    panel.auto_tokens = 5
    panel.dock.show()
    panel.dock.raise_()
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT)
    assert panel.job is None and panel.lens is None and panel.compute_button.isEnabled()
    assert f"{view.result.num_tokens:,} tokens" in panel.status.text()
    qtbot.mouseClick(panel.compute_button, Qt.LeftButton)
    assert panel.progress.isVisible() and panel.cancel_button.isVisible()
    qtbot.mouseClick(panel.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not window.controller.jobs, timeout=30000)
    assert panel.lens is None and panel.compute_button.isEnabled()
    qtbot.mouseClick(panel.compute_button, Qt.LeftButton)
    qtbot.waitUntil(panel.is_current, timeout=30000)
    assert not panel.progress.isVisible()


def test_a_new_run_replaces_the_lens(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = open_lens(qtbot, window)
    first = panel.lens
    view = load_and_run(qtbot, window, "tiny-llama", "The dog sat on the log.")
    qtbot.waitUntil(panel.is_current, timeout=30000)
    assert panel.lens is not first and panel.image.image.shape[1] == view.result.num_tokens


def test_thousands_of_positions_stay_one_image_with_readable_ticks(qtbot, window):
    panel = lens_panel(window)
    layers, num, k = 4, 3000, 3
    rng = np.random.default_rng(0)
    probs = rng.random((layers, num, k)).astype(np.float32)
    lens = LensResult(
        token_ids=np.arange(num) % 7, tokens=[f"t{i}" for i in range(num)],
        lens_ids=np.tile(np.arange(k), (layers, num, 1)), lens_probs=-np.sort(-probs, -1),
        lens_final_ids=np.zeros(num, np.int64), lens_final_probs=probs[..., 0],
        lens_kl=np.zeros((layers, num)), lens_logsumexp=np.zeros((layers, num)),
        vocab_ids=np.arange(k), vocab_pieces=["a", "b", "c"], model_name="synthetic")
    panel.result = SimpleNamespace(token_ids=lens.token_ids, num_tokens=num,
                                   model_info=SimpleNamespace(name="synthetic", causal=True))
    image_item = panel.image
    panel.lens = lens
    panel._draw_all()
    assert panel.image is image_item and panel.image.image.shape == (layers, num)
    ticks = panel.plot.getAxis("bottom")._tickLevels[0]
    assert len(ticks) <= MAX_TICKS + 1
    panel.plot.setXRange(1000, 1040, padding=0)
    ticks = panel.plot.getAxis("bottom")._tickLevels[0]
    positions = [int(x - 0.5) for x, _ in ticks]
    assert positions and min(positions) >= 1000 and max(positions) <= 1040
    assert len(positions) >= 15  # zoomed in: nearly every token is labelled
    window.controller.selection = window.controller.selection.with_(token=2500, layer=1)
    panel.show_selection(window.controller.selection)
    x0, x1 = panel.plot.viewRange()[0]
    assert x0 <= 2500.5 <= x1 and x1 - x0 == pytest.approx(40, abs=1)  # the view follows

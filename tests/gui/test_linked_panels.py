"""Linked panels: one selection drives every panel; clicks become selections."""

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF, Qt

from explorer.core.analysis import drop_first_and_renormalise
from explorer.core.attention import head_map, mean_map
from explorer.core.thumbnails import tile_origin
from explorer.gui.panels.probability_panel import ACTUAL_COLOR, BAR_COLOR
from explorer.gui.run_view import GROUP_GAP, THUMBNAIL_GAP
from tests.gui.conftest import WAIT_MS, load_and_run

PROMPT = "The cat sat on the mat. The dog sat on the log."

# every test here runs twice: on runs that keep every map, and on lazy runs whose maps are
# rebuilt from queries and keys; the panels must behave the same
pytestmark = pytest.mark.parametrize("attention_mode", ["full", "lazy"])


def click_chip(qtbot, win, index):
    rect = win.tokens_panel.chip_rect(index)
    qtbot.mouseClick(win.tokens_panel.chips.viewport(), Qt.LeftButton, pos=rect.center())


def reference_forward(window, result):
    """Plain transformers on the loaded tiny model: (attentions [L][H, T, T], probs [T, V])."""
    import torch

    model = window.controller.worker.model.model
    with torch.no_grad():
        out = model(input_ids=torch.tensor([result.token_ids.tolist()]), output_attentions=True)
    probs = torch.softmax(out.logits[0].double(), -1).numpy()
    return [a[0].numpy() for a in out.attentions], probs


def test_clicking_a_chip_moves_what_is_drawn(qtbot, window, attention_mode):
    view = load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    result = view.result
    assert result.attention_mode == attention_mode
    assert window.tokens_panel.count() == result.num_tokens
    assert window.tokens_panel.chip_text(1) == "␣c"  # leading space made visible
    window.controller.select_head(1, 2)
    with qtbot.waitSignal(window.controller.selection_changed):
        click_chip(qtbot, window, 3)
    assert window.controller.selection.token == 3
    attentions, probs = reference_forward(window, result)

    # attention: the image drawn large is layer 1, head 2; the outlines sit on row and column 3
    panel = window.attention_panel
    np.testing.assert_allclose(panel.map_image.image, attentions[1][2], atol=2e-3)
    n = result.num_tokens
    assert panel.row_highlight.rect() == QRectF(0, 3, n, 1)
    assert panel.col_highlight.rect() == QRectF(3, 0, 1, n)

    # bars: one per shown candidate, length = the model's probability, in rank order
    bars = window.probability_panel.bars.opts
    shown = min(window.probability_panel.max_bars, result.top_k)
    order = np.argsort(-probs[3], kind="stable")[:shown]
    assert len(bars["width"]) == shown
    np.testing.assert_allclose(bars["width"], probs[3, order], rtol=1e-4)
    np.testing.assert_array_equal(bars["y"], np.arange(shown))
    np.testing.assert_array_equal(bars["x0"], np.zeros(shown))
    # the actual next token's bar is orange, every other bar blue
    actual = int(result.token_ids[4])
    colours = [b.color().name() for b in bars["brushes"]]
    expected = [ACTUAL_COLOR if int(t) == actual else BAR_COLOR for t in order]
    assert colours == expected
    # surprise in bits of the actual next token
    bits = -np.log2(probs[3, actual])
    rank = int((probs[3] > probs[3, actual]).sum()) + 1
    text = window.probability_panel.actual.text()
    assert f"{bits:.1f} bits of surprise" in text and f"rank {rank}," in text

    # positions: GPT-2's learned row 3, straight from the model's weights
    wpe = window.controller.worker.model.model.transformer.wpe.weight.detach().numpy()
    np.testing.assert_array_equal(window.positional_panel.shown_vector(), wpe[3])


def test_the_actual_next_token_bar_is_orange_when_it_is_among_the_bars(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-gpt2", "a a a a a a a a a a a a")
    result = view.result
    hits = [i for i in range(result.num_tokens - 1)
            if int(result.token_ids[i + 1]) in result.topk_ids[i, :12].tolist()]
    assert hits, "the repeated prompt makes the next token likely"
    i = hits[-1]
    window.controller.select_token(i)
    bars = window.probability_panel.bars.opts
    k = result.topk_ids[i, :12].tolist().index(int(result.token_ids[i + 1]))
    assert bars["brushes"][k].color().name() == ACTUAL_COLOR
    assert sum(b.color().name() == ACTUAL_COLOR for b in bars["brushes"]) == 1


def test_arrow_keys_move_the_selection(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    click_chip(qtbot, window, 2)
    qtbot.keyClick(window.tokens_panel.chips, Qt.Key_Right)
    assert window.controller.selection.token == 3
    qtbot.keyClick(window.tokens_panel.chips, Qt.Key_Left)
    qtbot.keyClick(window.tokens_panel.chips, Qt.Key_Left)
    assert window.controller.selection.token == 1


def test_clicking_a_thumbnail_selects_layer_and_head(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = window.attention_panel
    window.grab()  # pyqtgraph applies view ranges when it paints
    y, x = tile_origin(2, 3, view.cell, THUMBNAIL_GAP, GROUP_GAP, view.group_size)
    scene = panel.grid_image.mapToScene(QPointF(x + view.cell / 2, y + view.cell / 2))
    widget_pos = panel.grid_widget.mapFromScene(scene)
    with qtbot.waitSignal(window.controller.selection_changed):
        qtbot.mouseClick(panel.grid_widget.viewport(), Qt.LeftButton, pos=widget_pos)
    s = window.controller.selection
    assert (s.layer, s.head) == (2, 3)
    np.testing.assert_allclose(panel.shown_map, head_map(view.result, 2, 3))
    assert "layer 2, head 3" in panel.title.text()
    assert "key/value group 1" in panel.title.text()  # 4 heads share 2 kv heads


def test_clicking_a_cell_selects_the_query_token(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    panel = window.attention_panel
    window.grab()  # pyqtgraph applies view ranges when it paints
    scene = panel.map_image.mapToScene(QPointF(1.5, 4.5))
    with qtbot.waitSignal(window.controller.selection_changed):
        qtbot.mouseClick(panel.map_widget.viewport(), Qt.LeftButton, pos=panel.map_widget.mapFromScene(scene))
    assert window.controller.selection.token == 4
    assert window.tokens_panel.current_token() == 4
    assert window.probability_panel.shown_position == 4
    assert view.result.num_tokens > 4


def test_mean_over_heads_and_hide_first(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = window.attention_panel
    window.controller.select_head(1, 0)
    panel.head_mean_box.setChecked(True)
    np.testing.assert_allclose(panel.shown_map, mean_map(view.result, 1), rtol=1e-6)
    panel.hide_first_box.setChecked(True)
    expected = drop_first_and_renormalise(mean_map(view.result, 1))
    np.testing.assert_allclose(panel.shown_map, expected, rtol=1e-5)
    assert np.all(panel.shown_map[:, 0] == 0)
    np.testing.assert_allclose(panel.shown_map[1:].sum(-1), 1.0, atol=1e-5)


def test_textbook_sinusoid_switch(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = window.positional_panel
    assert "Rotary" in panel.formula.text() and "base = 10000" in panel.formula.text()
    panel.textbook_box.setChecked(True)
    assert window.controller.selection.textbook_positions
    assert "Vaswani" in panel.formula.text()
    assert panel.table.shape == (view.result.num_tokens, view.result.model_info.hidden_size)


def test_a_run_draws_the_positional_vector_once_at_the_selected_token(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = window.positional_panel
    drawn = []
    original = panel.vector_curve.setData
    panel.vector_curve.setData = lambda *args, **kwargs: (drawn.append(args), original(*args, **kwargs))
    window.controller.select_token(3)
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT + " Again.")
    assert len(drawn) == 2  # the click, then the run: once, not again for its selection
    token = window.controller.selection.token
    np.testing.assert_allclose(panel.shown_vector(), panel.table[token])
    assert panel.table.shape[0] == view.result.num_tokens


def drawn_heat(panel):
    """(image float32[row, column], its rectangle in the plot's coordinates)."""
    return panel.heat.image, panel.heat.mapRectToParent(panel.heat.boundingRect())


def test_a_long_table_draws_a_row_per_band_and_the_exact_selected_row(qtbot, window, monkeypatch):
    from explorer.core import positional as pos
    from explorer.gui.panels import positional_panel

    monkeypatch.setattr(positional_panel, "HEAT_ROWS", 8)
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel, n = window.positional_panel, view.result.num_tokens
    assert n > 16
    angles = pos.rope_angles(n, np.asarray(window.controller.model_info.rope_groups[0].inv_freq))
    image, rect = drawn_heat(panel)
    middles = ((np.arange(8) + 0.5) * n / 8).astype(int)  # the middle of each band
    assert image.shape == (8, angles.shape[1])
    np.testing.assert_allclose(image, np.cos(angles[middles]), rtol=1e-6)
    assert (rect.top(), rect.height(), rect.width()) == (0, n, angles.shape[1])  # y counts positions
    assert panel.heat_plot.getAxis("left").labelText == f"position (a row per {n / 8:.3g})"
    token = int(middles[3]) + 1  # a position no heat row shows
    window.controller.select_token(token)
    np.testing.assert_allclose(panel.shown_vector(), np.cos(angles[token]), rtol=1e-6)
    assert panel.position_line.value() == token + 0.5
    assert panel.vector_plot.titleLabel.text == f"position {token}"
    panel.textbook_box.setChecked(True)  # the textbook sinusoid: the same rows, its formula
    d = view.result.model_info.hidden_size
    np.testing.assert_allclose(drawn_heat(panel)[0], pos.sinusoidal_table(n, d)[middles], atol=1e-6)
    np.testing.assert_allclose(panel.shown_vector(), pos.sinusoidal_table(n, d)[token], atol=1e-6)


def test_a_long_learned_similarity_view_compares_with_the_drawn_positions(qtbot, window, monkeypatch):
    from explorer.core import positional as pos
    from explorer.gui.panels import positional_panel

    monkeypatch.setattr(positional_panel, "HEAT_ROWS", 8)
    view = load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    panel, n = window.positional_panel, view.result.num_tokens
    panel.view_box.setCurrentIndex(1)  # position x position similarity
    wpe = view.result.positional
    middles = ((np.arange(8) + 0.5) * n / 8).astype(int)
    image, rect = drawn_heat(panel)
    np.testing.assert_allclose(image, pos.cosine_similarity_matrix(wpe[middles]), atol=1e-6)
    assert (rect.width(), rect.height()) == (n, n)
    window.controller.select_token(5)
    x, y = panel.vector_curve.getData()
    np.testing.assert_array_equal(x, middles)
    np.testing.assert_allclose(y, pos.cosine_similarity_matrix(wpe[[5]], wpe[middles])[0], atol=1e-6)
    monkeypatch.setattr(positional_panel, "HEAT_ROWS", 2048)
    again = load_and_run(qtbot, window, "tiny-gpt2", PROMPT + " Again.").result  # every row
    wpe, n = again.positional, again.num_tokens
    np.testing.assert_allclose(drawn_heat(panel)[0], pos.cosine_similarity_matrix(wpe), atol=1e-6)
    x, y = panel.vector_curve.getData()
    np.testing.assert_array_equal(x, np.arange(n))
    assert panel.heat_plot.getAxis("left").labelText == "position"


def test_encoder_has_no_bars(qtbot, window):
    load_and_run(qtbot, window, "tiny-bert", "the cat sat on the mat")
    assert "encoder" in window.probability_panel.title.text()
    assert window.tokens_panel.chip_text(0) == "[CLS]"
    assert "Learned absolute" in window.positional_panel.formula.text()


@pytest.mark.parametrize("spec", ["broken-model"])
def test_failing_load_keeps_the_old_model(qtbot, window, spec):
    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    with qtbot.waitSignal(window.controller.error) as blocker:
        window.load_model(spec)
    assert "broken on purpose" in blocker.args[0]
    assert "previous model (tiny-gpt2) is still loaded" in blocker.args[0]
    assert window.banner.isVisible()
    assert window.controller.model_info.name == "tiny-gpt2"
    with qtbot.waitSignal(window.run_displayed, check_params_cb=lambda v: v.result.prompt == "The dog"):
        window.prompt_panel.set_text("The dog")
        window.prompt_panel.run_now()
    assert window.prompt_panel.text() == "The dog"


def test_bad_prompts_give_messages_and_keep_the_text(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", "The cat")
    with qtbot.waitSignal(window.controller.status):
        window.prompt_panel.set_text("")
        window.prompt_panel.run_now()
    too_long = "The cat sat on the mat. " * 40
    with qtbot.waitSignal(window.controller.error) as blocker:
        window.prompt_panel.set_text(too_long)
        window.prompt_panel.run_now()
    assert "context window" in blocker.args[0]
    assert window.banner.isVisible() and "context window" in window.banner.label.text()
    assert window.prompt_panel.text() == too_long
    assert window.controller.result.prompt == "The cat"  # the last good run stays on screen


def test_a_new_model_takes_away_the_error_about_the_previous_one(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", "The cat")
    too_long = "The cat sat on the mat. " * 40  # past tiny-llama's 128 positions
    with qtbot.waitSignal(window.controller.error):
        window.prompt_panel.set_text(too_long)
        window.prompt_panel.run_now()
    assert window.banner.isVisible() and "128 tokens" in window.banner.message
    with qtbot.waitSignal(window.run_displayed, timeout=WAIT_MS,
                          check_params_cb=lambda v: v.result.prompt == too_long):
        window.load_model("tiny-llama-long")  # 4,096 positions: the editor's prompt runs
    assert not window.banner.isVisible()  # no word of a context window that is gone
    assert window.tokens_panel.count() == window.controller.result.num_tokens > 128


def test_keyboard_moves_layer_and_head(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT)
    window.controller.select_head(0, 0)
    window.activateWindow()
    window.attention_panel.setFocus()
    qtbot.keyClick(window.attention_panel, Qt.Key_Down, Qt.AltModifier)  # Navigate ▸ Next layer
    qtbot.keyClick(window.attention_panel, Qt.Key_Right, Qt.AltModifier)  # Navigate ▸ Next head
    assert (window.controller.selection.layer, window.controller.selection.head) == (1, 1)
    for _ in range(10):
        window.step_head(1, 1)  # clamped to 3 layers x 4 heads
    assert (window.controller.selection.layer, window.controller.selection.head) == (2, 3)
    np.testing.assert_allclose(window.attention_panel.shown_map, head_map(view.result, 2, 3))


def test_the_bars_and_positions_redraw_only_when_what_they_show_changes(qtbot, window):
    """A head change leaves them as drawn (False); a new result at the same token, the
    ablation shift and the textbook sinusoid draw them again."""
    view = load_and_run(qtbot, window, "tiny-llama", PROMPT)
    qtbot.waitUntil(lambda: not window.stages.busy, timeout=5000)
    bars, positions = window.probability_panel, window.positional_panel
    selection = window.controller.selection
    other_head = selection.with_(head=selection.head + 1)
    assert bars.show_selection(other_head) is False
    assert positions.show_selection(other_head) is False
    bars.show_result(view.result)  # the same token of a new (here: the same) result
    assert bars.show_selection(other_head) is True
    drawn = []
    original = bars.bars.setOpts
    bars.bars.setOpts = lambda **opts: (drawn.append(opts), original(**opts))
    bars.set_shift(None)  # the shift is drawn (or taken away) at once
    assert drawn and bars.shown_position == selection.token
    textbook = other_head.with_(textbook_positions=True)
    assert positions.show_selection(textbook) is True
    assert positions.table.shape[1] == view.result.model_info.hidden_size  # the sinusoid
    assert positions.show_selection(textbook.with_(token=selection.token - 1)) is True
    np.testing.assert_allclose(positions.shown_vector(), positions.table[selection.token - 1])

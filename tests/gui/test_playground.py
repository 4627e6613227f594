"""The playground: streaming, Stop, seeds, clicks linked to every panel, branches, encoders."""

import dataclasses
import threading

import numpy as np
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QHelpEvent, QTextCursor
from PySide6.QtWidgets import QApplication, QToolTip

from explorer.gui.playground.formatting import PROB_BINS, format_stops, parse_stops, prob_color


def load(qtbot, window, spec):
    with qtbot.waitSignal(window.controller.model_changed, timeout=30000):
        window.load_model(spec)
    panel = window.features["explorer.gui.playground"]
    if not panel.dock.isVisible():  # hidden until the user opens it
        panel.dock.toggleViewAction().trigger()  # View/Tools ▸ Playground, as a user would
    assert panel.dock.isVisible()
    return panel


def set_controls(panel, *, max_new=10, seed=7, temperature=1.0, top_k=0, top_p=1.0,
                 prompt="The cat sat"):
    panel.editor.setPlainText(prompt)
    c = panel.controls
    c.max_new_tokens.setValue(max_new)
    c.random_seed.setChecked(seed is None)
    if seed is not None:
        c.seed.setValue(seed)
    c.temperature.setValue(temperature)
    c.top_k.setValue(top_k)
    c.top_p.setValue(top_p)


def generate(qtbot, window, panel):
    """Click Generate and wait until the finished run is drawn in every panel."""
    before = len(panel.branches)
    with qtbot.waitSignal(window.run_displayed, timeout=60000,
                          check_params_cb=lambda v: len(panel.branches) > before
                          and v.result is panel.branch.run):
        qtbot.mouseClick(panel.generate_button, Qt.LeftButton)
    return panel.branch


def click_token(qtbot, window, panel, position):
    """A real mouse click on the token's span in the completion view."""
    view = panel.view
    start, end = view.spans[position]
    cursor = QTextCursor(view.document())
    cursor.setPosition(start)
    point = view.cursorRect(cursor).center()
    point.setX(point.x() + 3)
    assert view.position_at(point) == position
    with qtbot.waitSignal(view.token_clicked, timeout=5000,
                          check_params_cb=lambda p: p == position):
        qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=point)
    qtbot.waitUntil(lambda: window.probability_panel.shown_position == position, timeout=30000)


def test_playground_starts_hidden(window):
    assert not window.features["explorer.gui.playground"].dock.isVisible()


def test_tokens_stream_in_one_at_a_time(qtbot, window):
    panel = load(qtbot, window, "tiny-gpt2")
    set_controls(panel, max_new=12)
    seen = []
    append = panel.view.append_step

    def recording(step):
        append(step)
        if panel.running:  # streamed before the run finished, one step at a time
            seen.append(len(panel.view.steps))

    panel.view.append_step = recording
    assert not panel.stop_button.isEnabled()
    branch = generate(qtbot, window, panel)
    result = branch.result
    assert result.num_generated >= 1
    assert seen == list(range(1, result.num_generated + 1))
    assert [s.token_id for s in panel.view.steps] == result.generated_ids
    assert len(panel.view.spans) == result.num_tokens  # prompt tokens clickable too
    assert panel.generate_button.isEnabled() and not panel.stop_button.isEnabled()
    assert "tokens/s" in panel.status.text()
    assert window.controller.result is branch.run
    assert window.controller.selection.token == result.num_tokens - 1


def test_stop_after_the_first_token_leaves_a_consistent_run(qtbot, window):
    panel = load(qtbot, window, "tiny-gpt2")
    set_controls(panel, max_new=40, seed=3)
    gate = threading.Event()
    panel.step_hook = lambda step: gate.wait(10) if step.index == 0 else None
    qtbot.mouseClick(panel.generate_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(panel.view.steps) == 1, timeout=30000)
    assert panel.stop_button.isEnabled() and not panel.generate_button.isEnabled()
    with qtbot.waitSignal(window.run_displayed, timeout=30000):
        qtbot.mouseClick(panel.stop_button, Qt.LeftButton)
        gate.set()
    result = panel.branch.result
    assert result.stop_reason == "cancelled" and result.num_generated == 1
    assert [s.token_id for s in panel.view.steps] == result.generated_ids
    run = panel.branch.run
    assert run.num_tokens == result.num_tokens and run.attentions.shape[-1] == result.num_tokens
    last = result.num_tokens - 1
    click_token(qtbot, window, panel, last)
    assert window.attention_panel.row_highlight.rect().top() == last
    assert window.probability_panel.shown_position == last
    assert "stopped" in panel.status.text()


def test_a_seed_reproduces_a_sampled_run(qtbot, window):
    panel = load(qtbot, window, "tiny-llama")
    set_controls(panel, max_new=10, seed=None)  # random: the seed used is shown afterwards
    first = generate(qtbot, window, panel).result
    assert panel.controls.seed.value() == first.settings.seed
    panel.controls.random_seed.setChecked(False)  # replay the seed shown
    second = generate(qtbot, window, panel).result
    assert second.generated_ids == first.generated_ids
    assert second.settings.seed == first.settings.seed
    panel.controls.seed.setValue((first.settings.seed + 1) % 1000)
    set_controls(panel, max_new=10, seed=(first.settings.seed + 1) % 1000)
    third = generate(qtbot, window, panel).result
    assert third.settings.seed != first.settings.seed
    assert panel.branch_box.count() == 3


def test_clicking_a_generated_token_selects_it_in_every_panel(qtbot, window):
    panel = load(qtbot, window, "tiny-llama")
    set_controls(panel, max_new=8, seed=11)
    window.controller.select_head(1, 2)
    branch = generate(qtbot, window, panel)
    result = branch.result
    assert result.num_generated >= 3
    step = result.steps[1]
    click_token(qtbot, window, panel, step.position)
    assert window.controller.result is branch.run  # no rebuild, no model run per click
    assert window.attention_panel.row_highlight.rect().top() == step.position
    assert window.probability_panel.shown_position == step.position
    s = window.controller.selection
    assert (s.token, s.layer, s.head) == (step.position, 1, 2)
    row = window.attention_panel.shown_map[step.position, : step.position + 1]
    np.testing.assert_allclose(row, step.attention[1, 2].astype(np.float32), atol=1e-6)
    assert panel.view.selected == step.position
    tip = panel.view.tooltip_for(step.position)
    assert "after T=1" in tip and "raw model" in tip and f"id {step.token_id}" in tip
    start, _end = panel.view.spans[step.position]
    cursor = QTextCursor(panel.view.document())
    cursor.setPosition(start)
    point = panel.view.cursorRect(cursor).center() + QPoint(3, 0)
    hover = QHelpEvent(QEvent.ToolTip, point, panel.view.viewport().mapToGlobal(point))
    QApplication.sendEvent(panel.view.viewport(), hover)
    assert QToolTip.isVisible() and "raw model" in QToolTip.text()
    QToolTip.hideText()
    prompt_token = 1
    click_token(qtbot, window, panel, prompt_token)
    assert window.attention_panel.row_highlight.rect().top() == prompt_token


def test_continue_with_an_alternative_keeps_the_text_and_adds_a_branch(qtbot, window):
    panel = load(qtbot, window, "tiny-gpt2")
    set_controls(panel, max_new=8, seed=5)
    old = generate(qtbot, window, panel).result
    assert old.num_generated >= 3
    step = old.steps[2]
    alternatives = panel.alternatives(step.position)
    assert alternatives[0][2] >= alternatives[-1][2]
    token_id = next(t for t, *_ in alternatives if t != step.token_id)
    with qtbot.waitSignal(window.run_displayed, timeout=60000,
                          check_params_cb=lambda v: len(panel.branches) == 2):
        assert panel.continue_with(step.index, token_id)
    new = panel.branch.result
    assert new.generated_ids[:2] == old.generated_ids[:2]
    assert new.steps[2].token_id == token_id and new.steps[2].forced
    assert new.prompt_ids.tolist() == old.prompt_ids.tolist()
    assert [s.token_id for s in panel.view.steps] == new.generated_ids
    assert panel.branch_box.count() == 2 and panel.branch_box.currentIndex() == 1
    with qtbot.waitSignal(window.run_displayed, timeout=30000):
        panel.switch_branch(0)
    assert [s.token_id for s in panel.view.steps] == old.generated_ids
    assert window.controller.result is panel.branches[0].run


def test_an_encoder_cannot_generate(qtbot, window):
    panel = load(qtbot, window, "tiny-bert")
    assert not panel.generate_button.isEnabled()
    assert "encoder" in panel.status.text() and "cannot generate" in panel.status.text()
    panel.generate()
    assert panel.job is None and not window.controller.jobs
    panel = load(qtbot, window, "tiny-gpt2")
    assert panel.generate_button.isEnabled()


def test_chat_template_switch_and_exact_text(qtbot, window, monkeypatch):
    panel = load(qtbot, window, "tiny-gpt2")
    assert not panel.chat.isEnabled()  # the tiny tokenizer has no chat template

    from explorer.backend import generation, loader

    def with_template(*args):
        return dataclasses.replace(model_info(*args), chat_template=True)

    model_info = loader.model_info
    monkeypatch.setattr(loader, "model_info", with_template)
    monkeypatch.setattr(generation, "has_chat_template", lambda loaded: True)
    monkeypatch.setattr(generation, "chat_text", lambda loaded, prompt: f"User: {prompt}\nBot:")
    panel = load(qtbot, window, "tiny-llama")
    assert panel.chat.isEnabled() and "chat template" in panel.status.text()
    set_controls(panel, max_new=3, prompt="The cat")
    panel.chat.setChecked(True)
    qtbot.waitUntil(lambda: panel.chat_preview.toPlainText() == "User: The cat\nBot:")
    assert panel.chat_preview.isVisible()
    result = generate(qtbot, window, panel).result
    assert result.chat and result.model_text == "User: The cat\nBot:"
    assert panel.view.toPlainText().startswith("User: The cat")


def test_session_extras_round_trip(qtbot, window):
    panel = load(qtbot, window, "tiny-gpt2")
    set_controls(panel, max_new=17, seed=42, temperature=0.5, top_k=5, top_p=0.8)
    panel.controls.stop.setText(r"\n\n|END")
    panel.editor.setPlainText("Once upon a time")
    extras = window.session_extras()["generation"]
    assert extras["stop"] == ["\n\n", "END"] and extras["seed"] == 42
    set_controls(panel, max_new=3, seed=None, temperature=1.0)
    panel.controls.stop.setText("")
    panel.editor.setPlainText("")
    window.apply_session_extras({"generation": extras})
    assert panel.session_extras()["generation"] == extras
    assert panel.controls.settings().seed == 42 and panel.controls.settings().stop == ("\n\n", "END")


def test_formatting_helpers():
    assert parse_stops(r"\n\n|END|a\|b") == ("\n\n", "END", "a|b")
    assert parse_stops(format_stops(["x|y", "\t", "\\n"])) == ("x|y", "\t", "\\n")
    assert prob_color(0.0) == PROB_BINS[0][1] and prob_color(1.0) == PROB_BINS[-1][1]
    assert prob_color(0.3) == PROB_BINS[2][1]

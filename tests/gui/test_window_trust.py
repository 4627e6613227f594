"""A window a person can trust: it never outgrows the screen, says what the panels show, marks
stale panels, keeps its layout still, explains itself before the first run, quits on Ctrl+Q."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPainter, QPicture

from tests.gui.conftest import WAIT_MS, load_and_run

PROMPT = "The cat sat on the mat. The dog sat on the log."
LONG_WORDS = "Supercalifragilisticexpialidocious_Antidisestablishmentarianism"


def fits_the_screen(window) -> bool:
    available = (window.screen() or QGuiApplication.primaryScreen()).availableGeometry()
    return window.width() <= available.width() and window.height() <= available.height()


def open_playground(window):
    panel = window.features["explorer.gui.playground"]
    if not panel.dock.isVisible():
        tools = [a for a in window.tools_menu.actions() if "Playground" in a.text()]
        tools[0].trigger()
    return panel


def test_the_window_never_grows_past_the_screen(qtbot, window):
    sizes = []

    def record(step: str) -> None:
        QGuiApplication.processEvents()
        sizes.append((step, window.width(), window.height()))
        assert fits_the_screen(window), sizes

    record("start")
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    record("first run")
    panel = open_playground(window)
    record("playground open")
    panel.editor.setPlainText(LONG_WORDS)
    panel.controls.max_new_tokens.setValue(30)
    panel.controls.random_seed.setChecked(False)
    with qtbot.waitSignal(window.run_displayed, timeout=WAIT_MS):
        panel.generate()
    record("generated")
    # a long comparison column, opened in the explorer
    compare = window.features["explorer.gui.compare"].open()
    qtbot.addWidget(compare)
    compare.set_texts(["Short one. Sentiment:", f"{LONG_WORDS} {LONG_WORDS}\nSentiment:"])
    compare.run_all()
    qtbot.waitUntil(lambda: compare.job is None, timeout=WAIT_MS)
    assert all(c.analysis for c in compare.columns), compare.status.text()
    with qtbot.waitSignal(window.run_displayed, timeout=WAIT_MS):
        compare.open_in_explorer(compare.columns[1])
    record("open in explorer")
    # long prompts: one unbreakable word, then many short tokens
    for text in (LONG_WORDS + LONG_WORDS[::-1], "a b " * 30):  # <= 128 tokens (tiny-llama)
        load_and_run(qtbot, window, "tiny-llama", text)
        window.controller.select_token(1)
        record(f"long prompt {len(text)}")
    window.banner.show_message("Could not load '/a/very/long/path/" + "x" * 400 + ".gguf': broken")
    record("long error")
    widths = {w for _, w, _ in sizes}
    assert len(widths) == 1, sizes  # nothing above made the window change its width at all


def test_an_error_covers_the_notice_and_moves_nothing(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)

    def where() -> list:
        QGuiApplication.processEvents()
        return [w.mapTo(window, QPoint(0, 0)) for w in (
            window.attention_panel, window.attention_panel.head_mean_box,
            window.attention_panel.hide_first_box, window.notice_bar)] + [
            window.attention_panel.size()]

    before = where()
    window.banner.show_message("Something went wrong, in a message long enough to wrap onto a "
                               "second line of the strip above the attention panel " * 3)
    assert window.banner.isVisible()
    assert where() == before
    assert window.banner.geometry() == window.notice_bar.notice_row.geometry()  # drawn over it
    qtbot.mouseClick(window.banner.close_button, Qt.LeftButton)
    assert not window.banner.isVisible() and where() == before


def test_the_banner_says_what_the_panels_show_and_copies_it_to_the_editor(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    assert window.freshness.state == "editor"
    assert "Showing the prompt in the editor" in window.notice_bar.notice.full_text()
    compare = window.features["explorer.gui.compare"].open()
    qtbot.addWidget(compare)
    compare.set_texts(["The cat. Sentiment:", "The dog sat. Sentiment:"])
    compare.run_all()
    qtbot.waitUntil(lambda: compare.job is None, timeout=WAIT_MS)
    with qtbot.waitSignal(window.run_displayed, timeout=WAIT_MS):
        compare.open_in_explorer(compare.columns[1])
    assert window.controller.result.prompt == "The dog sat. Sentiment:"
    assert window.prompt_panel.text() == PROMPT  # the editor still holds its own text
    assert window.freshness.state == "source"
    assert "Showing column B of the few-shot comparison" in window.notice_bar.notice.full_text()
    assert window.notice_bar.copy_button.isVisible()
    runs = []
    window.controller.running_changed.connect(lambda on: on and runs.append(on))
    qtbot.mouseClick(window.notice_bar.copy_button, Qt.LeftButton)
    assert window.prompt_panel.text() == "The dog sat. Sentiment:"
    assert window.freshness.state == "editor" and not window.notice_bar.copy_button.isVisible()
    assert not window.prompt_panel.run_pending() and runs == []  # the panels already show it
    assert window.controller.result.prompt == window.prompt_panel.text()


def test_the_banner_names_the_playground_branch(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = open_playground(window)
    panel.editor.setPlainText("The cat sat")
    panel.controls.max_new_tokens.setValue(6)
    panel.controls.seed.setValue(3)
    with qtbot.waitSignal(window.run_displayed, timeout=WAIT_MS):
        panel.generate()
    assert "generated text, branch 1 of the Playground" in window.notice_bar.notice.full_text()
    step = panel.branch.result.steps[2]
    alternative = next(t for t in step.raw_top_ids if int(t) != step.token_id)
    with qtbot.waitSignal(window.run_displayed, timeout=WAIT_MS):
        assert panel.continue_with(2, int(alternative))
    assert "generated text, branch 2 of the Playground" in window.notice_bar.notice.full_text()
    assert window.controller.result is panel.branches[1].run


def lightness(widget) -> float:
    """How light the darkest tenth of the widget is (the map's dark cells): a dimming
    overlay lifts them a lot, whatever share of the panel is white already."""
    image = widget.grab().toImage()
    values = [QColor(image.pixel(x, y)).lightness()
              for x in range(0, image.width(), 9) for y in range(0, image.height(), 9)]
    return float(np.percentile(values, 10))


def test_stale_panels_are_dimmed_until_the_new_result_arrives(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    normal = lightness(window.attention_panel)
    worker = window.controller.worker
    real, release = worker._analyze_fn, threading.Event()

    def slow(model, prompt, top_k, task, *args, **kwargs):
        assert release.wait(30)
        return real(model, prompt, top_k, task, *args, **kwargs)

    worker._analyze_fn = slow
    qtbot.keyClicks(window.prompt_panel.editor, " More")  # typing: a run is scheduled
    assert window.prompt_panel.run_pending()
    assert window.freshness.state == "stale"
    assert "Out of date" in window.notice_bar.notice.full_text()
    qtbot.waitUntil(lambda: window.controller.running, timeout=5000)  # the pause ended: running
    assert window.freshness.state == "stale"
    assert all(o.isVisible() for o in window.freshness.overlays)
    assert lightness(window.attention_panel) > normal + 20  # visibly dimmed
    with qtbot.waitSignal(window.run_displayed, timeout=WAIT_MS):
        release.set()
    assert window.controller.result.prompt == window.prompt_panel.text()
    assert window.freshness.state == "editor"
    assert not any(o.isVisible() for o in window.freshness.overlays)
    assert lightness(window.attention_panel) == pytest.approx(normal, abs=15)


def test_with_run_while_typing_off_an_edit_marks_the_panels_out_of_date(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    window.prompt_panel.auto_run = False
    window.prompt_panel.editor.appendPlainText("And more.")
    assert window.freshness.state == "stale" and not window.prompt_panel.run_pending()
    assert "Press Run" in window.notice_bar.notice.full_text()


def test_placeholders_and_the_editor_token_count_before_the_first_run(qtbot, window):
    probability, positional = window.probability_panel, window.positional_panel
    assert probability.placeholder.isVisible() and not probability.plot_widget.isVisible()
    assert "After the first run" in probability.placeholder.text()
    assert positional.placeholder.isVisible() and not positional.plots.isVisible()
    assert "fill in after the first run" in window.notice_bar.notice.full_text()
    window.prompt_panel.auto_run = False
    window.prompt_panel.set_text("The cat sat on the mat")
    assert "characters" in window.prompt_panel.count_label.full_text()  # no tokenizer yet
    with qtbot.waitSignal(window.controller.model_changed, timeout=WAIT_MS):
        window.load_model("tiny-gpt2")
    tokenizer = window.controller.worker.model.tokenizer
    expected = len(tokenizer("The cat sat on the mat")["input_ids"])
    qtbot.waitUntil(lambda: window.prompt_panel.count_label.full_text().startswith(f"{expected} tokens"),
                    timeout=WAIT_MS)
    assert window.controller.result is None  # counted without a run
    window.prompt_panel.editor.appendPlainText(" again")
    expected = len(tokenizer("The cat sat on the mat\n again")["input_ids"])
    qtbot.waitUntil(lambda: window.prompt_panel.count_label.full_text().startswith(f"{expected} tokens"),
                    timeout=WAIT_MS)
    with qtbot.waitSignal(window.run_displayed, timeout=WAIT_MS):
        window.prompt_panel.run_now()
    assert not probability.placeholder.isVisible() and probability.plot_widget.isVisible()
    assert not positional.placeholder.isVisible() and positional.plots.isVisible()


def test_positional_axes_rescale_on_every_result(qtbot, window):
    panel = window.positional_panel
    for text in ("a b " * 20, "The cat", "a b c d " * 10):
        view = load_and_run(qtbot, window, "tiny-llama", text)
        window.grab()  # pyqtgraph applies ranges when it paints
        rows, columns = panel.table.shape
        assert rows == view.result.num_tokens
        (x0, x1), (y0, y1) = panel.heat_plot.viewRange()
        assert (x0, x1) == pytest.approx((0, columns), abs=1e-6)
        assert (y0, y1) == pytest.approx((0, rows), abs=1e-6)
        (vx0, vx1), (vy0, vy1) = panel.vector_plot.viewRange()
        assert vx0 <= 0 and columns - 1 <= vx1 <= columns
        assert vy0 <= float(panel.table.min()) and float(panel.table.max()) <= vy1


def test_help_getting_started_lists_panels_shortcuts_and_terms(qtbot, window):
    action = next(a for a in window.help_menu.actions() if "Getting started" in a.text())
    action.trigger()
    dialog = window._getting_started
    qtbot.addWidget(dialog)
    assert dialog.isVisible()
    text = dialog.browser.toPlainText()
    for title in ("Prompt", "Tokens", "Attention", "Next-token probabilities", "Positional encoding"):
        assert title in text
    for term in ("Attention", "Positional encoding", "Few-shot prompting"):
        assert term in text
    for keys in ("Ctrl+Q", "Ctrl+Enter", "F5", "Alt+Down", "Ctrl+Shift+P"):
        assert keys in text, keys
    html = dialog.browser.toHtml()
    assert all(f'name="{anchor}"' in html for anchor in ("attention", "positional", "fewshot"))


def test_ctrl_q_quits(qtbot, window):
    window.activateWindow()
    qtbot.keyClick(window.prompt_panel.editor, Qt.Key_Q, Qt.ControlModifier)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    assert window.controller.thread.wait(30_000)


def test_tools_has_one_playground_entry_that_opens_and_closes_it(qtbot, window):
    entries = [a for a in window.tools_menu.actions() if "Playground" in a.text()]
    assert len(entries) == 1
    dock = window.features["explorer.gui.playground"].dock
    assert entries[0].isCheckable() and not dock.isVisible()
    entries[0].trigger()
    assert dock.isVisible() and entries[0].isChecked()
    entries[0].trigger()
    assert not dock.isVisible()


def test_the_requested_layer_and_head_come_back_after_a_smaller_model(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)  # 3 layers x 4 heads
    window.controller.select_head(2, 3)
    load_and_run(qtbot, window, "tiny-bert", "the cat sat")  # 2 layers x 2 heads
    s = window.controller.selection
    assert (s.layer, s.head) == (1, 1)
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    s = window.controller.selection
    assert (s.layer, s.head) == (2, 3)
    assert "layer 2, head 3" in window.attention_panel.title.text()


def drawn_tick_texts(axis) -> list[str]:
    """The tick labels ``axis`` paints now (pyqtgraph's own draw specs, as its paint uses them)."""
    picture = QPicture()
    painter = QPainter(picture)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [] if specs is None else [text for _rect, _flags, text in specs[2]]


def test_empty_plots_have_no_numbers_and_the_map_says_how_to_get_one(qtbot, window):
    attention = window.attention_panel
    window.grab()
    empty_axes = {
        "grid layer": attention.grid.grid_plot.getAxis("left"),
        "grid head": attention.grid.grid_plot.getAxis("top"),
        "map query": attention.map.map_plot.getAxis("left"),
        "map key": attention.map.map_plot.getAxis("bottom"),
        "curves weight": attention.map.curves_plot.getAxis("left"),
        "curves position": attention.map.curves_plot.getAxis("bottom"),
    }
    assert {name: drawn_tick_texts(axis) for name, axis in empty_axes.items()} == dict.fromkeys(empty_axes, [])
    assert "Load a model" in attention.map.title.text()
    window.prompt_panel.auto_run = False
    with qtbot.waitSignal(window.controller.model_changed, timeout=WAIT_MS):
        window.load_model("tiny-llama")
    assert "press Run" in attention.map.title.text()
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    window.grab()
    drawn = {name: drawn_tick_texts(axis) for name, axis in empty_axes.items()}
    info = window.controller.result.model_info
    assert all(drawn.values()), drawn  # every axis counts something now
    assert {int(text) for text in drawn["grid layer"]} <= set(range(info.layers))
    assert {int(text) for text in drawn["grid head"]} <= set(range(info.heads))
    for text in drawn["curves weight"] + drawn["curves position"]:
        float(text)  # numbers, not token pieces
    assert "press Run" not in attention.map.title.text() and "layer" in attention.map.title.text()


def test_the_maps_overview_and_colour_choices_are_remembered(qtbot, window, tmp_path):
    from explorer.gui.controller import Controller
    from explorer.gui.main_window import MainWindow
    from explorer.gui.worker import EngineWorker
    from tests.gui.conftest import fake_load

    def restarted() -> MainWindow:
        """A new window on the same settings file, with a controller of its own."""
        controller = Controller(EngineWorker(load_fn=fake_load))
        again = MainWindow(controller, QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
        qtbot.addWidget(again)
        return again

    panel = window.attention_panel.map
    assert (panel.pooling_box.currentData(), panel.colour_box.currentData()) == ("max", "auto")
    panel.pooling_box.setCurrentIndex(panel.pooling_box.findData("mean"))
    panel.colour_box.setCurrentIndex(panel.colour_box.findData("view"))
    window.settings.sync()
    again = restarted()
    shown = again.attention_panel.map
    assert (shown.pooling_box.currentText(), shown.colour_box.currentText()) == ("overview: mean", "colour: in view")
    assert shown.key_for(again.controller.selection).how == "mean"  # the maps it asks for
    again.close()
    # a value this version does not know is ignored
    window.settings.setValue("map/colour", "sepia")
    window.settings.sync()
    third = restarted()
    assert third.attention_panel.map.colour_box.currentData() == "auto"
    third.close()

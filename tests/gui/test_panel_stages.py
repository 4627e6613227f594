"""A run is handed to the panels one panel per event-loop turn, each painted before the
next one starts."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from explorer.gui.panel_stages import PanelStages
from tests.gui.conftest import WAIT_MS, PaintLog, load_and_run


def test_each_stage_is_painted_before_the_next_one_runs(qtbot):
    log: list[str] = []
    labels = [QLabel("old") for _ in range(3)]
    filters = []
    for i, label in enumerate(labels):
        qtbot.addWidget(label)
        label.show()
        qtbot.waitExposed(label)
        filters.append(PaintLog(log, str(i)))
        label.installEventFilter(filters[-1])
    QApplication.processEvents()
    log.clear()
    stages = PanelStages()

    def stage(i: int):
        def run() -> None:
            log.append(f"stage {i}")
            labels[i].setText(f"new {i}")
        return str(i), run

    stages.start([stage(0), stage(1), stage(2)], done=lambda: log.append("done"))
    assert log == [] and stages.busy and stages.pending("0")  # nothing runs inside start
    qtbot.waitUntil(lambda: "done" in log and "paint 2" in log, timeout=5000)
    ran = [entry for entry in log if entry.startswith("stage") or entry in ("paint 0", "paint 1")]
    assert ran.index("paint 0") < ran.index("stage 1")
    assert ran.index("paint 1") < ran.index("stage 2")
    assert log.count("done") == 1 and not stages.busy


def test_a_new_start_replaces_what_is_queued_and_flush_runs_the_rest(qtbot):
    log: list[str] = []
    stages = PanelStages()
    stages.start([("a", lambda: log.append("a")), ("b", lambda: log.append("b"))],
                 done=lambda: log.append("old done"))
    stages.start([("c", lambda: log.append("c")), ("d", lambda: log.append("d"))],
                 done=lambda: log.append("done"))
    assert stages.pending("d") and not stages.pending("a")
    stages.flush()
    assert log == ["c", "d", "done"]
    qtbot.wait(50)
    assert log == ["c", "d", "done"]  # the timer finds nothing more to run


def shown_label(qtbot, log: list[str]) -> QLabel:
    """A shown label whose paints append ``paint label`` to ``log`` (empty on return)."""
    label = QLabel("old")
    qtbot.addWidget(label)
    label.show()
    qtbot.waitExposed(label)
    painted = PaintLog(log, "label")
    painted.setParent(label)  # kept alive with the label
    label.installEventFilter(painted)
    QApplication.processEvents()
    log.clear()
    return label


def test_a_panel_changed_in_a_stage_is_painted_in_the_next_turn(qtbot):
    log: list[str] = []
    label = shown_label(qtbot, log)
    stages = PanelStages()
    stages.start([("label", lambda: label.setText("new"), label), ("other", lambda: log.append("other"))])
    stages._timer.stop()  # stepped by hand below
    stages._next()  # the stage: the label changes with its updates off
    stages._timer.stop()
    assert label.text() == "new" and not label.updatesEnabled()
    QApplication.processEvents()
    assert "paint label" not in log
    assert stages._queue[0].name == "paint"
    stages._timer.stop()
    stages._next()  # the paint turn: painted within it, before the next stage is armed
    assert label.updatesEnabled() and stages.pending("other")
    assert "paint label" in log
    stages.start([("again", lambda: label.setText("newer"), label)])
    stages._timer.stop()
    stages._next()
    assert not label.updatesEnabled()
    stages.start([])  # a newer run replaces the queue: the label is not left frozen
    assert label.updatesEnabled()


def test_a_panel_is_made_ready_to_paint_in_a_turn_of_its_own(qtbot):
    """``before_paint`` (laying out a plot's axes: as long as the paint itself at 4,096
    tokens) runs in its own turn, the panel still frozen; a timer that fell due runs
    before the paint turn, which calls it again (cheap when nothing changed) and paints."""
    log: list[str] = []
    label = shown_label(qtbot, log)

    def before_paint(widget: QWidget) -> None:
        log.append(f"ready frozen={not widget.updatesEnabled()}")
        time.sleep(0.005)

    heartbeat = QTimer(interval=2)
    heartbeat.timeout.connect(lambda: log.append("beat"))
    heartbeat.start()
    stages = PanelStages(before_paint=before_paint)
    stages.start([("label", lambda: (log.append("stage"), label.setText("new")), label)])
    qtbot.waitUntil(lambda: not stages.busy and "paint label" in log, timeout=5000)
    heartbeat.stop()
    first_ready = log.index("ready frozen=True")
    assert log.index("stage") < first_ready < log.index("paint label")
    assert "beat" in log[first_ready:log.index("paint label")]  # the ready turn ended first
    assert log.count("ready frozen=True") == 2  # its turn, then again in the paint turn


def test_a_panel_that_needs_no_ready_turn_is_never_made_ready(qtbot):
    """Panels ``wants_ready`` leaves out (the token strip: no plots) get no ready turn, and
    their paint turn does not call ``before_paint`` either."""
    log: list[str] = []
    label = shown_label(qtbot, log)
    stages = PanelStages(before_paint=lambda widget: log.append("ready"),
                         wants_ready=lambda widget: widget is not label)
    stages.start([("label", lambda: label.setText("new"), label)])
    qtbot.waitUntil(lambda: not stages.busy and "paint label" in log, timeout=5000)
    assert "ready" not in log


class SlowLabel(QLabel):
    """A panel whose paint takes a while (as a plot's does), logged."""

    def __init__(self, log: list[str], name: str) -> None:
        super().__init__("old")
        self.log, self.name = log, name

    def paintEvent(self, event) -> None:  # noqa: N802
        self.log.append(f"paint {self.name}")
        time.sleep(0.015)
        super().paintEvent(event)


def test_timers_that_are_due_run_between_a_paint_and_the_next_stage(qtbot):
    """A heartbeat timer (any of the window's own timers) is served after each panel's
    paint, before the next stage: a turn and the next paint never add up to one block."""
    log: list[str] = []
    labels = [SlowLabel(log, str(i)) for i in range(8)]
    for label in labels:
        qtbot.addWidget(label)
        label.show()
        qtbot.waitExposed(label)
    QApplication.processEvents()
    heartbeat = QTimer(interval=2)
    heartbeat.timeout.connect(lambda: log.append("beat"))
    stages = PanelStages()

    def stage(i: int):
        def run() -> None:
            log.append(f"stage {i}")
            time.sleep(0.02)
            labels[i].setText(f"new {i}")
        return str(i), run, labels[i]

    heartbeat.start()
    qtbot.wait(10)
    log.clear()
    stages.start([stage(i) for i in range(len(labels))], done=lambda: log.append("done"))
    qtbot.waitUntil(lambda: "done" in log, timeout=5000)
    heartbeat.stop()
    for i in range(1, len(labels)):
        between = log[log.index(f"paint {i - 1}"):log.index(f"stage {i}")]
        assert "beat" in between, log


def test_paints_asked_for_while_stages_run_go_first(qtbot):
    log: list[str] = []
    label, other = QLabel("old"), QLabel("other")
    for widget in (label, other):
        qtbot.addWidget(widget)
    stages = PanelStages()
    stages.start([("a", lambda: log.append("a"), other), ("b", lambda: log.append("b"))],
                 done=lambda: log.append("done"))
    stages._timer.stop()
    stages._next()  # "a" ran: ``other`` waits for its paint turn
    label.setText("new")
    stages.paint_in_turns([label, other])
    assert [stage.name for stage in stages._queue] == ["paint", "paint", "b"]  # ``other`` once
    assert not label.updatesEnabled() and not other.updatesEnabled()
    stages.flush()
    assert log == ["a", "b", "done"] and label.updatesEnabled() and other.updatesEnabled()
    stages.paint_in_turns([label])  # idle: its own queue
    assert stages.busy and not label.updatesEnabled()
    stages.flush()
    assert label.updatesEnabled() and not stages.busy


def test_parts_of_a_panel_waiting_for_its_paint_are_painted_after_it_in_turns_of_their_own(qtbot):
    """A map that arrives while its panel still waits for its paint turn: the panel is
    painted, then each part in a turn of its own (not all in the panel's paint)."""
    log: list[str] = []
    panel = QWidget()
    parts = [QLabel("part 0", panel), QLabel("part 1", panel)]
    parts[1].move(0, 30)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    filters = [PaintLog(log, "panel"), PaintLog(log, "0"), PaintLog(log, "1")]
    for widget, paint_filter in zip([panel, *parts], filters, strict=True):
        widget.installEventFilter(paint_filter)
    QApplication.processEvents()
    stages = PanelStages()
    stages.start([("panel", lambda: None, panel), ("other", lambda: log.append("other"))])
    stages._timer.stop()
    stages._next()  # the panel's stage ran: its paint is next
    parts[0].setText("new 0")
    parts[1].setText("new 1")
    stages.paint_in_turns(parts)
    assert [stage.name for stage in stages._queue] == ["paint", "paint", "paint", "other"]
    log.clear()
    turns = []
    while stages.busy:
        stages._timer.stop()
        stages._next()
        QApplication.processEvents()
        turns.append(sorted(set(log)))
        log.clear()
    # (a part's paint repaints the panel's background under it: "paint panel" again)
    assert turns[0] == ["paint panel"]
    assert "paint 0" in turns[1] and "paint 1" not in turns[1]
    assert "paint 1" in turns[2] and "paint 0" not in turns[2]
    assert turns[3] == ["other"]


def test_a_panel_is_painted_once_no_stage_nor_paint_of_it_in_it_or_around_it_is_left(qtbot):
    panel, other = QWidget(), QLabel("other")
    part = QLabel("part", panel)
    for widget in (panel, other):
        qtbot.addWidget(widget)
    stages = PanelStages(before_paint=lambda widget: None)
    stages.start([("panel", lambda: None, panel), ("other", lambda: None, other)])
    stages._timer.stop()
    assert not stages.painted(panel) and not stages.painted(other)  # their stages wait
    stages._next()  # the panel's stage: frozen, its turns to be made ready and painted next
    stages._timer.stop()
    assert not stages.painted(panel)
    stages._next()  # ready
    stages._timer.stop()
    stages._next()  # painted
    stages._timer.stop()
    assert stages.painted(panel) and not stages.painted(other)
    stages.paint_in_turns([part])  # a part of it changed: the panel waits for that paint
    assert not stages.painted(panel) and stages.painted(QLabel("elsewhere"))
    stages.flush()
    assert stages.painted(panel) and stages.painted(other) and not stages.busy
    stages.start([("panel", lambda: None, panel)])  # the panel that holds the part
    assert not stages.painted(part)
    stages.flush()
    assert stages.painted(part)


def test_a_failing_stage_does_not_stop_the_others_nor_freeze_its_panel(qtbot):
    log: list[str] = []
    label = QLabel("old")
    qtbot.addWidget(label)
    stages = PanelStages()

    def broken() -> None:
        raise RuntimeError("broken on purpose")

    stages.start([("a", broken, label), ("b", lambda: log.append("b"))], done=lambda: log.append("done"))
    with pytest.raises(RuntimeError):
        stages.flush()
    stages.flush()
    assert log == ["b", "done"] and label.updatesEnabled()


def test_cancel_drops_the_stages_and_thaws_the_panels(qtbot):
    log: list[str] = []
    label = QLabel("old")
    qtbot.addWidget(label)
    stages = PanelStages()
    stages.start([("a", lambda: log.append("a"), label), ("b", lambda: log.append("b"))],
                 done=lambda: log.append("done"))
    stages._timer.stop()
    stages._next()
    assert not label.updatesEnabled()
    stages.cancel()
    qtbot.wait(30)
    assert log == ["a"] and label.updatesEnabled() and not stages.busy


def test_the_window_hands_a_run_over_in_turns_and_keeps_the_newest_selection(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", "The cat sat on the mat")
    controller = window.controller
    turns: list[tuple[int, str]] = []  # (tokens drawn, stage about to run)
    shown = []
    window.run_displayed.connect(lambda view: shown.append(view.result.prompt))
    original = window.stages._next

    painted_at_grid: dict[str, bool] = {}
    panels = {"map": window.attention_panel.map, "tokens": window.tokens_panel,
              "probability": window.probability_panel, "grid": window.attention_panel.grid,
              "positional": window.positional_panel}

    def next_stage() -> None:
        name = window.stages._queue[0][0] if window.stages._queue else ""
        turns.append((window.tokens_panel.count(), name))
        if name == "grid":
            painted_at_grid.update({key: window.stages.painted(panel) for key, panel in panels.items()})
        original()

    window.stages._timer.timeout.disconnect()
    window.stages._timer.timeout.connect(next_stage)
    with qtbot.waitSignal(controller.run_changed, timeout=WAIT_MS):
        window.prompt_panel.set_text("A dog ran far away from the big house")
        window.prompt_panel.run_now()
    n = controller.view.result.num_tokens
    assert window.tokens_panel.count() != n and window.stages.busy  # not drawn in one go
    controller.select_token(2)  # a click while the panels are still taking the run
    qtbot.waitUntil(lambda: bool(shown), timeout=WAIT_MS)
    names = [name for _, name in turns]
    # a panel is made ready to paint (its plots' axes laid out; the token strip has none)
    # and painted in turns of its own; the map, the strip and the bars (the first panels)
    # before the thumbnails and the positional plots
    assert names == ["map", "ready", "paint", "tokens", "paint", "probability", "ready", "paint",
                     "grid", "ready", "paint", "prompt", "positional", "ready", "paint"]
    # the first panels are painted before the grid's stage, the others after
    assert painted_at_grid == {"map": True, "tokens": True, "probability": True,
                               "grid": False, "positional": False}
    tokens = names.index("tokens")
    assert turns[tokens][0] != n and turns[tokens + 1][0] == n  # the strip changed in its turn
    assert window.tokens_panel.current_token() == 2
    assert window.probability_panel.shown_position == 2
    assert window.attention_panel.map.selection.token == 2
    qtbot.waitUntil(lambda: not window.stages.busy, timeout=WAIT_MS)
    qtbot.wait(50)
    assert shown == [controller.view.result.prompt]  # once per run, not per click


def run_and_log_plot_paints(qtbot, window, map_name: str) -> tuple[list[str], dict]:
    """Run a short prompt, then log ``paint <name>`` for every paint of the map, the bars
    and the positional plots (the filters live as long as their widgets)."""
    load_and_run(qtbot, window, "tiny-llama", "The cat sat on the mat")
    qtbot.waitUntil(lambda: not window.stages.busy, timeout=WAIT_MS)
    log: list[str] = []
    panels = {map_name: window.attention_panel.map.map_widget,
              "probability": window.probability_panel.plot_widget,
              "positional": window.positional_panel.plots}
    for name, widget in panels.items():
        paint_log = PaintLog(log, name)
        paint_log.setParent(widget)  # kept alive with the widget it watches
        widget.viewport().installEventFilter(paint_log)
    return log, panels


def test_a_click_sets_every_panel_at_once_and_paints_them_one_per_turn(qtbot, window):
    log, panels = run_and_log_plot_paints(qtbot, window, map_name="attention")
    window.controller.select_token(4)
    # the data is there at once ...
    assert window.probability_panel.shown_position == 4
    assert window.attention_panel.map.selection.token == 4
    assert window.positional_panel.shown_vector().size > 0
    # ... and the panels are painted in separate turns, in order
    turns: list[list[str]] = []
    window.stages._timer.stop()  # stepped by hand: one turn, then what Qt paints after it
    while window.stages.busy:
        window.stages._next()
        window.stages._timer.stop()
        QApplication.processEvents()
        turns.append(sorted({entry.split(" ", 1)[1] for entry in log}))
        log.clear()
    first_turn = {name: next(i for i, names in enumerate(turns) if name in names) for name in panels}
    assert first_turn["attention"] < first_turn["probability"] < first_turn["positional"]


def test_a_click_on_another_head_paints_only_the_panels_that_show_heads(qtbot, window):
    """The bars and the positional plots depend on the token, not the head: a click on
    another head leaves them as they are (each paint costs 10-25 ms at 8,192 tokens, while
    the worker computes the new head's map), and a click on another token paints them."""
    log, _ = run_and_log_plot_paints(qtbot, window, map_name="map")
    bars = window.probability_panel.bars.opts["width"].copy()
    window.controller.select_head(1, 2)
    qtbot.waitUntil(lambda: not window.stages.busy, timeout=WAIT_MS)
    qtbot.wait(100)
    assert "paint map" in log
    assert "paint probability" not in log and "paint positional" not in log
    np.testing.assert_array_equal(window.probability_panel.bars.opts["width"], bars)
    log.clear()
    window.controller.select_token(2)
    qtbot.waitUntil(lambda: not window.stages.busy, timeout=WAIT_MS)
    qtbot.wait(100)
    assert {"paint map", "paint probability", "paint positional"} <= set(log)
    result = window.controller.view.result
    np.testing.assert_allclose(window.probability_panel.bars.opts["width"], result.topk_probs[2, :len(bars)])
    np.testing.assert_allclose(window.positional_panel.shown_vector(), window.positional_panel.table[2])


def test_an_export_right_after_a_click_has_every_panel_painted(qtbot, window, tmp_path):
    """A click paints the panels one per turn; exporting before the last turn still gets
    the panel drawn (the window runs the remaining turns first)."""
    from PySide6.QtGui import QImage

    load_and_run(qtbot, window, "tiny-llama", "The cat sat on the mat")
    window.controller.select_token(3)
    map_panel = window.attention_panel.map
    assert window.stages.busy and not map_panel.updatesEnabled()
    path = tmp_path / "map.png"
    window._ask_path = lambda *args: str(path)
    window._export_image(window.attention_panel, "Attention", "png")
    assert not window.stages.busy and map_panel.updatesEnabled()
    image = QImage(str(path))
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height() // 2, 7)}
    assert len(colours) > 20  # the maps, not a blank widget

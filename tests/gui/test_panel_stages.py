"""A run is handed to the panels one panel per event-loop turn, each painted before the
next one starts."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QLabel

from explorer.gui.panel_stages import PanelStages
from tests.gui.conftest import WAIT_MS, load_and_run


class PaintLog(QObject):
    def __init__(self, log: list[str], name: str) -> None:
        super().__init__()
        self.log, self.name = log, name

    def eventFilter(self, _watched, event) -> bool:  # noqa: N802
        if event.type() == QEvent.Paint:
            self.log.append(f"paint {self.name}")
        return False


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


def test_a_failing_stage_does_not_stop_the_others(qtbot):
    log: list[str] = []
    stages = PanelStages()

    def broken() -> None:
        raise RuntimeError("broken on purpose")

    stages.start([("a", broken), ("b", lambda: log.append("b"))], done=lambda: log.append("done"))
    with pytest.raises(RuntimeError):
        stages.flush()
    stages.flush()
    assert log == ["b", "done"]


def test_the_window_hands_a_run_over_in_turns_and_keeps_the_newest_selection(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", "The cat sat on the mat")
    controller = window.controller
    turns: list[tuple[int, str]] = []  # (tokens drawn, stage about to run)
    shown = []
    window.run_displayed.connect(lambda view: shown.append(view.result.prompt))
    original = window.stages._next

    def next_stage() -> None:
        name = window.stages._queue[0][0] if window.stages._queue else ""
        turns.append((window.tokens_panel.count(), name))
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
    assert [name for _, name in turns] == ["map", "grid", "tokens", "probability", "prompt",
                                           "positional"]
    assert turns[2][0] != n and turns[3][0] == n  # the strip changed in its own turn
    assert window.tokens_panel.current_token() == 2
    assert window.probability_panel.shown_position == 2
    assert window.attention_panel.map.selection.token == 2
    assert shown == [controller.view.result.prompt]

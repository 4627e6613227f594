"""Results that arrive out of order, through the real worker thread: only the newest is shown."""

import threading

from explorer.core.progress import TaskState
from tests.gui.conftest import load_and_run


def test_a_run_that_finishes_after_a_newer_request_is_never_shown(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", "The start")
    worker = window.controller.worker
    real = worker._analyze_fn
    old_started, release_old = threading.Event(), threading.Event()
    finished: list[str] = []

    def analyze(model, prompt, top_k, task, *args, **kwargs):
        if prompt == "The old prompt":
            old_started.set()
            assert release_old.wait(30)  # still computing when the newer request comes
            task = TaskState()  # and it runs to the end instead of stopping at a layer
        result = real(model, prompt, top_k, task, *args, **kwargs)
        finished.append(prompt)
        return result

    worker._analyze_fn = analyze
    shown: list[str] = []
    window.run_displayed.connect(lambda v: shown.append(v.result.prompt))
    window.prompt_panel.set_text("The old prompt")
    window.prompt_panel.run_now()
    assert old_started.wait(30)
    window.prompt_panel.set_text("The new prompt, typed while the old one ran")
    window.prompt_panel.run_now()
    release_old.set()
    qtbot.waitUntil(lambda: window.controller.result.prompt.startswith("The new"), timeout=30000)
    qtbot.waitUntil(lambda: bool(shown), timeout=30000)  # the panels draw it a few turns later
    assert finished == ["The old prompt", "The new prompt, typed while the old one ran"]
    assert shown == ["The new prompt, typed while the old one ran"]
    assert window.tokens_panel.count() == window.controller.result.num_tokens


def test_a_stale_result_delivered_after_the_newest_is_dropped(qtbot, window):
    """Even when an old result reaches the GUI thread late (its signal queued behind the
    newest), the controller keeps the newest on screen."""
    first = load_and_run(qtbot, window, "tiny-gpt2", "The first prompt")
    newest = load_and_run(qtbot, window, "tiny-gpt2", "The newest prompt")
    assert first.request_id < newest.request_id
    shown: list[str] = []
    window.run_displayed.connect(lambda v: shown.append(v.result.prompt))
    with qtbot.waitSignal(window.controller.worker.run_finished, timeout=5000):
        window.controller.worker.run_finished.emit(first.request_id, first)  # the late one
    qtbot.waitUntil(lambda: True)  # let the queued delivery reach the controller
    window.controller.select_token(1)  # anything the panels draw now comes from the newest run
    assert window.controller.result.prompt == "The newest prompt"
    assert window.tokens_panel.count() == newest.result.num_tokens
    assert "The first prompt" not in shown

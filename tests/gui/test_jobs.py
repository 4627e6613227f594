"""The worker's job API: run a function on the loaded model, stream, cancel, show a result."""

import threading

import numpy as np

from explorer.core.selection import Selection
from tests.gui.conftest import load_and_run


def test_job_runs_in_the_worker_thread_and_streams(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", "The cat")
    seen, progress = [], []
    main = threading.get_ident()

    def job(model, task, emit):
        for i in range(3):
            task.progress(i / 3, f"step {i}")
            emit((i, threading.get_ident() != main))
        return model.info.name

    done = []
    window.controller.submit(job, on_done=done.append, on_event=seen.append,
                             on_progress=lambda f, m: progress.append(m))
    qtbot.waitUntil(lambda: bool(done), timeout=10000)
    assert done == ["tiny-gpt2"]
    assert seen == [(0, True), (1, True), (2, True)]
    assert progress == ["step 0", "step 1", "step 2"]


def test_job_cancel_and_failure(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", "The cat")
    gate = threading.Event()
    steps = []

    def slow(model, task, emit):
        for i in range(1000):
            gate.wait(5)
            task.check_cancelled()
            steps.append(i)
        return "finished"

    errors = []
    job = window.controller.submit(slow, on_error=lambda m, c: errors.append((m, c)))
    job.cancel()
    gate.set()
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)
    assert errors == [("Cancelled.", True)] and len(steps) <= 1

    def broken(model, task, emit):
        raise ValueError("boom")

    with qtbot.waitSignal(window.controller.error) as blocker:
        window.controller.submit(broken)
    assert "boom" in blocker.args[0]


def test_show_result_draws_every_panel_with_the_selection(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-llama", "The cat sat on the mat")
    from explorer.backend.engine import analyze

    other = analyze(window.controller.worker.model, "The dog sat on the log today")
    with qtbot.waitSignal(window.run_displayed, check_params_cb=lambda v: v.result is other):
        window.controller.show_result(other, Selection(token=2, layer=1, head=3))
    s = window.controller.selection
    assert (s.token, s.layer, s.head) == (2, 1, 3)
    assert window.tokens_panel.current_token() == 2
    np.testing.assert_allclose(window.attention_panel.shown_map, other.attentions[1, 3].astype(np.float32))
    assert window.probability_panel.shown_position == 2
    assert window.controller.result is other and view.result.prompt != other.prompt

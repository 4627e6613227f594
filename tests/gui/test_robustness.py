"""Robustness in the window: arbitrary prompts draw, rapid edits, model switches,
worker exceptions, a deleted model file, and closing while busy."""

import shutil
import threading
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.core.selection import Selection
from explorer.gui.run_view import RunView
from tests.backend.test_prompt_properties import PROMPTS
from tests.gui.conftest import drain_worker, load_and_run


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(prompt=PROMPTS, token=st.integers(0, 200), hide_first=st.booleans(), head_mean=st.booleans())
def test_every_panel_draws_any_prompt(qtbot, window, prompt, token, hide_first, head_mean):
    if window.controller.model_info is None:
        load_and_run(qtbot, window, "tiny-llama", "The cat")
    from explorer.backend.engine import analyze
    from explorer.core.errors import PromptError

    drain_worker(qtbot, window)  # jobs the previous example's panels queued
    try:
        result = analyze(window.controller.worker.model, prompt)
    except PromptError:
        return
    view = RunView.build(1, result)
    selection = Selection(token=token, layer=2, head=3, hide_first=hide_first, head_mean=head_mean)
    window.controller.view = view
    window.controller.selection = selection.clamped(result.num_tokens, result.model_info)
    window._show_run(view)  # exceptions inside Qt slots fail the test (pytest-qt)
    window._show_selection(window.controller.selection)
    window.stages.flush()  # the panels take a run one per event-loop turn: all of them now
    assert window.tokens_panel.count() == result.num_tokens
    window.grab()


def test_200_rapid_edits_during_runs_end_on_the_final_prompt(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", "The")
    editor = window.prompt_panel.editor
    text = ""
    for i in range(200):
        text = f"The cat sat on the mat {i}" if i % 2 else f"A dog {i}"
        editor.setPlainText(text)
        if i % 25 == 0:
            window.prompt_panel.run_now()  # runs in flight while typing goes on
        qtbot.wait(1)
    with qtbot.waitSignal(window.run_displayed, timeout=30000,
                          check_params_cb=lambda v: v.result.prompt == text):
        pass
    qtbot.wait(200)
    assert window.controller.result.prompt == text and not window.banner.isVisible()


def test_switching_models_during_a_run(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", "The cat")
    window.prompt_panel.set_text("The dog sat on the log")
    window.prompt_panel.run_now()
    with qtbot.waitSignal(window.run_displayed, timeout=30000,
                          check_params_cb=lambda v: v.result.model_info.name == "tiny-bert"):
        window.load_model("tiny-bert")
    assert window.controller.result.prompt == "The dog sat on the log"
    assert window.controller.result.model_info.name == "tiny-bert"


def test_worker_exception_gives_a_message_and_the_app_stays_usable(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", "The cat")
    worker = window.controller.worker
    real = worker._analyze_fn

    def explode(model, prompt, top_k, task, attention="auto"):
        if prompt == "explode":
            raise RuntimeError("simulated bug")
        return real(model, prompt, top_k, task, attention)

    worker._analyze_fn = explode
    with qtbot.waitSignal(window.controller.error) as blocker:
        window.prompt_panel.set_text("explode")
        window.prompt_panel.run_now()
    assert "Internal error (RuntimeError): simulated bug" in blocker.args[0]
    with qtbot.waitSignal(window.run_displayed, check_params_cb=lambda v: v.result.prompt == "The dog"):
        window.prompt_panel.set_text("The dog")
        window.prompt_panel.run_now()


def test_model_folder_deleted_between_runs(qtbot, tmp_path, tiny_gpt2_folder):
    """The real loader: the loaded model keeps working; reloading the gone folder says so."""
    from PySide6.QtCore import QSettings

    from explorer.gui.controller import Controller
    from explorer.gui.main_window import MainWindow

    folder = tmp_path / "model"
    shutil.copytree(tiny_gpt2_folder, folder)
    win = MainWindow(Controller(), QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(win)
    try:
        load_and_run(qtbot, win, str(folder), "The cat")
        shutil.rmtree(folder)
        with qtbot.waitSignal(win.run_displayed, check_params_cb=lambda v: v.result.prompt == "The dog"):
            win.prompt_panel.set_text("The dog")
            win.prompt_panel.run_now()
        with qtbot.waitSignal(win.controller.error, timeout=30000) as blocker:
            win.load_model(str(folder))
        assert "No such file or folder" in blocker.args[0]
        assert "still loaded" in blocker.args[0]
    finally:
        win.controller.shutdown()


def test_closing_during_a_load_stops_it_at_its_next_progress_report(qtbot, window):
    """Event-based, not wall-clock: once close() has asked the worker to cancel, the load
    makes at most one more progress report (the one that raises Cancelled)."""
    started = threading.Event()
    closing = threading.Event()
    after_close: list[int] = []
    worker = window.controller.worker
    cancel = worker.request_cancel_load

    def cancel_and_mark():
        cancel()
        closing.set()

    worker.request_cancel_load = cancel_and_mark

    def endless_load(spec, task, **options):
        started.set()
        for i in range(100000):  # a long load that reports progress (as real loads do)
            time.sleep(0.01)
            if closing.is_set():
                after_close.append(i)
            task.progress(i / 100000, "loading")
        raise AssertionError("never cancelled")

    worker._load_fn = endless_load
    window.load_model("slow")
    assert started.wait(30)
    window.close()
    assert window.controller.thread.wait(30_000)  # generous: only a hang fails
    assert not window.controller.thread.isRunning()
    assert closing.is_set() and len(after_close) <= 1


def test_closing_during_a_job_stops_it_at_its_next_check(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", "The cat")
    started = threading.Event()
    closing = threading.Event()
    after_close: list[int] = []
    worker = window.controller.worker
    cancel = worker.cancel_job

    def cancel_and_mark(job_id):
        cancel(job_id)
        closing.set()

    worker.cancel_job = cancel_and_mark

    def endless(model, task, emit):
        started.set()
        i = 0
        while True:
            time.sleep(0.01)
            if closing.is_set():
                after_close.append(i)
            i += 1
            task.check_cancelled()

    window.controller.submit(endless)
    assert started.wait(30)
    window.close()
    assert window.controller.thread.wait(30_000)
    assert not window.controller.thread.isRunning()
    assert closing.is_set() and len(after_close) <= 1


def test_closing_during_a_step_that_cannot_be_interrupted_waits_instead_of_aborting(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", "The cat")
    started = threading.Event()
    worker = window.controller.worker

    def stubborn(model, prompt, top_k, task, attention="auto"):
        started.set()
        time.sleep(3)  # e.g. reading a GGUF tokenizer: no cancellation point
        from explorer.backend.engine import analyze

        return analyze(model, prompt)

    worker._analyze_fn = stubborn
    window.prompt_panel.set_text("The dog")
    window.prompt_panel.run_now()
    assert started.wait(10)
    window.close()  # must not destroy a running QThread (that aborts the process)
    assert not window.isVisible()
    assert not window.controller.thread.isRunning()


def test_a_superseded_load_never_replaces_the_model(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", "The cat")
    worker = window.controller.worker
    real = worker._load_fn
    release = threading.Event()

    def slow_then_real(spec, task, **options):
        if spec == "tiny-bert":
            release.wait(10)  # a long load with no progress report in between
        return real(spec, task, **options)

    worker._load_fn = slow_then_real
    window.load_model("tiny-bert")
    with qtbot.waitSignal(window.controller.error, timeout=30000) as blocker:
        window.load_model("broken-model")  # requested while tiny-bert is still loading
        release.set()
    assert "tiny-gpt2" in blocker.args[0]
    qtbot.wait(200)
    assert window.controller.model_info.name == "tiny-gpt2"
    assert worker.model.info.name == "tiny-gpt2"  # the stale tiny-bert was dropped
    with qtbot.waitSignal(window.run_displayed, check_params_cb=lambda v: v.result.prompt == "The dog"):
        window.prompt_panel.set_text("The dog")
        window.prompt_panel.run_now()
    assert window.controller.result.model_info.name == "tiny-gpt2"

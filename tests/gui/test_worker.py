"""The engine worker: its background work returns freed memory and yields the processor
to the window's thread."""

import sys

import pytest
from PySide6.QtCore import Qt

from explorer.core.thread_priority import BACKGROUND_NICE
from tests.core.test_thread_priority import nice_of_this_thread
from tests.gui.conftest import WAIT_MS
from tests.gui.test_long_prompts import LONG


def test_the_worker_returns_freed_memory_after_each_step_of_background_work(qtbot, monkeypatch):
    """After each step of next-token rows and after each layer of thumbnails, the
    allocator's freed memory goes back to the OS (at 2,048 tokens it held up to 0.22 GB by
    the end of the thumbnails)."""
    import explorer.gui.worker as worker_module
    from explorer.gui.worker import EngineWorker
    from tests.gui.conftest import fake_load

    events: list[str] = []
    monkeypatch.setattr(worker_module, "release_freed_memory", lambda: events.append("release"))
    worker = EngineWorker(load_fn=fake_load)
    worker.load(1, "tiny-llama-long", {})
    views, ready = [], []
    worker.run_finished.connect(lambda _id, view: (views.append(view), events.append("run")))
    worker.next_tokens_ready.connect(lambda _id, result: ready.append(result))
    worker.thumbnails_ready.connect(lambda _id, _hide, layer, _tiles: events.append(f"layer {layer}"))
    steps = []
    original = worker._fill_next_tokens
    worker._next_tokens_step.disconnect()
    worker._next_tokens_step.connect(lambda *args: (steps.append(1), original(*args)),
                                     Qt.QueuedConnection)
    worker.run(5, LONG, 5, "auto", None, None)
    qtbot.waitUntil(lambda: bool(ready), timeout=30000)
    assert events[0] == "run"
    assert events.count("release") == len(steps)  # one per step of rows (the first: the
    # forward's working memory), none while the window takes the run
    events.clear()
    layers = views[0].result.model_info.layers
    worker.thumbnails(5, views[0].result, False, 0)
    qtbot.waitUntil(lambda: f"layer {layers - 1}" in events, timeout=30000)
    assert events == [entry for layer in range(layers) for entry in (f"layer {layer}", "release")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_maps_built_on_every_core_run_below_the_window_and_the_model_does_not(qtbot, window):
    """On two cores an overview built on both took the window's core while it painted: the
    worker's map threads run at a higher nice value. The worker thread itself (the model's
    forward) does not: lowered, its first panels came a quarter later."""
    from explorer.core.parallel import parallel_map

    if nice_of_this_thread() >= 19:
        pytest.skip("this process already runs at the lowest priority")
    with qtbot.waitSignal(window.controller.model_changed, timeout=WAIT_MS):
        window.load_model("tiny-llama")  # jobs run once a model is loaded
    seen: list[object] = []

    def job(model, task, emit):
        return nice_of_this_thread(), parallel_map(lambda _: nice_of_this_thread(), range(4), workers=2)

    window.controller.submit(job, on_done=seen.append,
                             on_error=lambda message, _cancelled: seen.append(message))
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    worker, pool = seen[0]
    assert worker == nice_of_this_thread()
    assert pool == [min(19, worker + BACKGROUND_NICE)] * 4



@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_steps_of_next_token_rows_run_below_the_window(qtbot, monkeypatch):
    """A step of rows on the worker thread, at its normal priority, kept the window's
    thread waiting for a core (48 ms at 8,192 tokens): the steps run on a lowered thread
    (torch's OpenMP threads for it are started from it)."""
    import explorer.backend.engine as engine
    from explorer.gui.worker import EngineWorker
    from tests.gui.conftest import fake_load

    if nice_of_this_thread() >= 19:
        pytest.skip("this process already runs at the lowest priority")
    seen: list[int] = []
    step = engine.PendingNextTokens.step

    def recorded(pending):
        seen.append(nice_of_this_thread())
        return step(pending)

    monkeypatch.setattr(engine.PendingNextTokens, "step", recorded)
    worker = EngineWorker(load_fn=fake_load)
    worker.load(1, "tiny-llama-long", {})
    ready: list[object] = []
    worker.next_tokens_ready.connect(lambda _id, result: ready.append(result))
    worker.run(5, LONG, 5, "auto", None, None)
    qtbot.waitUntil(lambda: bool(ready), timeout=30000)
    assert seen and set(seen) == {min(19, nice_of_this_thread() + BACKGROUND_NICE)}
    assert ready[0].topk_ids.min() >= 0  # every row computed

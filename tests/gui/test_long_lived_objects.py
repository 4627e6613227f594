"""After a load, the objects alive (window, model, libraries) are out of the collector's
sight, so a full collection no longer walks them while the window waits for the GIL."""

from __future__ import annotations

import gc

from tests.gui.conftest import WAIT_MS


def test_a_load_freezes_what_is_alive_and_the_next_load_starts_afresh(qtbot, window):
    gc.unfreeze()
    with qtbot.waitSignal(window.controller.model_changed, timeout=WAIT_MS):
        window.load_model("tiny-gpt2")
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # torch, transformers, Qt wrappers and the model
    garbage = [[]]
    garbage[0].append(garbage)  # a cycle made after the load: still collected
    del garbage
    assert gc.collect() >= 1
    with qtbot.waitSignal(window.controller.model_changed, timeout=WAIT_MS):
        window.load_model("tiny-llama")
    assert gc.get_freeze_count() >= frozen
    gc.unfreeze()  # leave the test process as it was

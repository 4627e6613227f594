"""After a load, the objects alive (window, model, libraries) are out of the collector's
sight, so a full collection no longer walks them while the window waits for the GIL."""

from __future__ import annotations

import gc
import weakref

from tests.gui.conftest import WAIT_MS


class Node:
    """Something that can sit in a reference cycle and be watched by a weak reference."""

    def __init__(self) -> None:
        self.me = self


def test_a_load_freezes_what_is_alive_and_a_replacing_load_collects_first(qtbot, window):
    gc.unfreeze()
    with qtbot.waitSignal(window.controller.model_changed, timeout=WAIT_MS):
        window.load_model("tiny-gpt2")
    assert gc.get_freeze_count() > 10_000  # torch, transformers, Qt wrappers and the model
    cycle = Node()
    watched = weakref.ref(cycle)
    gc.collect()  # survives one: in the oldest generation, like a long-lived model's parts
    del cycle  # garbage now, but only a full collection finds it
    with qtbot.waitSignal(window.controller.model_changed, timeout=WAIT_MS):
        window.load_model("tiny-llama")  # replaces the model: collected before the freeze
    assert watched() is None  # not frozen with the rest, as a dropped model's cycles would be
    assert gc.get_freeze_count() > 10_000
    later = Node()
    watched = weakref.ref(later)
    del later
    gc.collect()
    assert watched() is None  # objects made after the load are collected as usual
    gc.unfreeze()  # leave the test process as it was

"""The garbage collector and model loads: what lives as long as the app (libraries, the
window) is frozen before the first model is built, so full collections walk only what
came later; a model is never frozen, so a replacing load frees the old one; and a load
runs with automatic collection paused."""

from __future__ import annotations

import contextlib
import gc
import weakref

import pytest

from explorer.gui.worker import EngineWorker
from tests.gui.conftest import WAIT_MS, fake_load


class Node:
    """Something that can sit in a reference cycle and be watched by a weak reference."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def unfrozen_after():
    """Each test here freezes the test process's objects: they are let go after it."""
    yield
    gc.unfreeze()


@contextlib.contextmanager
def only_the_workers_collections():
    """Automatic collection off (assert inside): only the worker's own collection can
    free a cycle."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def held_in_a_cycle(model: object) -> weakref.ref:
    """Put ``model`` in a reference cycle, as real models are; a weak reference to it."""
    holder = Node()
    holder.model = model
    model.explorer_test_holder = holder
    return weakref.ref(model)


def tracked(thing: object) -> bool:
    """Whether a full collection walks ``thing`` (frozen objects are not listed)."""
    return any(entry is thing for entry in gc.get_objects())


def test_the_first_load_freezes_the_libraries_but_not_the_model(qtbot, window):
    gc.unfreeze()
    with qtbot.waitSignal(window.controller.model_changed, timeout=WAIT_MS):
        window.load_model("tiny-gpt2")
    frozen = gc.get_freeze_count()
    assert frozen > 10_000
    model = window.controller.worker.model.model
    assert tracked(model)  # walked by full collections: freed when dropped
    assert not tracked(window)  # alive before the load: frozen
    assert len(gc.get_objects()) < frozen / 4  # what a full collection still walks


def test_a_replacing_load_frees_the_old_model(qtbot, window):
    with qtbot.waitSignal(window.controller.model_changed, timeout=WAIT_MS):
        window.load_model("tiny-gpt2")
    old = held_in_a_cycle(window.controller.worker.model.model)
    cycle = Node()
    watched = weakref.ref(cycle)
    gc.collect()  # survives one: in the oldest generation, like a long-lived model's parts
    del cycle  # garbage now, but only a full collection finds it
    with only_the_workers_collections():
        with qtbot.waitSignal(window.controller.model_changed, timeout=WAIT_MS):
            window.load_model("tiny-llama")
        assert old() is None  # its reference cycles collected, not frozen
        assert watched() is None


def test_only_a_load_with_no_model_held_imports_and_freezes(qtbot, monkeypatch):
    from explorer.gui import worker as worker_module

    steps: list[str] = []
    monkeypatch.setattr(worker_module, "_import_libraries", lambda: steps.append("import"))

    def load(spec, task, **options):
        steps.append(f"load {spec}")
        return fake_load(spec, task, **options)

    worker = EngineWorker(load_fn=load)
    with qtbot.waitSignal(worker.load_failed, timeout=WAIT_MS):
        worker.load(1, "no-such-model", {})
    with qtbot.waitSignal(worker.model_loaded, timeout=WAIT_MS):
        worker.load(2, "tiny-gpt2", {})  # still no model held: imports again
    with qtbot.waitSignal(worker.model_loaded, timeout=WAIT_MS):
        worker.load(3, "tiny-llama", {})  # replaces it: the old model must not be frozen
    assert steps == ["import", "load no-such-model", "import", "load tiny-gpt2", "load tiny-llama"]


def test_a_load_runs_with_automatic_collection_paused(qtbot):
    seen: list[bool] = []

    def load(spec, task, **options):
        seen.append(gc.isenabled())
        return fake_load(spec, task, **options)

    worker = EngineWorker(load_fn=load)
    with qtbot.waitSignal(worker.model_loaded, timeout=WAIT_MS):
        worker.load(1, "tiny-gpt2", {})
    assert seen == [False] and gc.isenabled()
    with qtbot.waitSignal(worker.load_failed, timeout=WAIT_MS):
        worker.load(2, "no-such-model", {})  # a failed load turns it back on too
    assert seen == [False, False] and gc.isenabled()


def test_a_load_superseded_while_it_ran_frees_what_it_built(qtbot):
    built: list[weakref.ref] = []

    def load(spec, task, **options):
        loaded = fake_load(spec, task, **options)
        built.append(held_in_a_cycle(loaded.model))
        worker.supersede_loads(2)  # a newer load was asked for meanwhile
        return loaded

    worker = EngineWorker(load_fn=load)
    with only_the_workers_collections():
        worker.load(1, "tiny-gpt2", {})
        assert worker.model is None  # never installed
        assert built and built[0]() is None


def test_a_failed_load_frees_what_it_built(qtbot):
    built: list[weakref.ref] = []

    def load(spec, task, **options):
        loaded = fake_load("tiny-gpt2", task)  # held by the traceback's frame until it goes
        built.append(held_in_a_cycle(loaded.model))
        raise RuntimeError(f"broken after {loaded.info.name} was built")

    worker = EngineWorker(load_fn=load)
    with only_the_workers_collections():
        with qtbot.waitSignal(worker.load_failed, timeout=WAIT_MS) as blocker:
            worker.load(1, "tiny-gpt2", {})
        assert blocker.args[2] == "error" and worker.model is None
        assert built and built[0]() is None

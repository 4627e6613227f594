"""Keep Python's cyclic garbage collector from stopping the window.

A full collection walks every container object the collector tracks while holding the
interpreter lock, in whichever thread allocated at that moment; every other thread that
runs Python (the window's among them) waits for it. With the window's modules, torch,
transformers and SmolLM2 loaded that is about 410,000 objects, and one full walk took
0.19 s here. Loading SmolLM2 made five such walks, 45-166 ms each, as the imports and
the model's modules piled up.

So a load runs with automatic collection paused (``collection_paused``), and the objects
that live as long as the app (the libraries, the window) are frozen once, before the
first model is built (``freeze_long_lived``). Full collections then walk only the model
and what came later: 26,000-33,000 objects in the window with SmolLM2, 5-10 ms a walk.
A model is never frozen, so the one a new load replaces is freed by such a collection
instead of being kept by its reference cycles.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0
_was_enabled = True


@contextmanager
def collection_paused() -> Iterator[None]:
    """Automatic collection off while the block runs (in every thread: the collector is
    the process's), back as it was when the last overlapping pause ends."""
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()


def freeze_long_lived(imports: Callable[[], object] = lambda: None) -> int:
    """Collect what is garbage now, run ``imports`` (libraries the app will keep: imported
    after the collection, so it walks the heap without them), then move every object
    alive out of the collector's sight for good (``gc.freeze``). Whatever is alive then
    is never collected, even once it is garbage: call it when little else is (no model
    held, no run shown). Returns how many objects are frozen."""
    gc.collect()
    imports()
    gc.freeze()
    return gc.get_freeze_count()


def collect_dropped() -> None:
    """One full collection of the objects not frozen (a dropped model's reference
    cycles); a few milliseconds once ``freeze_long_lived`` has run."""
    gc.collect()

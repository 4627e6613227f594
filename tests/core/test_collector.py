"""Pausing the garbage collector (overlapping pauses, the state it was in) and freezing
what lives as long as the app."""

import gc
import weakref

from explorer.core.collector import collection_paused, freeze_long_lived


class Node:
    """Something that can sit in a reference cycle and be watched by a weak reference."""

    def __init__(self) -> None:
        self.me = self


def test_overlapping_pauses_end_with_the_last_one():
    assert gc.isenabled()
    with collection_paused():
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collection_paused():
            pass
        assert not gc.isenabled()  # left as it was
    finally:
        gc.enable()


def test_freezing_collects_first_then_imports_then_freezes():
    before = Node()
    garbage = weakref.ref(before)
    del before  # a cycle: only a collection frees it
    made: list[Node] = []
    try:
        assert freeze_long_lived(lambda: made.append(Node())) > 0
        assert garbage() is None  # collected, not frozen for good
        assert not any(entry is made[0] for entry in gc.get_objects())  # imported, then frozen
        later = Node()
        assert any(entry is later for entry in gc.get_objects())  # later objects are walked
    finally:
        gc.unfreeze()

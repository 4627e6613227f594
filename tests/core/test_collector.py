"""Pausing the garbage collector: overlapping pauses, and the state it was in."""

import gc

from explorer.core.collector import collection_paused


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

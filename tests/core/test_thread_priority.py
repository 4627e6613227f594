"""Background threads run at a lower priority than the thread that started them."""

import os
import sys
import threading

import pytest

from explorer.core.thread_priority import BACKGROUND_NICE, lower_this_thread


def nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_only_the_calling_thread_and_the_threads_it_starts_are_lowered():
    main_before = nice_of_this_thread()
    if main_before >= 19:
        pytest.skip("this process already runs at the lowest priority")
    seen: dict[str, int | bool] = {}

    def child() -> None:
        seen["child"] = nice_of_this_thread()

    def background() -> None:
        seen["lowered"] = lower_this_thread()
        seen["background"] = nice_of_this_thread()
        started = threading.Thread(target=child)
        started.start()
        started.join()

    thread = threading.Thread(target=background)
    thread.start()
    thread.join()
    assert seen["lowered"] is True
    assert seen["background"] == min(19, main_before + BACKGROUND_NICE) > main_before
    assert seen["child"] == seen["background"]  # a pool started from it inherits it
    assert nice_of_this_thread() == main_before  # the caller's own thread is untouched


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_threads_of_parallel_map_can_run_lowered():
    from explorer.core import parallel

    caller = nice_of_this_thread()
    if caller >= 19:
        pytest.skip("this process already runs at the lowest priority")
    try:
        parallel.lower_pool_threads(BACKGROUND_NICE)
        lowered = parallel.parallel_map(lambda _: nice_of_this_thread(), range(8), workers=2)
    finally:
        parallel.lower_pool_threads(0)
    plain = parallel.parallel_map(lambda _: nice_of_this_thread(), range(8), workers=2)
    assert lowered == [min(19, caller + BACKGROUND_NICE)] * 8
    assert plain == [caller] * 8 and nice_of_this_thread() == caller


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_run_lowered_returns_what_the_work_returns_from_a_lowered_thread():
    from explorer.core.thread_priority import run_lowered

    caller = nice_of_this_thread()
    if caller >= 19:
        pytest.skip("this process already runs at the lowest priority")
    assert run_lowered(nice_of_this_thread) == min(19, caller + BACKGROUND_NICE)
    assert nice_of_this_thread() == caller

    def fails() -> None:
        raise ValueError("from the lowered thread")

    with pytest.raises(ValueError, match="lowered thread"):
        run_lowered(fails)

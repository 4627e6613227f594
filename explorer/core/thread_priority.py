"""Let background threads give the processor to the window's thread first.

A higher nice value on a thread lets the scheduler run the window's thread first when
both want a core. On Linux the nice value belongs to each thread, and threads started
from it inherit it. The window lowers the threads that build attention maps on every
core (``parallel.lower_pool_threads``): at 4,096 tokens a 15 ms paint of the token strip
took 38 ms beside an overview being built on both cores. Lowering the worker thread
itself, whose torch threads run the model, made the first panels at 1,024 tokens a
quarter later (3.9 s against 3.1 s, four runs each): its forward stalled whenever the
window's thread took a core; the worker runs only its steps of next-token rows lowered
(``run_lowered``). Other processes at the default nice value also come before a lowered
thread.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Value = TypeVar("Value")

BACKGROUND_NICE = 10
"""How much lower than the window's thread background threads run (nice steps, 0-19)."""


def lower_this_thread(steps: int = BACKGROUND_NICE) -> bool:
    """Raise the calling thread's nice value by ``steps`` (capped at 19); False where the
    platform has no per-thread nice value or refuses it."""
    if not sys.platform.startswith("linux"):
        return False  # elsewhere setpriority(PRIO_PROCESS) would lower the whole process
    try:
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + steps))
    except (OSError, AttributeError):
        return False
    return True


def run_lowered(work: Callable[[], Value]) -> Value:
    """``work()`` on a background thread BACKGROUND_NICE steps below the caller's, waiting
    for it (exceptions propagate). torch gives that thread OpenMP threads of its own,
    started from it and so lowered too (a step of next-token rows on the worker thread,
    at 8,192 tokens, kept the window's thread waiting 48 ms for a core while it painted)."""
    return _lowered_executor().submit(work).result()


@functools.cache
def _lowered_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="background", initializer=lower_this_thread,
                              initargs=(BACKGROUND_NICE,))

"""Let background threads give the processor to the window's thread first.

A higher nice value on a thread lets the scheduler run the window's thread first when
both want a core. On Linux the nice value belongs to each thread, and threads started
from it inherit it. The window lowers the threads that build attention maps on every
core (``parallel.lower_pool_threads``): at 4,096 tokens a 15 ms paint of the token strip
took 38 ms beside an overview being built on both cores. Lowering the worker thread
itself, whose torch threads run the model, made the first panels at 1,024 tokens a
quarter later (3.9 s against 3.1 s, four runs each): its forward stalled whenever the
window's thread took a core. Other processes at the default nice value also come before
a lowered thread.
"""

from __future__ import annotations

import os
import sys
import threading

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

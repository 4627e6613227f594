"""Let background threads give the processor to the window's thread first.

On two cores, the worker's numpy and torch threads took both while the window handed a
run to its panels: a 15 ms paint of the token strip took 38 ms beside an overview being
built on both cores (4,096 tokens, traced). A higher nice value on the worker's thread
lets the scheduler run the window's thread first when both want a core. On Linux the
nice value belongs to each thread, and threads started later from that thread (the
overview's thread pools, torch's OpenMP team when the worker loads the model) inherit
it; threads started before, or from another thread, keep theirs (OpenBLAS starts its
pool when numpy is imported; the overview holds it to one thread per product, run in
the pool's own, lowered, threads). Other processes at the default nice value also come
before the worker.
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

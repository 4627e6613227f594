"""Run independent numpy work items on every core.

numpy releases the GIL inside its loops, so bands of an attention map rebuilt in threads
run side by side. Its BLAS (OpenBLAS) starts threads of its own for every matrix
product; with several Python threads each doing products that oversubscribes the cores
and is slower than one thread (measured on 2 cores: an 8,192-token overview 0.30-0.35 s
with both, about 0.2 s with BLAS held to one thread per product). threadpoolctl limits
numpy's BLAS, and only it (torch's OpenMP pool is left alone), while such work runs. The
limit is taken inside the pool's threads: taken by a calling thread other than the main
one it did not reach the pool (measured, OpenBLAS 0.3.31).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from threadpoolctl import ThreadpoolController

from explorer.core.thread_priority import lower_this_thread

Item = TypeVar("Item")
Value = TypeVar("Value")

WORKERS = max(1, min(4, os.cpu_count() or 1))
"""Threads per parallel call (the machine's cores, at most 4)."""

_controller: ThreadpoolController | None = None
_lock = threading.Lock()
_active = 0
_limiter: object | None = None
_pool_nice = 0  # nice steps the pool threads of later calls run below their caller


def _enter() -> None:
    global _controller, _active, _limiter
    with _lock:
        _active += 1
        if _active == 1:
            if _controller is None:
                _controller = ThreadpoolController()
            _limiter = _controller.limit(limits=1, user_api="blas")


def _leave() -> None:
    global _active, _limiter
    with _lock:
        _active -= 1
        if _active == 0 and _limiter is not None:
            _limiter.restore_original_limits()  # type: ignore[attr-defined]
            _limiter = None


def parallel_map(work: Callable[[Item], Value], items: Iterable[Item],
                 workers: int | None = None) -> list[Value]:
    """``[work(item) for item in items]`` on ``workers`` threads (default: WORKERS), with
    numpy's BLAS held to one thread while items run (items of calls from several threads
    at once are counted: the limit is lifted when the last one ends). Exceptions
    propagate."""
    items = list(items)
    workers = WORKERS if workers is None else workers
    if workers <= 1 or len(items) < 2:
        return [work(item) for item in items]

    def limited(item: Item) -> Value:  # the limit is taken in the pool's own threads:
        _enter()  # set from the calling thread it did not always reach them (measured)
        try:
            return work(item)
        finally:
            _leave()

    lowered = _pool_nice
    with ThreadPoolExecutor(min(workers, len(items)),
                            initializer=lower_this_thread if lowered else None,
                            initargs=(lowered,) if lowered else ()) as pool:
        return list(pool.map(limited, items))


def lower_pool_threads(steps: int) -> None:
    """Run the threads of later ``parallel_map`` calls ``steps`` nice steps below the
    thread that starts them (the window sets this: an overview built on both cores while
    it painted doubled its paints, 15 -> 38 ms at 4,096 tokens; the model's own forward,
    on torch's threads, is left alone, as lowering it slowed first panels by a quarter)."""
    global _pool_nice
    _pool_nice = max(0, steps)

"""Route transformers' tqdm progress bars into a TaskState (real progress, real cancel)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from explorer.core.progress import TaskState


class _ReportingBar:
    """A tqdm stand-in: iterating it reports each step and checks for cancellation."""

    def __init__(self, task: TaskState, iterable: Iterable | None = None, desc: str = "",
                 total: int | None = None, **_: Any) -> None:
        self._task = task
        self._iterable = iterable
        self._desc = (desc or "working").rstrip(". ")
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total or 0
        self.n = 0

    def __iter__(self) -> Iterator:
        assert self._iterable is not None
        for item in self._iterable:
            yield item
            self.update(1)

    def update(self, n: int = 1) -> None:
        self.n += n
        fraction = self.n / self.total if self.total else 0.0
        self._task.progress(fraction, f"{self._desc} ({self.n}/{self.total})")

    def __enter__(self) -> _ReportingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        return None

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self._desc = desc

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        return None

    def refresh(self) -> None:
        return None


@contextlib.contextmanager
def transformers_progress(task: TaskState) -> Iterator[None]:
    """While active, transformers' progress bars (GGUF conversion, weight loading,
    shard writing) report to ``task`` instead of printing, and honour its cancel flag."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    def factory(*args: Any, **kwargs: Any) -> _ReportingBar:
        iterable = args[0] if args else kwargs.pop("iterable", None)
        return _ReportingBar(task, iterable, **kwargs)

    def hook(_factory: Any, args: tuple, kwargs: dict) -> _ReportingBar:
        return factory(*args, **kwargs)

    previous_gguf_tqdm = gguf_utils.tqdm
    gguf_utils.tqdm = factory
    previous_hook = hf_logging.set_tqdm_hook(hook)
    try:
        yield
    finally:
        gguf_utils.tqdm = previous_gguf_tqdm
        hf_logging.set_tqdm_hook(previous_hook)

"""A long forward's MLP blocks run a slice of positions at a time.

An MLP block acts on each position alone, so running it on slices of the sequence gives
the output it gives on the whole. On the whole, at 32,768 tokens Gemma 3's MLP holds
float32 [T, 2,048] intermediates of 268 MB each. Each is freed inside the model's Python
code, so the interpreter lock is held while the kernel unmaps it (20-30 ms each here),
and the window's thread, waiting for that lock, misses its paints. A slice of
``ROWS`` positions keeps them at 16 MB, which the allocator reuses instead of unmapping.

Only modules named ``mlp`` whose class name ends in ``MLP`` are sliced (Llama, Gemma,
GPT-2 and their kin); mixture-of-experts blocks and anything else run whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ROWS = 2048
"""Positions per slice (float32 [2,048, 2,048]: 16 MB, under glibc's 32 MB mmap threshold)."""


def sliceable_mlps(model: Any) -> list[Any]:
    """The model's position-wise MLP blocks (see the module docstring)."""
    return [module for name, module in model.named_modules()
            if name.rsplit(".", 1)[-1] == "mlp" and type(module).__name__.endswith("MLP")]


@contextmanager
def mlps_in_slices(model: Any, rows: int | None = None) -> Iterator[int]:
    """While active, each MLP block given float[batch, T, hidden] with T > ``rows``
    (default ``ROWS``) runs on slices of ``rows`` positions and writes them into one
    output. Yields how many blocks it wraps."""
    rows = ROWS if rows is None else rows
    blocks = [module for module in sliceable_mlps(model) if "forward" not in vars(module)]
    for module in blocks:
        module.forward = _sliced(module.forward, rows)
    try:
        yield len(blocks)
    finally:
        for module in blocks:
            vars(module).pop("forward", None)


def _sliced(forward: Any, rows: int) -> Any:
    def sliced_forward(hidden: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or getattr(hidden, "dim", lambda: 0)() != 3 or hidden.shape[1] <= rows:
            return forward(hidden, *args, **kwargs)
        first = forward(hidden[:, :rows])
        out = first.new_empty((first.shape[0], hidden.shape[1], *first.shape[2:]))
        out[:, :rows] = first
        del first
        for start in range(rows, hidden.shape[1], rows):
            out[:, start:start + rows] = forward(hidden[:, start:start + rows])
        return out

    return sliced_forward

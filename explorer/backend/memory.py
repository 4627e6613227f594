"""Refuse a run that would not fit in this machine's memory (the estimate is in core)."""

from __future__ import annotations

import os

from explorer.core.errors import PromptError
from explorer.core.memory_estimate import estimate_run_bytes
from explorer.core.types import ModelInfo

MEMORY_FRACTION = 0.6
"""Refuse a run whose estimated peak would use more than this share of available memory."""


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else physical memory via sysconf, else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit(limit: int | None = None) -> int | None:
    """The bytes a run may use: ``limit``, else $ATTENTION_EXPLORER_MAX_RUN_BYTES, else
    MEMORY_FRACTION of what the machine has available (None when unknown)."""
    if limit is not None:
        return limit
    env = os.environ.get("ATTENTION_EXPLORER_MAX_RUN_BYTES")
    if env:
        return int(env)
    available = available_bytes()
    return int(available * MEMORY_FRACTION) if available else None


def check_memory(info: ModelInfo, num_tokens: int, mode: str = "full", limit: int | None = None,
                 ) -> int:
    """Raise PromptError when the run would not fit; returns the estimate in bytes.
    ``limit`` overrides the machine's memory (tests inject it)."""
    needed = estimate_run_bytes(info, num_tokens, mode)
    limit = memory_limit(limit)
    if limit is None or needed <= limit:
        return needed
    if mode == "full":
        raise PromptError(
            f"A {num_tokens:,}-token prompt needs about {needed / 1e9:.1f} GB to keep every attention "
            f"map of {info.layers} layers × {info.heads} heads, more than the {limit / 1e9:.1f} GB "
            "that can safely be used. Use lazy attention (maps rebuilt on demand from queries "
            "and keys) or shorten the prompt.")
    raise PromptError(
        f"A {num_tokens:,}-token prompt needs about {needed / 1e9:.1f} GB in {mode} attention mode, "
        f"more than the {limit / 1e9:.1f} GB that can safely be used. Shorten the prompt.")

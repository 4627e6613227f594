"""Estimate what a forward with attention capture costs before running it."""

from __future__ import annotations

import os

from explorer.core.errors import PromptError
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


def estimate_run_bytes(info: ModelInfo, num_tokens: int) -> int:
    """Peak extra bytes of analyze(): the float16 maps of every layer, one layer's float32
    scores and weights in flight (the capture hooks free them layer by layer; x3 for the
    eager kernel's temporaries), and the float32 logits over the vocabulary."""
    layer_map = info.heads * num_tokens * num_tokens
    logits = num_tokens * info.vocab_size * 4 if info.causal else 0
    return info.layers * layer_map * 2 + 3 * layer_map * 4 + logits


def check_memory(info: ModelInfo, num_tokens: int, limit: int | None = None) -> None:
    """Raise PromptError when the run would not fit; ``limit`` overrides the machine's."""
    if limit is None:
        env = os.environ.get("ATTENTION_EXPLORER_MAX_RUN_BYTES")
        if env:
            limit = int(env)
        else:
            available = available_bytes()
            limit = int(available * MEMORY_FRACTION) if available else None
    if limit is None:
        return
    needed = estimate_run_bytes(info, num_tokens)
    if needed > limit:
        raise PromptError(
            f"A {num_tokens}-token prompt needs about {needed / 1e9:.1f} GB to keep every attention "
            f"map of {info.layers} layers × {info.heads} heads, more than the {limit / 1e9:.1f} GB "
            "that can safely be used. Shorten the prompt.")

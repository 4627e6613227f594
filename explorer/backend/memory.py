"""Estimate what a run costs before running it, for each attention mode."""

from __future__ import annotations

import os

from explorer.core.errors import PromptError
from explorer.core.types import ModelInfo

MEMORY_FRACTION = 0.6
"""Refuse a run whose estimated peak would use more than this share of available memory."""
LOGIT_CHUNK = 256
"""Positions per chunk of the output head in the fast (lazy / none) forward."""


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


def _activation_bytes(info: ModelInfo, num_tokens: int) -> int:
    """One layer's float32 activations in flight (hidden states, projections, MLP)."""
    return num_tokens * info.hidden_size * 4 * 12


def estimate_run_bytes(info: ModelInfo, num_tokens: int, mode: str = "full") -> int:
    """Peak extra bytes of analyze() in attention ``mode``.

    full: the float16 maps of every layer, one layer's float32 scores and weights in flight
    (the capture hooks free them layer by layer; x3 for the eager kernel's temporaries),
    and the float32 logits over the vocabulary.
    lazy: float32 queries and keys of every layer, plus one layer's activations and a chunk
    of the output head (sdpa never builds the T x T matrix).
    none: the activations and the head chunk only.
    """
    if mode == "full":
        layer_map = info.heads * num_tokens * num_tokens
        logits = num_tokens * info.vocab_size * 4 if info.causal else 0
        return info.layers * layer_map * 2 + 3 * layer_map * 4 + logits
    head_dim = info.head_dim or info.hidden_size // max(1, info.heads)
    head_chunk = 3 * min(num_tokens, LOGIT_CHUNK) * info.vocab_size * 4 if info.causal else 0
    fast = _activation_bytes(info, num_tokens) + head_chunk + num_tokens * info.hidden_size * 4
    if mode == "none":
        return fast
    queries_keys = info.layers * (info.heads + info.kv_heads) * num_tokens * head_dim * 4
    return fast + queries_keys


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
            f"A {num_tokens}-token prompt needs about {needed / 1e9:.1f} GB to keep every attention "
            f"map of {info.layers} layers × {info.heads} heads, more than the {limit / 1e9:.1f} GB "
            "that can safely be used. Use lazy attention (maps rebuilt on demand from queries "
            "and keys) or shorten the prompt.")
    raise PromptError(
        f"A {num_tokens}-token prompt needs about {needed / 1e9:.1f} GB in {mode} attention mode, "
        f"more than the {limit / 1e9:.1f} GB that can safely be used. Shorten the prompt.")


def describe_estimate(info: ModelInfo, num_tokens: int, mode: str) -> str:
    """e.g. 'lazy attention, about 0.4 GB' for the prompt panel and the CLI summary."""
    needed = estimate_run_bytes(info, num_tokens, mode)
    size = f"{needed / 1e9:.1f} GB" if needed >= 1e8 else f"{needed / 1e6:.0f} MB"
    return f"{mode} attention, about {size}"

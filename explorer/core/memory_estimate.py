"""What a run will cost in memory, per attention mode (pure arithmetic on ModelInfo, so the
window can say it before asking the worker)."""

from __future__ import annotations

from explorer.core.types import ModelInfo

LOGIT_CHUNK = 256
"""Positions per chunk of the output head in the fast (lazy / none) forward."""


def _activation_bytes(info: ModelInfo, num_tokens: int) -> int:
    """One layer's float32 activations in flight (hidden states, projections, MLP)."""
    return num_tokens * info.hidden_size * 4 * 12


def estimate_run_bytes(info: ModelInfo, num_tokens: int, mode: str = "full") -> int:
    """Peak extra bytes of analyze() in attention ``mode``.

    full: the float16 maps of every layer, one layer's float32 scores and weights in flight
    (the capture hooks free them layer by layer; x3 for the eager kernel's temporaries),
    and the float32 logits over the vocabulary.
    lazy: float32 queries and keys of every layer, plus one layer's activations and a chunk
    of the output head (sdpa never builds the T x T matrix), and, for a model with sliding-
    window layers and a prompt at least as long as the window, the one boolean [T, T] mask
    transformers builds for them (the layers run in blocks, ``backend/banded_attention.py``).
    none: the activations, the head chunk and that mask only.
    The mask is built a block of rows at a time (``backend/blocked_mask.py``), so no more
    than that one [T, T] mask exists at once (Gemma 3, 32,768 tokens, ``none``: 2.05 GB
    over the loaded model against 2.97 GB estimated; 3.23 GB before the blocks, when
    transformers held three [T, T] masks while combining them; measured 2026-11-30).
    """
    if mode == "full":
        layer_map = info.heads * num_tokens * num_tokens
        logits = num_tokens * info.vocab_size * 4 if info.causal else 0
        return info.layers * layer_map * 2 + 3 * layer_map * 4 + logits
    head_dim = info.head_dim or info.hidden_size // max(1, info.heads)
    head_chunk = 3 * min(num_tokens, LOGIT_CHUNK) * info.vocab_size * 4 if info.causal else 0
    fast = _activation_bytes(info, num_tokens) + head_chunk + num_tokens * info.hidden_size * 4
    if any(window is not None and window <= num_tokens for window in info.layer_windows):
        fast += num_tokens * num_tokens  # the sliding-window layers' mask, one byte a cell
    queries_keys = info.layers * (info.heads + info.kv_heads) * num_tokens * head_dim * 4
    return fast if mode == "none" else fast + queries_keys


def describe_estimate(info: ModelInfo, num_tokens: int, mode: str) -> str:
    """e.g. 'lazy attention, about 0.4 GB' for the prompt panel and the CLI summary."""
    needed = estimate_run_bytes(info, num_tokens, mode)
    size = f"{needed / 1e9:.1f} GB" if needed >= 1e8 else f"{needed / 1e6:.0f} MB"
    return f"{mode} attention, about {size}"

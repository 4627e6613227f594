"""Frozen records that cross threads: model description and one analysis run.

Every array is numpy and read-only once inside a record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from explorer.core.attention import ATTENTION_MODES, AttentionSpec, check_lazy_arrays
from explorer.core.errors import ResultIncompleteError

PositionalKind = Literal["rotary", "learned", "sinusoidal", "alibi", "none"]
POSITIONAL_KINDS: tuple[str, ...] = ("rotary", "learned", "sinusoidal", "alibi", "none")


@dataclass(frozen=True)
class RopeGroup:
    """Layers that rotate their queries and keys with the same frequencies.

    name:     the layer type that selects them ("sliding_attention", "full_attention"), or
              "all" when every layer shares one rotary embedding
    base:     the RoPE base (theta), read back from the model's own inverse frequencies
    layers:   int[...] the layer indices that use it
    inv_freq: float[pairs] the model's inverse frequencies (angle = position * inv_freq)
    """

    name: str
    base: float
    layers: tuple[int, ...]
    inv_freq: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        object.__setattr__(self, "inv_freq", tuple(float(f) for f in self.inv_freq))

    @property
    def label(self) -> str:
        """"local (sliding window)" / "global (full attention)" / the name."""
        return {"sliding_attention": "local (sliding window)",
                "full_attention": "global (full attention)"}.get(self.name, self.name)


@dataclass(frozen=True)
class ModelInfo:
    """What the panels and exports say about a loaded model.

    layer_windows: per layer, its sliding attention window in tokens, or None for full
                   attention (empty when unknown)
    rope_groups:   the rotary embeddings and which layers use each (empty without RoPE);
                   two groups when local and global layers rotate with different bases
    device:        where the weights live ("cpu", "cuda", "cuda:1", "mps")
    encoder_decoder: a sequence-to-sequence model (T5, BART): encoder, decoder and
                   cross-attention stacks; ``layers``/``heads`` describe the encoder
    """

    name: str
    architecture: str
    layers: int
    heads: int
    kv_heads: int
    hidden_size: int
    vocab_size: int
    context_length: int
    positional_kind: str
    causal: bool
    dtype: str = "float32"
    rope_base: float | None = None
    rope_dims: int | None = None
    head_dim: int | None = None
    piece_style: str = "byte_level"
    source: str = ""
    fingerprint: str | None = None  # sha256 of the model file (or folder listing) it came from
    chat_template: bool = False  # the tokenizer has a chat template (instruct models)
    layer_windows: tuple[int | None, ...] = ()
    rope_groups: tuple[RopeGroup, ...] = ()
    device: str = "cpu"
    encoder_decoder: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer_windows", tuple(
            None if w is None else int(w) for w in self.layer_windows))
        object.__setattr__(self, "rope_groups", tuple(
            g if isinstance(g, RopeGroup) else RopeGroup(**g) for g in self.rope_groups))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        data = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (1 without grouped-query attention)."""
        return max(1, self.heads // max(1, self.kv_heads))


def _frozen(array: np.ndarray, dtype: Any) -> np.ndarray:
    out = np.ascontiguousarray(array, dtype=dtype)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class RunResult:
    """One prompt through one model.

    token_ids:   int64[T]
    tokens:      str[T]           token pieces as the tokenizer shows them ("Ġthe")
    offsets:     int64[T, 2]      character span in the prompt, [-1, -1] for special tokens
    attentions:  float16[L, H, T, T]  rows = query position, columns = key position
                                  (attention_mode "full"; None otherwise)
    topk_ids:    int64[T, K]      next-token candidates after each position (K = 0 for encoders)
    topk_probs:  float32[T, K]
    topk_logits: float32[T, K]
    topk_tokens: str[T, K]        the candidates as token pieces
    positional:  float32[P, D]    the model's real positional scheme for positions 0..T-1
    last_probs:  float32[V]       full next-token distribution after the last token (V = 0 for encoders)
    actual_next_probs: float32[T] probability the model gave the prompt's own next token
                                  (NaN at the last position and for encoders)
    actual_next_ranks: int64[T]   its 1-based rank in the full distribution (-1 where undefined)
    attention_mode: "full" (attentions), "lazy" (queries, keys, attention_spec) or "none"
    queries:     float32|float16[L, H, T, D]   post-positional queries (lazy)
    keys:        float32|float16[L, KV, T, D]  post-positional keys (lazy)
    attention_spec: AttentionSpec   how each layer turns them into weights (lazy)
    notes:       things the user should know about this run (e.g. a fallback to full capture)
    key_tokens:  str[S] when the keys are other tokens than the queries (cross-attention of an
                 encoder-decoder: queries = decoder tokens, keys = encoder tokens); then
                 attentions is float16[L, H, T, S]. None: keys are the run's own tokens.
    next_tokens_pending: True for a long run shown before its next-token rows are all
                 computed (``backend.engine.analyze_first``): only the last position's
                 row of topk_*, and last_probs, hold values; the other rows hold ids -1,
                 NaN probabilities and no tokens until the complete result replaces it.

    Read attention through ``explorer.core.attention.head_map`` (any mode), not through
    ``attentions``.
    """

    prompt: str
    token_ids: np.ndarray
    tokens: tuple[str, ...]
    offsets: np.ndarray
    attentions: np.ndarray | None
    topk_ids: np.ndarray
    topk_probs: np.ndarray
    topk_logits: np.ndarray
    topk_tokens: tuple[tuple[str, ...], ...]
    positional: np.ndarray
    positional_kind: str
    model_info: ModelInfo
    timings: dict[str, float] = field(default_factory=dict)
    last_probs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    actual_next_probs: np.ndarray | None = None
    actual_next_ranks: np.ndarray | None = None
    attention_mode: str = "full"
    queries: np.ndarray | None = None
    keys: np.ndarray | None = None
    attention_spec: AttentionSpec | None = None
    notes: tuple[str, ...] = ()
    key_tokens: tuple[str, ...] | None = None
    next_tokens_pending: bool = False

    def __post_init__(self) -> None:
        conversions = {
            "token_ids": np.int64,
            "offsets": np.int64,
            "topk_ids": np.int64,
            "topk_probs": np.float32,
            "topk_logits": np.float32,
            "positional": np.float32,
            "last_probs": np.float32,
        }
        n = len(self.tokens)
        if self.actual_next_probs is None:
            object.__setattr__(self, "actual_next_probs", np.full(n, np.nan, np.float32))
        if self.actual_next_ranks is None:
            object.__setattr__(self, "actual_next_ranks", np.full(n, -1, np.int64))
        conversions["actual_next_probs"] = np.float32
        conversions["actual_next_ranks"] = np.int64
        for name, dtype in conversions.items():
            object.__setattr__(self, name, _frozen(getattr(self, name), dtype))
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "topk_tokens", tuple(tuple(row) for row in self.topk_tokens))
        object.__setattr__(self, "notes", tuple(self.notes))
        if self.token_ids.shape != (n,) or self.offsets.shape != (n, 2):
            raise ValueError("token_ids, tokens and offsets disagree on the token count")
        if self.key_tokens is not None:
            object.__setattr__(self, "key_tokens", tuple(self.key_tokens))
            if self.attention_mode != "full":
                raise ValueError("cross-attention (key_tokens) is kept in full only")
        if self.attention_mode not in ATTENTION_MODES:
            raise ValueError(f"unknown attention mode {self.attention_mode!r}")
        if self.attention_mode == "full":
            if self.attentions is None:
                raise ValueError("a full-attention run needs attentions")
            object.__setattr__(self, "attentions", _frozen(self.attentions, np.float16))
            s = n if self.key_tokens is None else len(self.key_tokens)
            if self.attentions.ndim != 4 or self.attentions.shape[2:] != (n, s):
                raise ValueError(f"attentions must be [L, H, {n}, {s}], got {self.attentions.shape}")
        elif self.attention_mode == "lazy":
            check_lazy_arrays(self.queries, self.keys, self.attention_spec, n)
            for name in ("queries", "keys"):
                array = getattr(self, name)
                dtype = np.float16 if array.dtype == np.float16 else np.float32
                object.__setattr__(self, name, _frozen(array, dtype))
        if self.positional_kind not in POSITIONAL_KINDS:
            raise ValueError(f"unknown positional kind {self.positional_kind!r}")

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    def has_next_tokens_at(self, position: int | None = None) -> bool:
        """True when the next-token row after ``position`` (None: every row) is computed;
        only a run shown early (``next_tokens_pending``) lacks some, all but the last."""
        return not self.next_tokens_pending or position == self.num_tokens - 1

    def require_next_tokens(self, what: str, position: int | None = None) -> None:
        """Raise ResultIncompleteError when ``what`` needs next-token rows (after
        ``position``; None: every row) still pending."""
        if not self.has_next_tokens_at(position):
            raise ResultIncompleteError(
                f"Cannot {what} yet: the next-token probabilities after every position are "
                "still being computed. Try again in a moment.")

    @property
    def top_k(self) -> int:
        return int(self.topk_ids.shape[1]) if self.topk_ids.ndim == 2 else 0

    @property
    def has_next_token(self) -> bool:
        return self.top_k > 0

    @property
    def key_labels(self) -> tuple[str, ...]:
        """The pieces of the attended-to tokens (the columns of every map)."""
        return self.tokens if self.key_tokens is None else self.key_tokens

    @property
    def has_attention(self) -> bool:
        """Maps can be read with ``head_map`` (full or lazy runs)."""
        return self.attention_mode != "none"

    @property
    def attention_bytes(self) -> int:
        """Memory held by the attention data (maps, or queries and keys)."""
        arrays = (self.attentions, self.queries, self.keys)
        return int(sum(a.nbytes for a in arrays if a is not None))

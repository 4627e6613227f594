"""An encoder-decoder run (T5, FLAN-T5, BART): three attention stacks and the decoder's
next-token numbers, and how each stack becomes a RunResult the panels can draw.

Stacks:
- ``encoder``: encoder self-attention over the source, float16[L_enc, H, S, S] (bidirectional);
- ``decoder``: decoder self-attention over the decoder tokens, float16[L_dec, H, T, T] (causal);
- ``cross``:   decoder queries over encoder keys, float16[L_dec, H, T, S].

The decoder tokens are the decoder's input: its start token, then the target text's tokens
(or the greedily generated ones). Top-k arrays are for decoder positions: row t holds the
candidates for the token after decoder token t.

numpy only (no torch): the archive written by :func:`save_npz` reads back with ``np.load``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from explorer.core.types import ModelInfo, RunResult

STACKS: tuple[str, ...] = ("encoder", "decoder", "cross")
STACK_LABELS: dict[str, str] = {
    "encoder": "Encoder self-attention",
    "decoder": "Decoder self-attention",
    "cross": "Cross-attention (decoder → encoder)",
}
ARCHIVE_KIND = "seq2seq"


def _frozen(array: Any, dtype: Any) -> np.ndarray:
    out = np.ascontiguousarray(array, dtype=dtype)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class Seq2SeqResult:
    """One source (and target) through one encoder-decoder model.

    prompt:             the source text
    target:             the text fed to the decoder, or None when it was generated greedily
    token_ids:          int64[S]  encoder input ids;  tokens: str[S];  offsets: int64[S, 2]
    decoder_token_ids:  int64[T]  decoder input ids (start token first)
    decoder_tokens:     str[T]
    encoder_attentions: float16[L_enc, H, S, S]
    decoder_attentions: float16[L_dec, H_dec, T, T]
    cross_attentions:   float16[L_dec, H_dec, T, S]
    topk_ids:           int64[T, K]   next-token candidates after each decoder token
    topk_probs:         float32[T, K];  topk_logits: float32[T, K];  topk_tokens: str[T, K]
    last_probs:         float32[V]    distribution after the last decoder token
    actual_next_probs:  float32[T]    probability of the decoder's own next token (NaN at the end)
    actual_next_ranks:  int64[T]      its 1-based rank (-1 at the end)
    positional:         float32[P, D] the encoder's positional table for P = max(S, T)
    """

    prompt: str
    target: str | None
    token_ids: np.ndarray
    tokens: tuple[str, ...]
    offsets: np.ndarray
    decoder_token_ids: np.ndarray
    decoder_tokens: tuple[str, ...]
    encoder_attentions: np.ndarray
    decoder_attentions: np.ndarray
    cross_attentions: np.ndarray
    topk_ids: np.ndarray
    topk_probs: np.ndarray
    topk_logits: np.ndarray
    topk_tokens: tuple[tuple[str, ...], ...]
    last_probs: np.ndarray
    actual_next_probs: np.ndarray
    actual_next_ranks: np.ndarray
    positional: np.ndarray
    positional_kind: str
    model_info: ModelInfo
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, dtype in (("token_ids", np.int64), ("offsets", np.int64),
                            ("decoder_token_ids", np.int64), ("encoder_attentions", np.float16),
                            ("decoder_attentions", np.float16), ("cross_attentions", np.float16),
                            ("topk_ids", np.int64), ("topk_probs", np.float32),
                            ("topk_logits", np.float32), ("last_probs", np.float32),
                            ("actual_next_probs", np.float32), ("actual_next_ranks", np.int64),
                            ("positional", np.float32)):
            object.__setattr__(self, name, _frozen(getattr(self, name), dtype))
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "decoder_tokens", tuple(self.decoder_tokens))
        object.__setattr__(self, "topk_tokens", tuple(tuple(r) for r in self.topk_tokens))
        s, t = len(self.tokens), len(self.decoder_tokens)
        checks = {
            "encoder_attentions": (self.encoder_attentions, (s, s)),
            "decoder_attentions": (self.decoder_attentions, (t, t)),
            "cross_attentions": (self.cross_attentions, (t, s)),
        }
        for name, (array, tail) in checks.items():
            if array.ndim != 4 or array.shape[2:] != tail:
                raise ValueError(f"{name} must be [L, H, {tail[0]}, {tail[1]}], got {array.shape}")
        if self.decoder_attentions.shape[:2] != self.cross_attentions.shape[:2]:
            raise ValueError("decoder and cross attentions disagree on layers or heads")
        if self.token_ids.shape != (s,) or self.decoder_token_ids.shape != (t,):
            raise ValueError("token ids and tokens disagree on the token count")
        if self.topk_ids.shape[0] != t:
            raise ValueError("top-k arrays must have one row per decoder token")

    @property
    def generated(self) -> bool:
        return self.target is None

    def stack_result(self, stack: str) -> RunResult:
        """The stack as a RunResult: ``encoder`` (source tokens, no next-token bars),
        ``decoder`` (decoder tokens, causal, bars) or ``cross`` (decoder tokens as queries,
        ``key_tokens`` = source tokens, bars)."""
        if stack not in STACKS:
            raise ValueError(f"unknown stack {stack!r}; use one of {', '.join(STACKS)}")
        info = self.model_info
        note = (f"{STACK_LABELS[stack]}; decoder "
                + ("generated greedily" if self.generated else f"fed the target {self.target!r}"))
        if stack == "encoder":
            s = len(self.tokens)
            layers, heads = self.encoder_attentions.shape[:2]
            return RunResult(
                prompt=self.prompt, token_ids=self.token_ids, tokens=self.tokens,
                offsets=self.offsets, attentions=self.encoder_attentions,
                topk_ids=np.zeros((s, 0), np.int64), topk_probs=np.zeros((s, 0), np.float32),
                topk_logits=np.zeros((s, 0), np.float32), topk_tokens=[[] for _ in range(s)],
                positional=self.positional[:s], positional_kind=self.positional_kind,
                model_info=replace(info, layers=int(layers), heads=int(heads),
                                   kv_heads=int(heads), causal=False),
                timings=dict(self.timings), notes=(note,))
        t = len(self.decoder_tokens)
        layers, heads = self.decoder_attentions.shape[:2]
        return RunResult(
            prompt=self.prompt, token_ids=self.decoder_token_ids, tokens=self.decoder_tokens,
            offsets=np.full((t, 2), -1, np.int64),
            attentions=self.decoder_attentions if stack == "decoder" else self.cross_attentions,
            topk_ids=self.topk_ids, topk_probs=self.topk_probs, topk_logits=self.topk_logits,
            topk_tokens=self.topk_tokens, positional=self.positional[:t],
            positional_kind=self.positional_kind,
            model_info=replace(info, layers=int(layers), heads=int(heads), kv_heads=int(heads),
                               causal=True),
            timings=dict(self.timings), last_probs=self.last_probs,
            actual_next_probs=self.actual_next_probs, actual_next_ranks=self.actual_next_ranks,
            notes=(note,), key_tokens=self.tokens if stack == "cross" else None)


def save_npz(result: Seq2SeqResult, path: str | Path) -> Path:
    """Write the run as a NumPy archive (names are a contract with users' notebooks):
    encoder_attentions, decoder_attentions, cross_attentions, decoder_token_ids,
    decoder_tokens, topk_ids, topk_probs, topk_logits, topk_tokens (decoder positions),
    last_probs, actual_next_probs, actual_next_ranks, token_ids, tokens, offsets (source),
    prompt, target ("" when generated), generated, positional, positional_kind, model_info,
    timings, kind ("seq2seq")."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    t = len(result.decoder_tokens)
    topk_tokens = (np.array(result.topk_tokens, dtype=str) if result.topk_ids.shape[1]
                   else np.zeros((t, 0), dtype="<U1"))
    with path.open("wb") as handle:
        np.savez(
            handle,
            kind=np.array(ARCHIVE_KIND),
            encoder_attentions=result.encoder_attentions,
            decoder_attentions=result.decoder_attentions,
            cross_attentions=result.cross_attentions,
            decoder_token_ids=result.decoder_token_ids,
            decoder_tokens=np.array(result.decoder_tokens, dtype=str),
            topk_ids=result.topk_ids,
            topk_probs=result.topk_probs,
            topk_logits=result.topk_logits,
            topk_tokens=topk_tokens,
            last_probs=result.last_probs,
            actual_next_probs=result.actual_next_probs,
            actual_next_ranks=result.actual_next_ranks,
            token_ids=result.token_ids,
            tokens=np.array(result.tokens, dtype=str),
            offsets=result.offsets,
            prompt=np.array(result.prompt),
            target=np.array(result.target or ""),
            generated=np.array(result.generated),
            positional=result.positional,
            positional_kind=np.array(result.positional_kind),
            model_info=np.array(result.model_info.to_json()),
            timings=np.array(json.dumps(result.timings)),
        )
    return path


def summary_dict(result: Seq2SeqResult) -> dict[str, Any]:
    """The CLI's short JSON: source and decoder tokens, top-5 after the last decoder token."""
    last = len(result.decoder_tokens) - 1
    top = [{"id": int(result.topk_ids[last, i]), "token": result.topk_tokens[last][i],
            "prob": round(float(result.topk_probs[last, i]), 6)}
           for i in range(min(5, result.topk_ids.shape[1]))]
    return {
        "model": result.model_info.name,
        "kind": ARCHIVE_KIND,
        "num_tokens": len(result.tokens),
        "tokens": list(result.tokens),
        "decoder_tokens": list(result.decoder_tokens),
        "generated": result.generated,
        "top5_next": top,
        "encoder_attentions_shape": list(result.encoder_attentions.shape),
        "decoder_attentions_shape": list(result.decoder_attentions.shape),
        "cross_attentions_shape": list(result.cross_attentions.shape),
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
    }


def full_dict(result: Seq2SeqResult) -> dict[str, Any]:
    """Every array as JSON-ready lists (large)."""
    def maps(array: np.ndarray) -> list:
        return array.astype(np.float32).round(5).tolist()

    return {
        **summary_dict(result),
        "prompt": result.prompt,
        "target": result.target,
        "model_info": json.loads(result.model_info.to_json()),
        "token_ids": result.token_ids.tolist(),
        "offsets": result.offsets.tolist(),
        "decoder_token_ids": result.decoder_token_ids.tolist(),
        "encoder_attentions": maps(result.encoder_attentions),
        "decoder_attentions": maps(result.decoder_attentions),
        "cross_attentions": maps(result.cross_attentions),
        "topk_ids": result.topk_ids.tolist(),
        "topk_probs": result.topk_probs.tolist(),
        "topk_logits": result.topk_logits.tolist(),
        "topk_tokens": [list(r) for r in result.topk_tokens],
        "last_probs": result.last_probs.tolist(),
        "actual_next_probs": [None if np.isnan(p) else float(p) for p in result.actual_next_probs],
        "actual_next_ranks": result.actual_next_ranks.tolist(),
        "positional": result.positional.tolist(),
        "positional_kind": result.positional_kind,
        "timings": result.timings,
    }

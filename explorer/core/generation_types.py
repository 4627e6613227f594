"""Frozen records of a generation run: one per generated token, one for the whole run.

They cross threads (worker -> GUI) and hold numpy arrays only, read-only.
Shapes use L = layers, H = heads, P = prompt tokens, T = all tokens (prompt +
generated), K = alternatives kept per step, V = vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explorer.core.sampling import SamplingSettings
from explorer.core.types import ModelInfo, RunResult

STOP_REASONS = ("length", "eos", "stop_sequence", "cancelled")


def _frozen(array: Any, dtype: Any) -> np.ndarray:
    out = np.ascontiguousarray(array, dtype=dtype)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class GenerationStep:
    """One generated token and everything the hover / click shows about it.

    index:          0-based among the generated tokens
    position:       absolute position in the sequence (P + index)
    token_id, token: the id and its piece as the tokenizer shows it ("Ġthe")
    text:           the characters this token added to the decoded completion
                    ("" for special tokens and incomplete UTF-8 bytes)
    prob:           probability it had after penalty / temperature / top-k / top-p
                    (what it was sampled from; 0.0 if a forced token was filtered out)
    raw_prob:       softmax of the raw logits at its id
    raw_rank:       1-based rank in the raw distribution
    top_ids:        int64[K]   best alternatives after the filters (fewer if the filters
                               kept fewer tokens), sorted descending
    top_probs:      float32[K]
    raw_top_ids:    int64[K]   best alternatives in the raw distribution
    raw_top_probs:  float32[K]
    raw_top_logits: float32[K]
    attention:      float16[L, H, position + 1]  this token's attention row over every
                    earlier token and itself, captured once while generating
    forced:         True if the user chose it ("continue with this alternative")
    """

    index: int
    position: int
    token_id: int
    token: str
    text: str
    prob: float
    raw_prob: float
    raw_rank: int
    top_ids: np.ndarray
    top_tokens: tuple[str, ...]
    top_probs: np.ndarray
    raw_top_ids: np.ndarray
    raw_top_tokens: tuple[str, ...]
    raw_top_probs: np.ndarray
    raw_top_logits: np.ndarray
    attention: np.ndarray
    forced: bool = False
    elapsed_s: float = 0.0

    def __post_init__(self) -> None:
        for name, dtype in (("top_ids", np.int64), ("top_probs", np.float32),
                            ("raw_top_ids", np.int64), ("raw_top_probs", np.float32),
                            ("raw_top_logits", np.float32), ("attention", np.float16)):
            object.__setattr__(self, name, _frozen(getattr(self, name), dtype))
        object.__setattr__(self, "top_tokens", tuple(self.top_tokens))
        object.__setattr__(self, "raw_top_tokens", tuple(self.raw_top_tokens))
        if self.attention.ndim != 3 or self.attention.shape[2] != self.position + 1:
            raise ValueError(f"attention must be [L, H, {self.position + 1}], "
                             f"got {self.attention.shape}")

    def top(self) -> list[tuple[int, str, float]]:
        """[(id, token, prob)] after the filters."""
        return [(int(i), t, float(p)) for i, t, p in
                zip(self.top_ids, self.top_tokens, self.top_probs, strict=True)]

    def raw_top(self) -> list[tuple[int, str, float]]:
        """[(id, token, prob)] of the raw distribution."""
        return [(int(i), t, float(p)) for i, t, p in
                zip(self.raw_top_ids, self.raw_top_tokens, self.raw_top_probs, strict=True)]


@dataclass(frozen=True)
class GenerationResult:
    """A prompt and what the model generated after it, with the attention of every token.

    prompt:            what the user typed
    model_text:        the exact text the model saw before the first generated token
                       (the chat-templated prompt when ``chat`` is on)
    prompt_ids:        int64[P]
    prompt_tokens:     str[P]
    prompt_offsets:    int64[P, 2]     character spans in ``model_text`` ([-1, -1] special)
    prompt_attentions: float16[L, H, P, P]
    prompt_topk_ids:   int64[P, K]     raw next-token candidates after each prompt position
    prompt_topk_probs: float32[P, K]
    prompt_topk_logits: float32[P, K]
    prompt_next_probs: float32[P]      probability of the prompt's own next token (NaN last)
    prompt_next_ranks: int64[P]        its 1-based rank (-1 last)
    steps:             one GenerationStep per generated token
    final_probs:       float32[V]      raw next-token distribution after the last token
    final_topk_ids / final_topk_probs / final_topk_logits: [K] the same, top-K
    positional:        float32[T, D]   the model's positional scheme for every position
    settings:          the settings used (with the seed actually drawn)
    stop_reason:       "length", "eos", "stop_sequence" or "cancelled"
    """

    prompt: str
    model_text: str
    chat: bool
    prompt_ids: np.ndarray
    prompt_tokens: tuple[str, ...]
    prompt_offsets: np.ndarray
    prompt_attentions: np.ndarray
    prompt_topk_ids: np.ndarray
    prompt_topk_tokens: tuple[tuple[str, ...], ...]
    prompt_topk_probs: np.ndarray
    prompt_topk_logits: np.ndarray
    prompt_next_probs: np.ndarray
    prompt_next_ranks: np.ndarray
    steps: tuple[GenerationStep, ...]
    completion: str
    final_probs: np.ndarray
    final_topk_ids: np.ndarray
    final_topk_tokens: tuple[str, ...]
    final_topk_probs: np.ndarray
    final_topk_logits: np.ndarray
    positional: np.ndarray
    positional_kind: str
    model_info: ModelInfo
    settings: SamplingSettings
    stop_reason: str
    stop_sequence: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, dtype in (("prompt_ids", np.int64), ("prompt_offsets", np.int64),
                            ("prompt_attentions", np.float16), ("prompt_topk_ids", np.int64),
                            ("prompt_topk_probs", np.float32), ("prompt_topk_logits", np.float32),
                            ("prompt_next_probs", np.float32), ("prompt_next_ranks", np.int64),
                            ("final_probs", np.float32), ("final_topk_ids", np.int64),
                            ("final_topk_probs", np.float32), ("final_topk_logits", np.float32),
                            ("positional", np.float32)):
            object.__setattr__(self, name, _frozen(getattr(self, name), dtype))
        object.__setattr__(self, "prompt_tokens", tuple(self.prompt_tokens))
        object.__setattr__(self, "prompt_topk_tokens",
                           tuple(tuple(row) for row in self.prompt_topk_tokens))
        object.__setattr__(self, "final_topk_tokens", tuple(self.final_topk_tokens))
        object.__setattr__(self, "steps", tuple(self.steps))
        p = len(self.prompt_tokens)
        if self.prompt_ids.shape != (p,) or self.prompt_attentions.shape[2:] != (p, p):
            raise ValueError("prompt ids, tokens and attentions disagree on the prompt length")
        for i, step in enumerate(self.steps):
            if step.index != i or step.position != p + i:
                raise ValueError(f"step {i} is out of place (index {step.index}, "
                                 f"position {step.position})")
        if self.stop_reason not in STOP_REASONS:
            raise ValueError(f"unknown stop reason {self.stop_reason!r}")

    # ---- sizes and sequences -------------------------------------------------

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_tokens)

    @property
    def num_generated(self) -> int:
        return len(self.steps)

    @property
    def num_tokens(self) -> int:
        return self.num_prompt_tokens + self.num_generated

    @property
    def generated_ids(self) -> list[int]:
        return [s.token_id for s in self.steps]

    @property
    def token_ids(self) -> np.ndarray:
        """int64[T] prompt then generated ids."""
        return np.concatenate([self.prompt_ids, np.asarray(self.generated_ids, np.int64)])

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.prompt_tokens + tuple(s.token for s in self.steps)

    @property
    def text(self) -> str:
        """The completion (generated text without the prompt)."""
        return self.completion

    # ---- attention -----------------------------------------------------------

    def attention_row(self, position: int) -> np.ndarray:
        """float16[L, H, position + 1]: the attention of the token at ``position``."""
        p = self.num_prompt_tokens
        if position < p:
            return self.prompt_attentions[:, :, position, : position + 1]
        return self.steps[position - p].attention

    def attention_map(self) -> np.ndarray:
        """float16[L, H, T, T] for the whole sequence, assembled without running the model:
        the prompt block from the prompt forward, then each generated token's captured
        row (zero to the right of the diagonal, as in any causal map)."""
        p, t = self.num_prompt_tokens, self.num_tokens
        layers, heads = self.prompt_attentions.shape[:2]
        out = np.zeros((layers, heads, t, t), dtype=np.float16)
        out[:, :, :p, :p] = self.prompt_attentions
        for step in self.steps:
            out[:, :, step.position, : step.position + 1] = step.attention
        return out

    # ---- next-token view of every position -----------------------------------

    def next_topk(self, position: int,
                  ) -> tuple[np.ndarray, tuple[str, ...], np.ndarray, np.ndarray]:
        """Raw next-token candidates after ``position`` (the next-token bars):
        (int64[K] ids, tokens, float32[K] probs, float32[K] logits)."""
        p = self.num_prompt_tokens
        if position < p - 1:
            return (self.prompt_topk_ids[position], self.prompt_topk_tokens[position],
                    self.prompt_topk_probs[position], self.prompt_topk_logits[position])
        following = position - p + 1
        if following < self.num_generated:
            step = self.steps[following]
            return step.raw_top_ids, step.raw_top_tokens, step.raw_top_probs, step.raw_top_logits
        return (self.final_topk_ids, self.final_topk_tokens, self.final_topk_probs,
                self.final_topk_logits)

    def to_run_result(self) -> RunResult:
        """The whole sequence as a RunResult, so every analysis panel can show it.

        ``prompt`` is model_text + completion; generated tokens' offsets are the spans
        their decoded text occupies in it.
        """
        p, t = self.num_prompt_tokens, self.num_tokens
        k = self.prompt_topk_ids.shape[1] if self.prompt_topk_ids.ndim == 2 else 0
        rows_ids, rows_probs, rows_logits, rows_tokens = [], [], [], []
        for position in range(t):
            ids, tokens, probs, logits = self.next_topk(position)
            rows_ids.append(ids[:k])
            rows_probs.append(probs[:k])
            rows_logits.append(logits[:k])
            rows_tokens.append(tokens[:k])
        offsets = [self.prompt_offsets]
        start = len(self.model_text)
        for step in self.steps:
            offsets.append(np.array([[start, start + len(step.text)]], np.int64))
            start += len(step.text)
        next_probs = np.full(t, np.nan, np.float32)
        next_ranks = np.full(t, -1, np.int64)
        next_probs[:p] = self.prompt_next_probs
        next_ranks[:p] = self.prompt_next_ranks
        for step in self.steps:
            next_probs[step.position - 1] = step.raw_prob
            next_ranks[step.position - 1] = step.raw_rank
        return RunResult(
            prompt=self.model_text + self.completion,
            token_ids=self.token_ids,
            tokens=self.tokens,
            offsets=np.concatenate(offsets).reshape(-1, 2),
            attentions=self.attention_map(),
            topk_ids=np.stack(rows_ids).reshape(t, k),
            topk_probs=np.stack(rows_probs).reshape(t, k),
            topk_logits=np.stack(rows_logits).reshape(t, k),
            topk_tokens=rows_tokens,
            positional=self.positional[:t],
            positional_kind=self.positional_kind,
            model_info=self.model_info,
            timings=dict(self.timings),
            last_probs=self.final_probs,
            actual_next_probs=next_probs,
            actual_next_ranks=next_ranks,
        )

    def summary_dict(self) -> dict[str, Any]:
        """The JSON the CLI writes: text, generated_ids, steps[{id, token, prob, raw_prob,
        top: [[id, token, prob]], raw_top}], plus prompt, settings and timings."""
        return {
            "model": self.model_info.name,
            "prompt": self.prompt,
            "chat": self.chat,
            "model_text": self.model_text,
            "prompt_ids": self.prompt_ids.tolist(),
            "text": self.completion,
            "generated_ids": self.generated_ids,
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "settings": self.settings.to_dict(),
            "steps": [
                {
                    "id": s.token_id,
                    "token": s.token,
                    "text": s.text,
                    "prob": s.prob,
                    "raw_prob": s.raw_prob,
                    "raw_rank": s.raw_rank,
                    "forced": s.forced,
                    "top": [list(entry) for entry in s.top()],
                    "raw_top": [list(entry) for entry in s.raw_top()],
                }
                for s in self.steps
            ],
            "timings": dict(self.timings),
        }

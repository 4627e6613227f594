"""Sampling settings and the filtered next-token distribution (numpy only).

This is the one reference for "the probability after temperature / top-k /
top-p": the generator samples from it, the GUI hover shows it, the tests
compare it with an independent computation.

Order of the filters (the same as transformers' ``generate``):

1. repetition penalty on the raw logits, for every id already in the sequence
   (prompt included): positive logits are divided by the penalty, negative
   ones multiplied by it;
2. greedy (``greedy=True`` or ``temperature == 0``): all mass on the argmax;
3. temperature: logits / T;
4. top-k: keep the k largest logits (ties with the k-th are kept);
5. top-p (nucleus): in descending order keep the smallest prefix whose
   cumulative probability reaches p (always at least one token);
6. renormalise the kept probabilities to sum to 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from explorer.core.errors import ExplorerError

DEFAULT_MAX_NEW_TOKENS = 32
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_K = 50
DEFAULT_TOP_P = 0.95
DEFAULT_REPETITION_PENALTY = 1.0
_NUCLEUS_PROBE = 512


@dataclass(frozen=True)
class SamplingSettings:
    """What the playground controls set.

    top_k = 0 and top_p = 1.0 switch those filters off; temperature = 0 or
    greedy = True take the most likely token every time; seed = None draws a
    fresh seed (the generator records the one it used).
    """

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int = DEFAULT_TOP_K
    top_p: float = DEFAULT_TOP_P
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY
    seed: int | None = None
    stop: tuple[str, ...] = ()
    greedy: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(s for s in self.stop if s))

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0

    def validate(self) -> SamplingSettings:
        """Raise ExplorerError naming the first bad setting; return self."""
        if self.max_new_tokens < 1:
            raise ExplorerError("max new tokens must be at least 1.")
        if not np.isfinite(self.temperature) or self.temperature < 0:
            raise ExplorerError("temperature must be 0 (greedy) or a positive number.")
        if self.top_k < 0:
            raise ExplorerError("top-k must be 0 (off) or a positive number of tokens.")
        if not 0.0 < self.top_p <= 1.0:
            raise ExplorerError("top-p must be in (0, 1]; 1 switches it off.")
        if not np.isfinite(self.repetition_penalty) or self.repetition_penalty <= 0:
            raise ExplorerError("repetition penalty must be a positive number (1 = off).")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ExplorerError("seed must be a non-negative integer.")
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data


def apply_repetition_penalty(logits: np.ndarray, previous_ids: Sequence[int] | np.ndarray,
                             penalty: float) -> np.ndarray:
    """float[V] -> float32[V] copy with every id in ``previous_ids`` penalised."""
    out = np.array(logits, dtype=np.float32, copy=True)
    if penalty == 1.0 or len(previous_ids) == 0:
        return out
    ids = np.unique(np.asarray(previous_ids, dtype=np.int64))
    values = out[ids]
    out[ids] = np.where(values < 0, values * np.float32(penalty), values / np.float32(penalty))
    return out


def filtered_support(logits: np.ndarray, settings: SamplingSettings,
                     previous_ids: Sequence[int] | np.ndarray = (),
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The tokens that survive the filters and their renormalised probabilities.

    logits: float[V] raw next-token logits.
    Returns (int64[S] ids, float64[S] probs) sorted by probability descending,
    probs summing to 1. S is 1 for greedy.
    """
    x = apply_repetition_penalty(logits, previous_ids, settings.repetition_penalty)
    if settings.is_greedy:
        return np.array([int(np.argmax(x))], np.int64), np.ones(1, np.float64)
    scaled = x.astype(np.float64) / float(settings.temperature)
    vocab = scaled.shape[0]
    if 0 < settings.top_k < vocab:
        kth = np.partition(scaled, vocab - settings.top_k)[vocab - settings.top_k]
        ids = np.flatnonzero(scaled >= kth)
    else:
        ids = np.arange(vocab, dtype=np.int64)
    sub = scaled[ids]
    probs = np.exp(sub - sub.max())
    probs /= probs.sum()
    if settings.top_p < 1.0 and len(ids) > 4 * _NUCLEUS_PROBE:
        # sorting a 50k vocabulary costs ~5 ms a token; the nucleus is usually far smaller
        probe = np.argpartition(-probs, _NUCLEUS_PROBE)[:_NUCLEUS_PROBE]
        if probs[probe].sum() >= settings.top_p:  # every token beyond the probe is cut
            ids, probs = ids[probe], probs[probe]
    order = np.argsort(-probs, kind="stable")
    ids, probs = ids[order], probs[order]
    if settings.top_p < 1.0:
        before = np.cumsum(probs) - probs  # mass of the strictly more likely tokens
        keep = before < settings.top_p
        keep[0] = True
        ids, probs = ids[keep], probs[keep]
    return ids.astype(np.int64), probs / probs.sum()


def filtered_distribution(logits: np.ndarray, settings: SamplingSettings,
                          previous_ids: Sequence[int] | np.ndarray = ()) -> np.ndarray:
    """float[V] raw logits -> float32[V] distribution after penalty, temperature,
    top-k and top-p, renormalised (zeros for filtered-out tokens)."""
    ids, probs = filtered_support(logits, settings, previous_ids)
    out = np.zeros(np.shape(logits)[-1], dtype=np.float32)
    out[ids] = probs
    return out


def sample_from(ids: np.ndarray, probs: np.ndarray, rng: np.random.Generator) -> int:
    """Draw one id from a support (int64[S], float[S] summing to 1) with ``rng``."""
    if len(ids) == 1:
        return int(ids[0])
    cumulative = np.cumsum(probs)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return int(ids[min(index, len(ids) - 1)])


def find_stop(text: str, stops: Sequence[str]) -> str | None:
    """The first stop sequence contained in ``text``, or None."""
    for stop in stops:
        if stop and stop in text:
            return stop
    return None

"""Head ablation as data: which heads are knocked out and how, and what it changed.

Heads are written ``LAYER.HEAD`` with 0-based numbers, as in every panel (``3.2`` is
head 2 of layer 3). Zero ablation sets the head's output (its slice of the output
projection's input) to zero; mean ablation replaces it with its mean over the prompt's
positions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from explorer.core.errors import ExplorerError
from explorer.core.types import RunResult

ABLATION_MODES: tuple[str, ...] = ("zero", "mean")

Head = tuple[int, int]
_HEAD = re.compile(r"([0-9]+)\.([0-9]+)")


class AblationError(ExplorerError):
    """An ablation request that cannot be carried out (unknown head, malformed list, target)."""


@dataclass(frozen=True)
class Ablation:
    """heads: the (layer, head) pairs to knock out; mode: "zero" or "mean"."""

    heads: frozenset[Head] = frozenset()
    mode: str = "zero"

    def __post_init__(self) -> None:
        if self.mode not in ABLATION_MODES:
            raise AblationError(f"Unknown ablation mode {self.mode!r}: use zero or mean.")
        object.__setattr__(self, "heads", frozenset((int(layer), int(head)) for layer, head in self.heads))

    @property
    def empty(self) -> bool:
        return not self.heads

    def by_layer(self) -> dict[int, tuple[int, ...]]:
        """layer -> its ablated heads, sorted."""
        layers: dict[int, list[int]] = {}
        for layer, head in sorted(self.heads):
            layers.setdefault(layer, []).append(head)
        return {layer: tuple(heads) for layer, heads in layers.items()}

    def toggled(self, layer: int, head: int) -> Ablation:
        """The same ablation with (layer, head) added, or removed if it was there."""
        return Ablation(self.heads ^ {(int(layer), int(head))}, self.mode)

    def with_mode(self, mode: str) -> Ablation:
        return Ablation(self.heads, mode)

    def describe(self) -> str:
        """``3.2, 5.1`` (sorted) — the form ``parse_heads`` reads back."""
        return ", ".join(f"{layer}.{head}" for layer, head in sorted(self.heads))

    def check(self, layers: int, heads: int) -> None:
        """AblationError naming the first head outside a model of ``layers`` x ``heads``."""
        for layer, head in sorted(self.heads):
            if not (0 <= layer < layers and 0 <= head < heads):
                raise AblationError(
                    f"Head {layer}.{head} does not exist: the model has {layers} layers "
                    f"(0-{layers - 1}) of {heads} heads (0-{heads - 1}).")


def parse_heads(text: str) -> frozenset[Head]:
    """``"3.2,5.1"`` -> {(3, 2), (5, 1)}; AblationError for anything else."""
    heads: set[Head] = set()
    parts = [part.strip() for part in text.split(",")]
    for part in parts:
        match = _HEAD.fullmatch(part)
        if match is None:
            raise AblationError(
                f"Malformed head {part!r} in {text!r}: write LAYER.HEAD pairs separated by "
                "commas, e.g. 3.2,5.1 (0-based).")
        heads.add((int(match[1]), int(match[2])))
    return frozenset(heads)


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) in nats between two distributions float32[V] (terms with p = 0 are 0; a q
    that underflowed to 0 counts as the smallest float32)."""
    p64 = np.asarray(p, np.float64)
    q64 = np.maximum(np.asarray(q, np.float64), float(np.finfo(np.float32).tiny))
    keep = p64 > 0
    return float(np.sum(p64[keep] * (np.log(p64[keep]) - np.log(q64[keep]))))


def top_entries(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k most probable ids of float32[V] (descending) and their probabilities."""
    k = max(0, min(k, len(probs)))
    ids = np.argsort(-np.asarray(probs), kind="stable")[:k]
    return ids.astype(np.int64), np.asarray(probs, np.float32)[ids]


@dataclass(frozen=True)
class AblationScan:
    """Each head ablated alone, measured at one position.

    delta_logprob: float32[L, H]  log p_ablated(target) - log p(target) (nats) after token
                                  ``position``
    base_logprob: log p(target) without ablation
    target_id / target_token: the token measured (the actual next token, the top-1 at the
                              end, or one the user chose)
    notes: how it was computed when not by the fast path (e.g. a fallback)
    """

    delta_logprob: np.ndarray
    position: int
    target_id: int
    target_token: str
    base_logprob: float
    mode: str = "zero"
    prompt: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        array = np.ascontiguousarray(self.delta_logprob, dtype=np.float32)
        if array.ndim != 2:
            raise ValueError(f"delta_logprob must be [L, H], got {array.shape}")
        array.setflags(write=False)
        object.__setattr__(self, "delta_logprob", array)
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def base_prob(self) -> float:
        return math.exp(self.base_logprob)

    def strongest(self, count: int = 5) -> list[tuple[int, int, float]]:
        """The heads whose ablation lowers log p(target) most: (layer, head, delta)."""
        flat = np.argsort(self.delta_logprob, axis=None, kind="stable")[:count]
        heads = self.delta_logprob.shape[1]
        return [(int(i) // heads, int(i) % heads, float(self.delta_logprob.flat[i])) for i in flat]



def comparison_dict(base_probs: np.ndarray, ablated_probs: np.ndarray, target_id: int,
                    piece: Callable[[int], str], k: int = 10) -> dict:
    """The ``ablate`` report: ``base`` and ``ablated`` {"top": [{"id", "token", "prob"}]}
    (top ``k`` of each float32[V] distribution), ``target`` {"id", "token", "base_prob",
    "ablated_prob"} and ``kl`` = KL(base ‖ ablated) in nats."""

    def top(probs: np.ndarray) -> dict:
        ids, values = top_entries(probs, k)
        return {"top": [{"id": int(i), "token": piece(int(i)), "prob": float(p)}
                        for i, p in zip(ids, values, strict=True)]}

    return {
        "base": top(base_probs),
        "ablated": top(ablated_probs),
        "target": {"id": int(target_id), "token": piece(int(target_id)),
                   "base_prob": float(base_probs[target_id]),
                   "ablated_prob": float(ablated_probs[target_id])},
        "kl": kl_divergence(base_probs, ablated_probs),
    }


@dataclass(frozen=True)
class AblationShift:
    """What an ablation changed in a prompt's next-token distributions.

    base: the plain model's RunResult for the same prompt (attention "none")
    kl:   float32[T]  KL(base ‖ ablated) in nats after each token
    ablation: the ablation it measures
    """

    base: RunResult
    kl: np.ndarray
    ablation: Ablation

    def __post_init__(self) -> None:
        kl = np.ascontiguousarray(self.kl, dtype=np.float32)
        if kl.shape != (self.base.num_tokens,):
            raise ValueError(f"kl must be [{self.base.num_tokens}], got {kl.shape}")
        kl.setflags(write=False)
        object.__setattr__(self, "kl", kl)

    def base_prob(self, position: int, token_id: int) -> float | None:
        """The plain model's probability of ``token_id`` after ``position``: exact after the
        last token and for the actual next token, else when it is in the base top-k (None
        when it is not known)."""
        base = self.base
        if position == base.num_tokens - 1 and len(base.last_probs):
            return float(base.last_probs[token_id])
        if position + 1 < base.num_tokens and int(base.token_ids[position + 1]) == token_id:
            return float(base.actual_next_probs[position])
        hits = np.flatnonzero(base.topk_ids[position] == token_id)
        return float(base.topk_probs[position, hits[0]]) if len(hits) else None

"""Which input tokens matter for one prediction: the attribution record (numpy only).

The quantity explained is f = log p(target | tokens 0..position) for a causal model.
Methods (scores are float32[T], one per prompt token; tokens after the position get 0):

- ``grad_x_input``:   score_j = Σ_d x_jd · ∂f/∂x_jd on the input (token) embeddings x;
- ``integrated_gradients``: score_j = Σ_d (x_jd − b_jd) · (1/N) Σ_i ∂f/∂x_jd (b + α_i (x − b)),
  α_i = (i + ½)/N (midpoint Riemann sum), b = the baseline embedding at every position;
  completeness says Σ_j score_j = f(x) − f(b); ``delta`` = Σ scores − (f_x − f_baseline)
  is the part the N-step sum misses (the completeness gap, always reported);
- ``rollout``:        attention rollout row (``explorer.core.rollout``);
- ``attention``:      last-layer attention from the position, averaged over heads.

Encoders have no next-token target: they get ``rollout`` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explorer.core.errors import ExplorerError
from explorer.core.faithfulness import FaithfulnessCurve

GRAD_X_INPUT = "grad_x_input"
INTEGRATED_GRADIENTS = "integrated_gradients"
ROLLOUT = "rollout"
ATTENTION = "attention"
METHODS: tuple[str, ...] = (GRAD_X_INPUT, INTEGRATED_GRADIENTS, ROLLOUT, ATTENTION)
ENCODER_METHODS: tuple[str, ...] = (ROLLOUT,)
GRADIENT_METHODS: tuple[str, ...] = (GRAD_X_INPUT, INTEGRATED_GRADIENTS)
METHOD_TITLES = {GRAD_X_INPUT: "gradient × input", INTEGRATED_GRADIENTS: "integrated gradients",
                 ROLLOUT: "attention rollout", ATTENTION: "last-layer attention (head mean)"}
BASELINES: tuple[str, ...] = ("zero", "eos", "pad")
DEFAULT_STEPS = 32
MAX_STEPS = 4096


def gradient_item_bytes(layers: int, hidden: int, heads: int, tokens: int, eager: bool) -> int:
    """Rough float32 bytes one input of ``tokens`` tokens keeps for a backward pass to its
    embeddings (weights need no gradient): ~16 hidden-sized vectors per token and layer
    (norm inputs, q/k/v, MLP gate/up/activation) plus, with the eager kernel, each layer's
    attention weights and their gradient (2 × heads × tokens per token)."""
    per_token_layer = 16 * hidden + (2 * heads * tokens if eager else 0)
    return 4 * tokens * layers * per_token_layer


class AttributionError(ExplorerError):
    """Attribution cannot run as asked (unknown method, bad target, position or steps)."""


def parse_methods(text: str | Sequence[str], causal: bool = True) -> tuple[str, ...]:
    """``"grad_x_input,rollout"`` (or a sequence) -> the methods in the order given, checked."""
    items = text.split(",") if isinstance(text, str) else list(text)
    methods = tuple(dict.fromkeys(m.strip() for m in items if m.strip()))
    if not methods:
        raise AttributionError(f"No method given; use some of {', '.join(METHODS)}.")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise AttributionError(f"Unknown method {unknown[0]!r}; use some of {', '.join(METHODS)}.")
    if not causal:
        other = [m for m in methods if m not in ENCODER_METHODS]
        if other:
            raise AttributionError(
                f"{other[0]} explains a next-token probability, which an encoder does not have; "
                f"encoders get {', '.join(ENCODER_METHODS)} only.")
    return methods


def check_steps(steps: int) -> int:
    if not isinstance(steps, int | np.integer) or not 1 <= steps <= MAX_STEPS:
        raise AttributionError(f"--steps must be a whole number from 1 to {MAX_STEPS}, got {steps}.")
    return int(steps)


def check_baseline(baseline: str) -> str:
    if baseline not in BASELINES:
        raise AttributionError(f"Unknown baseline {baseline!r}; use one of {', '.join(BASELINES)}.")
    return baseline


@dataclass(frozen=True)
class Target:
    """The explained next token: id, piece, p(target | tokens 0..position) from a plain run."""

    id: int
    token: str
    prob: float


@dataclass(frozen=True)
class IntegratedGradientsSummary:
    """steps: N; baseline: zero | eos | pad; f_x = f(x), f_baseline = f(b) (nats);
    delta = Σ scores − (f_x − f_baseline)."""

    steps: int
    baseline: str
    f_x: float
    f_baseline: float
    delta: float

    @property
    def completeness_gap(self) -> float:
        """|delta|: how far the N-step sum is from f(x) − f(b)."""
        return abs(self.delta)

    @property
    def relative_gap(self) -> float:
        """|delta| / |f_x − f_baseline| (inf when f does not change along the path)."""
        change = abs(self.f_x - self.f_baseline)
        return self.completeness_gap / change if change > 0 else float("inf")


def _frozen_scores(scores: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for method, values in scores.items():
        array = np.array(values, dtype=np.float32)
        array.setflags(write=False)
        out[method] = array
    return out


@dataclass(frozen=True)
class Attribution:
    """Token scores for one position and target, and their faithfulness on this prompt.

    tokens:       str[T]   the prompt's token pieces
    token_ids:    int64[T]
    position:     the explained position p (f uses tokens 0..p)
    target:       the explained next token (None for encoders)
    scores:       {method: float32[T]}  (0 after the position)
    ig:           integrated-gradients summary (None when not computed)
    faithfulness: {method or "random": FaithfulnessCurve} (empty for encoders or when skipped)
    baseline:     zero | eos | pad: IG's baseline and the deletion replacement
    seed:         seed of the random ordering
    causal:       False for an encoder: every token can matter (not only 0..position)
    """

    tokens: tuple[str, ...]
    token_ids: np.ndarray
    position: int
    target: Target | None
    scores: dict[str, np.ndarray]
    ig: IntegratedGradientsSummary | None = None
    faithfulness: dict[str, FaithfulnessCurve] = field(default_factory=dict)
    baseline: str = "zero"
    seed: int = 0
    model_name: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    causal: bool = True

    def __post_init__(self) -> None:
        ids = np.array(self.token_ids, dtype=np.int64)
        ids.setflags(write=False)
        object.__setattr__(self, "token_ids", ids)
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "scores", _frozen_scores(self.scores))
        object.__setattr__(self, "faithfulness", dict(self.faithfulness))
        object.__setattr__(self, "notes", tuple(self.notes))
        n = len(self.tokens)
        if ids.shape != (n,):
            raise ValueError("tokens and token_ids disagree on the token count")
        if not 0 <= self.position < n:
            raise ValueError(f"position {self.position} outside 0..{n - 1}")
        for method, values in self.scores.items():
            if values.shape != (n,):
                raise ValueError(f"scores[{method!r}] must be float32[{n}], got {values.shape}")

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.scores)

    @property
    def scored_tokens(self) -> int:
        """How many tokens can matter: 0..position in a causal model, all of them in an encoder."""
        return self.position + 1 if self.causal else len(self.tokens)

    def ranked(self, method: str, limit: int | None = None) -> list[tuple[int, float]]:
        """(position, score) for the tokens that can matter, highest score first (ties by
        position); the first ``limit`` only when given."""
        values = self.scores[method][: self.scored_tokens].astype(np.float64)
        order = np.argsort(-values, kind="stable")[:limit]
        return [(int(i), float(values[i])) for i in order]

    def to_json(self) -> dict[str, Any]:
        """The ``attribute`` command's JSON: tokens, position, target, scores, ig, aopc."""
        target = None if self.target is None else {
            "id": self.target.id, "token": self.target.token, "prob": self.target.prob}
        ig = None if self.ig is None else {
            "steps": self.ig.steps, "baseline": self.ig.baseline, "f_x": self.ig.f_x,
            "f_baseline": self.ig.f_baseline, "delta": self.ig.delta}
        return {
            "tokens": list(self.tokens),
            "position": self.position,
            "target": target,
            "scores": {m: [float(v) for v in values] for m, values in self.scores.items()},
            "ig": ig,
            "aopc": {m: {"comprehensiveness": c.comprehensiveness, "sufficiency": c.sufficiency}
                     for m, c in self.faithfulness.items()},
        }

    def curves_rows(self) -> list[dict[str, Any]]:
        """One row per (method, k): method, k, deletion_prob, keep_only_prob (for a CSV)."""
        return [{"method": m, "k": int(k), "deletion_prob": float(d), "keep_only_prob": float(s)}
                for m, c in self.faithfulness.items()
                for k, d, s in zip(c.ks, c.deletion, c.keep_only, strict=True)]

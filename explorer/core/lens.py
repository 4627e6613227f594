"""The logit lens as data: what the model would predict if it stopped after each layer.

After every decoder layer l = 0..L-1 the residual stream goes through the model's own
final norm and output head (with the model's logit soft-capping or scaling), giving a
next-token distribution per layer and position. The last layer's distribution is the
model's output. ``LensResult`` keeps what the panels and files need from those L × T
distributions without ever holding [L, T, vocab]:

    token_ids         int64[T]        the prompt's tokens
    tokens            str[T]          their pieces
    lens_ids          int64[L, T, K]  top-K next-token ids after layer l (probability descending)
    lens_probs        float32[L, T, K]  their probabilities
    lens_final_ids    int64[T]        the token the full model ranks first at each position
    lens_final_probs  float32[L, T]   the probability, after layer l, of lens_final_ids[t]
    lens_kl           float32[L, T]   KL(full model ‖ layer l) in nats
    lens_logsumexp    float32[L, T]   log Σ exp(logits) of layer l's distribution: with it a
                                      token's probability is exp(logit − logsumexp), so a
                                      typed token needs only its own logit per layer
    vocab_ids         int64[U]        every id in lens_ids and lens_final_ids, sorted …
    vocab_pieces      str[U]          … and its token piece (the GUI has no tokenizer)

The ``.npz`` archive written by ``save_lens_npz`` (``attention-explorer lens``) uses these
names; ``lens_ids``, ``lens_probs``, ``lens_final_probs`` and ``lens_kl`` are a contract.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from explorer.core.errors import ExplorerError

LENS_FORMAT_VERSION = 1
ARRAY_NAMES: tuple[str, ...] = (
    "token_ids", "tokens", "lens_ids", "lens_probs", "lens_final_ids", "lens_final_probs",
    "lens_kl", "lens_logsumexp", "vocab_ids", "vocab_pieces",
)


class NoNextTokenError(ExplorerError):
    """The model is an encoder: it has no next-token distribution to read a lens from."""


def _frozen(array: Any, dtype: Any) -> np.ndarray:
    out = np.ascontiguousarray(array, dtype=dtype)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class LensResult:
    """The logit lens of one prompt (array shapes in the module docstring)."""

    token_ids: np.ndarray
    tokens: tuple[str, ...]
    lens_ids: np.ndarray
    lens_probs: np.ndarray
    lens_final_ids: np.ndarray
    lens_final_probs: np.ndarray
    lens_kl: np.ndarray
    lens_logsumexp: np.ndarray
    vocab_ids: np.ndarray
    vocab_pieces: tuple[str, ...]
    model_name: str = ""
    piece_style: str = "byte_level"
    timings: dict[str, float] | None = None

    def __post_init__(self) -> None:
        for name, dtype in (("token_ids", np.int64), ("lens_ids", np.int64),
                            ("lens_probs", np.float32), ("lens_final_ids", np.int64),
                            ("lens_final_probs", np.float32), ("lens_kl", np.float32),
                            ("lens_logsumexp", np.float32), ("vocab_ids", np.int64)):
            object.__setattr__(self, name, _frozen(getattr(self, name), dtype))
        object.__setattr__(self, "tokens", tuple(str(t) for t in self.tokens))
        object.__setattr__(self, "vocab_pieces", tuple(str(p) for p in self.vocab_pieces))
        n = len(self.tokens)
        if self.token_ids.shape != (n,) or self.lens_final_ids.shape != (n,):
            raise ValueError("token_ids, tokens and lens_final_ids disagree on the token count")
        if self.lens_ids.ndim != 3 or self.lens_ids.shape[1] != n \
                or self.lens_probs.shape != self.lens_ids.shape:
            raise ValueError(f"lens_ids and lens_probs must be [L, {n}, K], got "
                             f"{self.lens_ids.shape} and {self.lens_probs.shape}")
        layers = self.lens_ids.shape[0]
        for name in ("lens_final_probs", "lens_kl", "lens_logsumexp"):
            if getattr(self, name).shape != (layers, n):
                raise ValueError(f"{name} must be [{layers}, {n}], got {getattr(self, name).shape}")
        if self.vocab_ids.shape != (len(self.vocab_pieces),):
            raise ValueError("vocab_ids and vocab_pieces disagree")
        if np.any(np.diff(self.vocab_ids) <= 0):
            raise ValueError("vocab_ids must be sorted and unique")

    @property
    def num_layers(self) -> int:
        return int(self.lens_ids.shape[0])

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def top_k(self) -> int:
        return int(self.lens_ids.shape[2])

    def pieces(self, ids: np.ndarray | list[int]) -> list[str]:
        """The token pieces of ``ids`` (each must be in ``vocab_ids``)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        where = np.searchsorted(self.vocab_ids, ids)
        where = np.minimum(where, len(self.vocab_ids) - 1)
        if len(ids) and (not len(self.vocab_ids) or np.any(self.vocab_ids[where] != ids)):
            raise KeyError("token id not in this lens result's vocabulary table")
        return [self.vocab_pieces[i] for i in where]

    def token_probs(self, logits: np.ndarray) -> np.ndarray:
        """float32[L, T]: one token's probability after every layer, from its logits
        float[L, T] (as the lens computes them: final norm, head, soft-cap)."""
        logits = np.asarray(logits, dtype=np.float32)
        if logits.shape != self.lens_logsumexp.shape:
            raise ValueError(f"logits must be {self.lens_logsumexp.shape}, got {logits.shape}")
        return np.exp(logits - self.lens_logsumexp).astype(np.float32)


def vocabulary_table(ids: np.ndarray, pieces_of: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    """(sorted unique ids int64[U], their pieces) from any id array and a function
    ``pieces_of(list[int]) -> list[str]`` (the tokenizer's convert_ids_to_tokens)."""
    unique = np.unique(np.asarray(ids, dtype=np.int64))
    return unique, tuple(str(p) for p in pieces_of(unique.tolist()))


def save_lens_npz(lens: LensResult, path: str | Path) -> Path:
    """Write the lens as an uncompressed NumPy archive (strings as unicode arrays, so
    ``np.load(path)`` needs no pickle); returns the path."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": LENS_FORMAT_VERSION, "model_name": lens.model_name,
            "piece_style": lens.piece_style, "timings": lens.timings or {}}
    with path.open("wb") as handle:
        np.savez(
            handle,
            token_ids=lens.token_ids,
            tokens=np.array(lens.tokens, dtype=str),
            lens_ids=lens.lens_ids,
            lens_probs=lens.lens_probs,
            lens_final_ids=lens.lens_final_ids,
            lens_final_probs=lens.lens_final_probs,
            lens_kl=lens.lens_kl,
            lens_logsumexp=lens.lens_logsumexp,
            vocab_ids=lens.vocab_ids,
            vocab_pieces=np.array(lens.vocab_pieces, dtype=str),
            meta=np.array(json.dumps(meta)),
        )
    return path


def load_lens_npz(path: str | Path) -> LensResult:
    """Read an archive written by ``save_lens_npz``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in ARRAY_NAMES}
            meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
    except (OSError, KeyError, ValueError) as exc:
        raise ExplorerError(f"'{path}' is not a logit-lens archive: {exc}") from exc
    arrays["tokens"] = tuple(arrays["tokens"].tolist())
    arrays["vocab_pieces"] = tuple(arrays["vocab_pieces"].tolist())
    return LensResult(**arrays, model_name=meta.get("model_name", ""),
                      piece_style=meta.get("piece_style", "byte_level"),
                      timings=meta.get("timings") or None)


def summary(lens: LensResult, position: int = -1, shown: int = 5) -> dict[str, Any]:
    """A JSON-ready view of one position: per layer the top ``shown`` guesses, the
    probability of the full model's first choice and the KL to the full model."""
    t = position % lens.num_tokens
    final_piece = lens.pieces([lens.lens_final_ids[t]])[0]
    layers = []
    for layer in range(lens.num_layers):
        ids = lens.lens_ids[layer, t, :shown]
        layers.append({
            "layer": layer,
            "top": [{"id": int(i), "token": p, "prob": float(q)}
                    for i, p, q in zip(ids, lens.pieces(ids), lens.lens_probs[layer, t, :shown],
                                       strict=True)],
            "final_token_prob": float(lens.lens_final_probs[layer, t]),
            "kl": float(lens.lens_kl[layer, t]),
        })
    return {"model": lens.model_name, "tokens": lens.num_tokens, "layers": lens.num_layers,
            "top_k": lens.top_k, "position": t, "final_token": {
                "id": int(lens.lens_final_ids[t]), "token": final_piece},
            "by_layer": layers}

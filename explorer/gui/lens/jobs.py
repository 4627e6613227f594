"""Worker-side functions of the logit-lens panel (run through ``controller.submit``);
the backend is imported inside, so the GUI never loads torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.core.lens import LensResult

Job = Callable[[Any, Any, Callable[[object], None]], Any]


@dataclass(frozen=True)
class TokenTrace:
    """One typed token followed through the layers: probs float32[L, T]."""

    text: str
    token_id: int
    piece: str
    probs: np.ndarray


def lens_job(token_ids: np.ndarray, tokens: tuple[str, ...], top_k: int) -> Job:
    """The lens of exactly the run's tokens (a generated sequence need not re-tokenize
    to itself)."""
    ids, pieces = [int(i) for i in token_ids], list(tokens)

    def job(model: Any, task: Any, emit: Callable[[object], None]) -> LensResult:
        from explorer.backend.lens import lens_of_ids

        return lens_of_ids(model, ids, pieces, top_k, task)
    return job


def token_job(lens: LensResult, text: str) -> Job:
    def job(model: Any, task: Any, emit: Callable[[object], None]) -> TokenTrace:
        from explorer.backend.lens import lens_token_probs, single_token_id

        token_id = single_token_id(model, text)
        piece = str(model.tokenizer.convert_ids_to_tokens([token_id])[0])
        return TokenTrace(text, token_id, piece, lens_token_probs(model, lens, token_id, task))
    return job

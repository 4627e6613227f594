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


def lens_job(prompt: str, top_k: int) -> Job:
    def job(model: Any, task: Any, emit: Callable[[object], None]) -> LensResult:
        from explorer.backend.lens import logit_lens

        return logit_lens(model, prompt, top_k=top_k, task=task)
    return job


def token_job(lens: LensResult, text: str) -> Job:
    def job(model: Any, task: Any, emit: Callable[[object], None]) -> TokenTrace:
        from explorer.backend.lens import lens_token_probs, single_token_id

        token_id = single_token_id(model, text)
        piece = str(model.tokenizer.convert_ids_to_tokens([token_id])[0])
        return TokenTrace(text, token_id, piece, lens_token_probs(model, lens, token_id, task))
    return job

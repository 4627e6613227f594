"""Worker-side function for the prompt editor (run through ``controller.submit``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def count_tokens_job(text: str) -> Callable[[Any, Any, Callable[[object], None]], int]:
    """How many tokens ``text`` is for the loaded model (its own tokenizer, as a run counts)."""
    def job(model: Any, task: Any, emit: Callable[[object], None]) -> int:
        from explorer.backend.engine import tokenize

        return len(tokenize(model, text)[0])
    return job

"""Worker-side functions of the head atlas (run through ``controller.submit``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from explorer.core.head_scores import HeadScores, score_heads
from explorer.core.types import RunResult

Job = Callable[[Any, Any, Callable[[object], None]], Any]


def scores_job(result: RunResult) -> Job:
    """Score every head of the shown run (numpy only: lazy maps are rebuilt in row chunks)."""
    def job(model: Any, task: Any, emit: Callable[[object], None]) -> HeadScores:
        return score_heads(result, task)
    return job


def probe_job() -> Job:
    """The induction probe on the loaded model."""
    def job(model: Any, task: Any, emit: Callable[[object], None]) -> HeadScores:
        from explorer.backend.head_scores import induction_probe

        return induction_probe(model, task)
    return job

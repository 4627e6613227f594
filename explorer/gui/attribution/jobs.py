"""The worker-side function of the attribution panel (run through ``controller.submit``).

The backend is imported inside, so the GUI never loads torch. The scores arrive first (as
an event), the faithfulness curves with the finished record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from explorer.core.attribution import Attribution
from explorer.core.types import RunResult

Job = Callable[[Any, Any, Callable[[object], None]], Attribution]


@dataclass(frozen=True)
class Request:
    """What the panel asks for: one position of one run, a target and the settings.

    target: "top1", "actual" or "typed" (then ``typed`` holds the token text).
    ablation: the heads knocked out in the shown run (a core Ablation, or None): the
    attribution explains the same (ablated) model the other panels show."""

    run: RunResult
    position: int
    target: str = "top1"
    typed: str = ""
    methods: tuple[str, ...] = ()
    steps: int = 32
    baseline: str = "zero"
    seed: int = 0
    ablation: Any = None


def target_arguments(request: Request) -> dict[str, Any]:
    """``attribute`` keywords for the request's target (the actual next token by id)."""
    if request.target == "typed":
        return {"target": request.typed}
    if request.target == "actual":
        return {"target_id": int(request.run.token_ids[request.position + 1])}
    return {}


def attribution_job(request: Request, faithfulness: bool = True) -> Job:
    def job(model: Any, task: Any, emit: Callable[[object], None]) -> Attribution:
        from explorer.backend.ablation import ablating
        from explorer.backend.attribution import attribute

        methods: Sequence[str] | None = request.methods or None
        with ablating(model, request.ablation):
            return attribute(model, request.run.prompt, position=request.position,
                             methods=methods, steps=request.steps, baseline=request.baseline,
                             seed=request.seed, faithfulness=faithfulness, run=request.run,
                             task=task, on_scores=emit, **target_arguments(request))
    return job

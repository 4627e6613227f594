"""The worker-side functions of the playground (run through ``controller.submit``).

Each returns ``fn(model, task, emit)``; the backend is imported inside, so the GUI never
loads torch. A finished run also builds its RunResult there (the full attention map is
assembled once per run, never per click).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from explorer.core.generation_types import GenerationResult, GenerationStep
from explorer.core.replay import BranchRecipe
from explorer.core.sampling import SamplingSettings
from explorer.core.types import RunResult

Job = Callable[[Any, Any, Callable[[object], None]], Any]
StepHook = Callable[[GenerationStep], None]


@dataclass(frozen=True)
class Generated:
    """A finished (or stopped) run and the same sequence as a RunResult for the panels."""

    result: GenerationResult
    run: RunResult


def _streaming(emit: Callable[[object], None], hook: StepHook | None) -> StepHook:
    def on_step(step: GenerationStep) -> None:
        emit(step)
        if hook is not None:
            hook(step)
    return on_step


def generate_job(prompt: str, settings: SamplingSettings, chat: bool, alternatives: int,
                 hook: StepHook | None = None) -> Job:
    def job(model: Any, task: Any, emit: Callable[[object], None]) -> Generated:
        from explorer.backend.generation import generate

        result = generate(model, prompt, settings, chat=chat, top_alternatives=alternatives,
                          task=task, on_step=_streaming(emit, hook))
        return Generated(result, result.to_run_result())
    return job


def continue_job(previous: GenerationResult, index: int, token_id: int,
                 hook: StepHook | None = None) -> Job:
    def job(model: Any, task: Any, emit: Callable[[object], None]) -> Generated:
        from explorer.backend.generation import continue_with_alternative

        result = continue_with_alternative(model, previous, index, token_id, task=task,
                                           on_step=_streaming(emit, hook))
        return Generated(result, result.to_run_result())
    return job


def chat_text_job(prompt: str) -> Job:
    def job(model: Any, task: Any, emit: Callable[[object], None]) -> str:
        from explorer.backend.generation import chat_text

        return chat_text(model, prompt)
    return job


def replay_job(recipes: list[BranchRecipe], alternatives: int) -> Job:
    """Regenerate saved branches in order (a continue-branch from its regenerated parent)."""
    def job(model: Any, task: Any, emit: Callable[[object], None]) -> list[Generated]:
        from explorer.backend.generation import continue_with_alternative, generate

        results: list[GenerationResult] = []
        for number, recipe in enumerate(recipes):
            part = task.sub(number / len(recipes), (number + 1) / len(recipes))
            part.progress(0.0, f"Regenerating branch {number + 1} of {len(recipes)}")
            settings = recipe.replay_settings()
            if recipe.parent is None:
                result = generate(model, recipe.prompt, settings, chat=recipe.chat,
                                  top_alternatives=alternatives, task=part)
            else:
                result = continue_with_alternative(model, results[recipe.parent], recipe.index,
                                                   recipe.token_id, settings, task=part)
            results.append(result)
        return [Generated(result, result.to_run_result()) for result in results]
    return job

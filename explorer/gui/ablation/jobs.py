"""Work the ablation feature hands to the worker thread (backend imported inside)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from explorer.core.ablation import Ablation, AblationScan, AblationShift

Job = Callable[[Any, Any, Callable[[object], None]], Any]


def scan_job(prompt: str, position: int | None, mode: str, target_text: str = "",
             target_id: int | None = None) -> Job:
    """Each head ablated alone: Δ log p(target) after ``position`` (an AblationScan). The
    target is ``target_id``, else ``target_text`` (one token), else the default."""

    def job(model: Any, task: Any, emit: Callable[[object], None]) -> AblationScan:
        from explorer.backend.ablation import ablation_scan, single_token_id

        target = target_id
        if target is None and target_text:
            target = single_token_id(model, target_text)
        return ablation_scan(model, prompt, position=position, target_id=target, mode=mode,
                             task=task)

    return job


def shift_job(prompt: str, ablation: Ablation, top_k: int) -> Job:
    """The plain run beside the ablated one: an AblationShift (base run, KL per token)."""

    def job(model: Any, task: Any, emit: Callable[[object], None]) -> AblationShift:
        from explorer.backend.ablation import ablation_shift

        return ablation_shift(model, prompt, ablation, top_k=top_k, task=task)

    return job

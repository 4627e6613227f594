"""Work the comparison window hands to the worker thread (backend imported lazily inside)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from explorer.core.compare import ColumnAnalysis, LabelSum, analyse_column
from explorer.core.errors import ExplorerError
from explorer.core.fewshot import BuiltPrompt, FewShotTemplate, LabelledExample

Job = Callable[[Any, Any, Callable[[object], None]], Any]


@dataclass(frozen=True)
class ColumnsRun:
    """Every column of one run; label_note says why label probabilities are missing."""

    columns: tuple[ColumnAnalysis, ...]
    label_sums: tuple[LabelSum, ...]
    label_note: str = ""


def columns_job(prompts: Sequence[BuiltPrompt], labels: Sequence[str], top_k: int) -> Job:
    """analyze() every prompt, then label probabilities and segment heatmaps (core numpy)."""
    prompts, labels = tuple(prompts), tuple(labels)

    def job(model: Any, task: Any, emit: Callable[[object], None]) -> ColumnsRun:
        from explorer.backend.engine import analyze
        from explorer.backend.fewshot_runner import label_variants

        sums: tuple[LabelSum, ...] = ()
        note = ""
        if not model.info.causal:
            note = (f"{model.info.name} is an encoder: it does not predict a next token, so there "
                    "are no label probabilities or top-k bars.")
        else:
            try:
                sums = tuple(LabelSum(v.label, v.ids, tuple(p for _, _, p in v.variants))
                             for v in label_variants(model, labels))
            except ExplorerError as exc:
                note = exc.message
        columns = []
        for index, prompt in enumerate(prompts):
            sub = task.sub(index / len(prompts), (index + 1) / len(prompts))
            result = analyze(model, prompt.text, top_k=top_k, task=sub)
            columns.append(analyse_column(result, prompt, sums))
            task.progress((index + 1) / len(prompts), f"column {index + 1}/{len(prompts)}")
        return ColumnsRun(tuple(columns), sums, note)

    return job


def evaluation_job(examples: Sequence[LabelledExample], demos: Sequence[LabelledExample],
                   labels: Sequence[str], shots: Sequence[int], template: FewShotTemplate,
                   seed: int, calibrate: bool) -> Job:
    """The backend's ``evaluate`` (the CLI's function) with the worker's task state."""
    examples, demos, labels, shots = tuple(examples), tuple(demos), tuple(labels), tuple(shots)

    def job(model: Any, task: Any, emit: Callable[[object], None]) -> Any:
        from explorer.backend.fewshot_runner import evaluate

        return evaluate(model, examples, demos, labels, shots, template, seed,
                        calibrate=calibrate, task=task)

    return job

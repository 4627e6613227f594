"""Work the comparison window hands to the worker thread (backend imported lazily inside).

A column may name its own model (``spec``); such models live in ``ExtraModels``, a
small worker-side cache (``backend.model_cache.ModelCache``) loaded with the worker's
own load function, so the main model stays the controller's and two models can be
loaded at once.
"""

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
    """Every column of one run.

    label_sums / label_note: the main model's label variants and why label probabilities
    are missing (empty when they are there); effects: per column the demonstration
    effects (``core.icl.DemoEffects``, None for an encoder, no labels or no
    demonstrations); notes: per column a note on its labels; models: every loaded model
    with the memory its weights use (``backend.model_cache.ModelMemory``, main first).
    """

    columns: tuple[ColumnAnalysis, ...]
    label_sums: tuple[LabelSum, ...]
    label_note: str = ""
    effects: tuple[Any, ...] = ()
    notes: tuple[str, ...] = ()
    models: tuple[Any, ...] = ()


class ExtraModels:
    """Per-column models kept next to the main one; the cache is built in the worker."""

    def __init__(self, load_function: Callable[..., Any] | None = None, capacity: int = 1) -> None:
        self.load_function = load_function
        self.capacity = capacity
        self.cache: Any = None

    def model(self, main: Any, spec: str | None, task: Any) -> Any:
        """The main model for no spec, else the cached (or newly loaded) model ``spec``."""
        if not spec:
            return main
        if self.cache is None:
            from explorer.backend.model_cache import ModelCache

            self.cache = ModelCache(self.load_function, self.capacity)
        return self.cache.get(spec, task)

    def uses(self, main: Any) -> tuple[Any, ...]:
        """``ModelMemory`` of the main model and of every extra one."""
        from explorer.backend.model_cache import ModelMemory, model_bytes

        if self.cache is not None:
            return tuple(self.cache.memory(main))
        return (ModelMemory(main.spec, main.info.name, model_bytes(main), True),)


def on_column_model(job: Job, spec: str | None, extra: ExtraModels) -> Job:
    """``job`` run on a column's own model (``spec``) instead of the main one."""
    if not spec:
        return job

    def wrapped(model: Any, task: Any, emit: Callable[[object], None]) -> Any:
        return job(extra.model(model, spec, task.sub(0.0, 0.2)), task.sub(0.2, 1.0), emit)

    return wrapped


def _label_sums(model: Any, labels: Sequence[str], case_insensitive: bool) -> tuple[tuple[Any, ...], str]:
    """(backend LabelVariants, note) for ``model``: no variants and a note for an encoder
    or label words that share their first tokens."""
    from explorer.backend.fewshot_runner import label_variants

    if not model.info.causal:
        return (), (f"{model.info.name} is an encoder: it does not predict a next token, so "
                    "there are no label probabilities or top-k bars.")
    try:
        return label_variants(model, labels, case_insensitive=case_insensitive), ""
    except ExplorerError as exc:
        return (), exc.message


def _as_sums(variants: Sequence[Any]) -> tuple[LabelSum, ...]:
    return tuple(LabelSum(v.label, v.ids, tuple(p for _, _, p in v.variants)) for v in variants)


def columns_job(prompts: Sequence[BuiltPrompt], labels: Sequence[str], top_k: int,
                template: FewShotTemplate | None = None, specs: Sequence[str | None] = (),
                extra: ExtraModels | None = None, case_insensitive: bool = True) -> Job:
    """analyze() every prompt on its model, then label probabilities, segment heatmaps
    (core numpy) and each column's demonstration effects (leave-one-out, flipped label)."""
    prompts, labels = tuple(prompts), tuple(labels)
    specs = tuple(specs) or (None,) * len(prompts)
    extra = extra or ExtraModels()

    def job(model: Any, task: Any, emit: Callable[[object], None]) -> ColumnsRun:
        from explorer.backend.engine import analyze
        from explorer.backend.icl_runner import demo_effects

        known: dict[int, tuple[tuple[Any, ...], str]] = {}
        columns, effects, notes = [], [], []
        for index, (prompt, spec) in enumerate(zip(prompts, specs, strict=True)):
            sub = task.sub(index / len(prompts), (index + 1) / len(prompts))
            try:
                column_model = extra.model(model, spec, sub.sub(0.0, 0.3))
            except ExplorerError as exc:
                raise ExplorerError(f"Column {chr(ord('A') + index)}: {exc.message}") from exc
            if id(column_model) not in known:
                known[id(column_model)] = _label_sums(column_model, labels, case_insensitive)
            variants, note = known[id(column_model)]
            result = analyze(column_model, prompt.text, top_k=top_k, task=sub.sub(0.3, 0.7))
            columns.append(analyse_column(result, prompt, _as_sums(variants)))
            has_demos = any(s.kind == "demonstration" for s in prompt.segments)
            effects.append(demo_effects(column_model, prompt, template, variants, sub.sub(0.7, 1.0))
                           if variants and template is not None and has_demos else None)
            notes.append(note)
            task.progress((index + 1) / len(prompts), f"column {index + 1}/{len(prompts)}")
        main_variants, main_note = known.get(id(model)) or _label_sums(model, labels, case_insensitive)
        return ColumnsRun(tuple(columns), _as_sums(main_variants), main_note or next(
            (n for n in notes if n), ""), tuple(effects), tuple(notes), extra.uses(model))

    return job


def anchors_job(prompt: BuiltPrompt, template: FewShotTemplate, labels: Sequence[str],
                spec: str | None, extra: ExtraModels, case_insensitive: bool = True) -> Job:
    """Wang et al.'s label-anchor flows of one column (``core.icl.AnchorFlow``)."""
    labels = tuple(labels)

    def job(model: Any, task: Any, emit: Callable[[object], None]) -> Any:
        from explorer.backend.anchor_saliency import label_anchor_flow

        column_model = extra.model(model, spec, task.sub(0.0, 0.2))
        variants, note = _label_sums(column_model, labels, case_insensitive)
        if not variants:
            raise ExplorerError(note)
        return label_anchor_flow(column_model, prompt, template, variants, task.sub(0.2, 1.0))

    return job


def orders_job(prompt: BuiltPrompt, labels: Sequence[str], orders: Sequence[Sequence[int]],
               spec: str | None, extra: ExtraModels, case_insensitive: bool = True) -> Job:
    """Label probabilities of one column under each demonstration order (``OrderSpread``)."""
    labels = tuple(labels)
    orders = tuple(tuple(o) for o in orders)

    def job(model: Any, task: Any, emit: Callable[[object], None]) -> Any:
        from explorer.backend.icl_runner import order_spread

        column_model = extra.model(model, spec, task.sub(0.0, 0.2))
        variants, note = _label_sums(column_model, labels, case_insensitive)
        if not variants:
            raise ExplorerError(note)
        return order_spread(column_model, prompt, orders, variants, task.sub(0.2, 1.0))

    return job


def evaluation_job(examples: Sequence[LabelledExample], demos: Sequence[LabelledExample],
                   labels: Sequence[str], shots: Sequence[int], template: FewShotTemplate,
                   seed: int, calibrate: bool, orders: int = 1,
                   label_modes: Sequence[str] = ("gold",), case_insensitive: bool = True) -> Job:
    """The backend's ``evaluate`` (the CLI's function) with the worker's task state; the
    evaluation so far is emitted after every block (partial results)."""
    examples, demos, labels, shots = tuple(examples), tuple(demos), tuple(labels), tuple(shots)
    label_modes = tuple(label_modes)

    def job(model: Any, task: Any, emit: Callable[[object], None]) -> Any:
        from explorer.backend.fewshot_runner import evaluate

        return evaluate(model, examples, demos, labels, shots, template, seed,
                        calibrate=calibrate, task=task, orders=orders, label_modes=label_modes,
                        case_insensitive=case_insensitive, on_partial=emit)

    return job

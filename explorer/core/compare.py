"""The few-shot comparison's numbers, computed from RunResults: numpy and stdlib only.

A comparison column is one prompt split into named segments (instruction, demo 1..k,
query). After the engine ran it, ``analyse_column`` gives the label-word probabilities
from ``last_probs`` and the segment heatmap: how much attention the final position puts
on each segment, per layer and head. ``query_difference`` compares two columns over the
query's tokens, which every column shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from explorer.core.analysis import segment_sums
from explorer.core.attention import attention_shape, head_map, layer_maps, mean_map
from explorer.core.errors import ExplorerError
from explorer.core.fewshot import (
    BuiltPrompt,
    FewShotTemplate,
    LabelledExample,
    Segment,
    build_prompt,
    choose_demonstrations,
    demonstration_pattern,
    segment_token_spans,
)
from explorer.core.tokens import display_piece
from explorer.core.types import RunResult

DEFAULT_BUILDER_SHOTS: tuple[int, ...] = (0, 1, 2, 4)
MIN_COLUMNS, MAX_COLUMNS = 2, 6


@dataclass(frozen=True)
class LabelSum:
    """One label word and the first-token ids whose next-token probabilities are summed.

    ids: int[variant]; pieces: the tokenizer's piece per id ("ĠPositive")."""

    label: str
    ids: tuple[int, ...]
    pieces: tuple[str, ...]

    def describe(self, style: str = "byte_level") -> str:
        """e.g. "Positive = 'Positive' + '␣Positive'"."""
        shown = " + ".join(f"'{display_piece(p, style)}'" for p in self.pieces)
        return f"{self.label} = {shown}"


@dataclass(frozen=True)
class ColumnAnalysis:
    """One comparison column after the run.

    result:      the engine's RunResult for the column's prompt
    prompt:      the prompt with its character segments
    spans:       token span [start, end) per segment (``segment_token_spans``)
    heat:        float32[layer, head, segment] attention of the final position on each
                 segment, summed over the segment's tokens
    label_sums:  the labels and their summed variants (empty for encoders)
    label_probs: float64[label] next-token probability per label (empty for encoders)
    """

    result: RunResult
    prompt: BuiltPrompt
    spans: tuple[tuple[int, int], ...]
    heat: np.ndarray
    label_sums: tuple[LabelSum, ...]
    label_probs: np.ndarray

    @property
    def predicted(self) -> str:
        """The label with the highest probability ("" without label probabilities)."""
        if not len(self.label_probs):
            return ""
        return self.label_sums[int(np.argmax(self.label_probs))].label

    @property
    def query_span(self) -> tuple[int, int]:
        """Token span of the query segment (the last segment)."""
        return self.spans[-1]

    @property
    def query_positions(self) -> np.ndarray:
        """int64[query token]: absolute token index of each query token."""
        start, end = self.query_span
        return np.arange(start, end, dtype=np.int64)

    def layer_heat(self, head: int | None) -> np.ndarray:
        """float32[layer, segment] for one head, or the mean over heads when head is None."""
        return self.heat.mean(axis=1) if head is None else self.heat[:, head]


def segment_heat(result: RunResult, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """float32[layer, head, segment]: the final position's attention row (read with
    ``layer_maps``, any attention mode) summed over each segment's token span."""
    if not result.has_attention:
        return np.zeros((0, 0, len(spans)), np.float32)
    layers, _ = attention_shape(result)
    last = [result.num_tokens - 1]
    rows = np.stack([layer_maps(result, layer, rows=last)[:, 0, :] for layer in range(layers)])
    return segment_sums(rows, list(spans))


def sum_label_probs(last_probs: np.ndarray, label_sums: Sequence[LabelSum]) -> np.ndarray:
    """float[V] next-token distribution -> float64[label] sums over each label's ids."""
    probs = np.asarray(last_probs, dtype=np.float64)
    if probs.size == 0:
        return np.zeros(0, np.float64)
    return np.array([probs[list(s.ids)].sum() for s in label_sums], dtype=np.float64)


def analyse_column(result: RunResult, prompt: BuiltPrompt,
                   label_sums: Sequence[LabelSum] = ()) -> ColumnAnalysis:
    """Segment spans, segment heatmap and label probabilities of one run prompt."""
    if result.prompt != prompt.text:
        raise ValueError("the run's prompt is not the column's prompt")
    spans = tuple(segment_token_spans(result.offsets, prompt.char_bounds))
    sums = tuple(label_sums) if result.has_next_token else ()
    return ColumnAnalysis(result, prompt, spans, segment_heat(result, spans), sums,
                          sum_label_probs(result.last_probs, sums))


def query_difference(a: ColumnAnalysis, b: ColumnAnalysis, layer: int, head: int | None
                     ) -> np.ndarray:
    """float32[query token, query token]: attention of B minus A among the query's tokens
    (rows attend, columns are attended to) for one layer and head (head None = mean over
    heads). When the two queries tokenise to different lengths the first min(n_a, n_b)
    tokens are compared."""
    n = min(len(a.query_positions), len(b.query_positions))
    maps = []
    for column in (a, b):
        q = column.query_positions[:n]
        result = column.result
        rows = mean_map(result, layer, rows=q) if head is None else head_map(result, layer, head, rows=q)
        maps.append(rows[:, q])
    return maps[1] - maps[0]


def query_pieces(column: ColumnAnalysis) -> list[str]:
    """The query tokens' pieces, readable (display_piece)."""
    style = column.result.model_info.piece_style
    return [display_piece(column.result.tokens[i], style) for i in column.query_positions]


# --------------------------------------------------------------------------- building


def builder_prompts(template: FewShotTemplate, pool: Sequence[LabelledExample], query: str,
                    labels: Sequence[str], seed: int,
                    shots: Sequence[int] = DEFAULT_BUILDER_SHOTS) -> list[BuiltPrompt]:
    """One prompt per k in ``shots`` with k demonstrations from ``pool`` (mixed labels,
    reproducible from ``seed``; see ``choose_demonstrations``)."""
    if not query.strip():
        raise ExplorerError("The query is empty: type the text to classify.")
    if not MIN_COLUMNS <= len(shots) <= MAX_COLUMNS:
        raise ExplorerError(f"Give {MIN_COLUMNS} to {MAX_COLUMNS} numbers of demonstrations.")
    return [build_prompt(template, choose_demonstrations(pool, k, seed, labels), query)
            for k in shots]


def segment_prompt(text: str, template: FewShotTemplate) -> BuiltPrompt:
    """Split an edited prompt into segments like ``build_prompt`` does.

    The text is cut after every ``template.separator``: the instruction comes first when
    the text starts with the template's instruction, the last block is the query and the
    blocks between are demonstrations (label read back with the demonstration format, ""
    when it does not match). A demonstration whose own text holds the separator splits.
    """
    sep = template.separator
    segments: list[Segment] = []
    position = 0
    if template.instruction and text.startswith(template.instruction + sep):
        position = len(template.instruction) + len(sep)
        segments.append(Segment("instruction", "instruction", 0, position))
    pattern = demonstration_pattern(template)
    number = 0
    while True:
        found = text.find(sep, position) if sep else -1
        if found < 0 or found + len(sep) >= len(text):
            break
        end = found + len(sep)
        number += 1
        match = pattern.fullmatch(text[position:found])
        label = match.group("label").strip() if match else ""
        segments.append(Segment(f"demo {number}", "demonstration", position, end, label))
        position = end
    segments.append(Segment("query", "query", position, len(text)))
    return BuiltPrompt(text, tuple(segments))


def short_segment_name(segment: Segment) -> str:
    """'instruction' -> 'instr', 'demo 2' (label Negative) -> 'd2 N', 'query' -> 'query'."""
    if segment.kind == "demonstration":
        number = segment.name.split()[-1]
        return f"d{number} {segment.label[:1]}".strip()
    return "instr" if segment.kind == "instruction" else segment.name

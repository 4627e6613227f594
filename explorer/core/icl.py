"""Why a few-shot prompt works: numpy and stdlib only.

* Prompt variants at the segment level (so edited prompts work as well as built ones):
  a demonstration left out, a demonstration with another label, the demonstrations in
  another order. ``BuiltPrompt`` segments stay exact and are renumbered.
* ``DemoEffects``: the label probabilities with every demonstration left out and with
  its label flipped; ``OrderSpread``: the label probabilities under several orders.
* Label words as anchors (Wang et al. 2023, "Label Words are Anchors"): from per-layer
  saliency I_l = |sum over heads of A ⊙ dL/dA| (float[layer, query, key]) the mean flow
  S_wp from the text into the demonstrations' label words, S_pq from the label words
  into the final position, and S_ww between all other pairs.
* ``IclReport.to_json``: the ``icl`` command's JSON (keys are a contract).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from explorer.core.errors import ExplorerError
from explorer.core.fewshot import (
    BuiltPrompt,
    FewShotTemplate,
    Segment,
    demonstration_pattern,
    normalise_over_labels,
)

# --------------------------------------------------------------------------- prompt variants


def demonstration_segments(prompt: BuiltPrompt) -> list[int]:
    """Segment indices of the demonstrations, in prompt order."""
    return [i for i, s in enumerate(prompt.segments) if s.kind == "demonstration"]


@dataclass(frozen=True)
class DemonstrationParts:
    """A demonstration read back with the template: its text, its label and where the
    label starts in the prompt (character index)."""

    text: str
    label: str
    label_char: int


def _match(prompt: BuiltPrompt, number: int, template: FewShotTemplate) -> tuple[Segment, re.Match[str]] | None:
    """Demonstration ``number``'s segment and its match against the template's format
    (the separator at its end excluded), or None when it does not follow the format."""
    segment = prompt.segments[demonstration_segments(prompt)[number]]
    body = prompt.text[segment.start : segment.end]
    if template.separator and body.endswith(template.separator):
        body = body[: -len(template.separator)]
    match = demonstration_pattern(template).fullmatch(body)
    return None if match is None else (segment, match)


def demonstration_parts(prompt: BuiltPrompt, number: int, template: FewShotTemplate
                        ) -> DemonstrationParts | None:
    """Demonstration ``number`` (0-based) split by the template's demonstration format,
    or None when its text does not follow the format (an edited column)."""
    found = _match(prompt, number, template)
    if found is None:
        return None
    segment, match = found
    label = match.group("label")
    lead = len(label) - len(label.lstrip())
    return DemonstrationParts(match.group("text"), label.strip(),
                              segment.start + match.start("label") + lead)


def _assemble(pieces: Sequence[tuple[str, str, str]], query_label: str = "") -> BuiltPrompt:
    """(text, kind, label) per segment -> a BuiltPrompt with demonstrations renumbered."""
    segments: list[Segment] = []
    position, number = 0, 0
    for text, kind, label in pieces:
        if kind == "demonstration":
            number += 1
            name = f"demo {number}"
        else:
            name = kind
        segments.append(Segment(name, kind, position, position + len(text), label))
        position += len(text)
    return BuiltPrompt("".join(p[0] for p in pieces), tuple(segments), query_label)


def _pieces(prompt: BuiltPrompt) -> list[tuple[str, str, str]]:
    return [(prompt.text[s.start : s.end], s.kind, s.label) for s in prompt.segments]


def without_demonstration(prompt: BuiltPrompt, number: int) -> BuiltPrompt:
    """The prompt with demonstration ``number`` (0-based) removed, separator included."""
    drop = demonstration_segments(prompt)[number]
    pieces = [p for i, p in enumerate(_pieces(prompt)) if i != drop]
    return _assemble(pieces, prompt.query_label)


def with_demonstration_label(prompt: BuiltPrompt, number: int, label: str,
                             template: FewShotTemplate) -> BuiltPrompt:
    """The prompt with demonstration ``number`` showing ``label`` instead of its own
    (the text the format's {label} matched is replaced; nothing else changes)."""
    found = _match(prompt, number, template)
    if found is None:
        raise ExplorerError(f"Demonstration {number + 1} does not follow the template's "
                            "demonstration format, so its label cannot be changed.")
    segment, match = found
    index = demonstration_segments(prompt)[number]
    pieces = _pieces(prompt)
    old = pieces[index][0]
    pieces[index] = (old[: match.start("label")] + label + old[match.end("label") :],
                     "demonstration", label)
    return _assemble(pieces, prompt.query_label)


def reorder_demonstrations(prompt: BuiltPrompt, order: Sequence[int]) -> BuiltPrompt:
    """The prompt with its demonstrations rearranged: position i holds demonstration
    ``order[i]`` (0-based); instruction and query stay where they are."""
    demos = demonstration_segments(prompt)
    if sorted(order) != list(range(len(demos))):
        raise ExplorerError(f"{list(order)} is not an order of {len(demos)} demonstrations.")
    pieces = _pieces(prompt)
    shuffled = [pieces[demos[i]] for i in order]
    it = iter(shuffled)
    return _assemble([next(it) if i in demos else p for i, p in enumerate(pieces)],
                     prompt.query_label)


# --------------------------------------------------------------------------- demonstration effects


@dataclass(frozen=True)
class DemoEffect:
    """One demonstration's effect on the prediction.

    index: 0-based position among the prompt's demonstrations; text / label: as read back
    with the template; leave_out_probs / flipped_probs: float64[label] raw next-token
    label probabilities of the prompt without this demonstration / with its label replaced
    by ``flipped_label`` (None when the label is not a declared label and cannot flip).
    """

    index: int
    text: str
    label: str
    leave_out_probs: np.ndarray
    flipped_probs: np.ndarray | None
    flipped_label: str = ""


@dataclass(frozen=True)
class DemoEffects:
    """A column's demonstration effects: ``base_probs`` float64[label] of the prompt as it
    is (measured the same way as the variants), and one ``DemoEffect`` per demonstration."""

    labels: tuple[str, ...]
    base_probs: np.ndarray
    effects: tuple[DemoEffect, ...]
    seconds: float = 0.0
    reused_tokens: int = 0

    def delta_leave_out(self, label: int) -> np.ndarray:
        """float64[demo]: p(label) without each demonstration minus p(label) with all."""
        return np.array([e.leave_out_probs[label] - self.base_probs[label] for e in self.effects])

    def delta_flipped(self, label: int) -> np.ndarray:
        """float64[demo]: p(label) with each demonstration's label flipped minus p(label)
        as it is (NaN where the label could not flip)."""
        return np.array([np.nan if e.flipped_probs is None
                         else e.flipped_probs[label] - self.base_probs[label] for e in self.effects])


# --------------------------------------------------------------------------- order sensitivity


@dataclass(frozen=True)
class OrderSpread:
    """Label probabilities of one column under several demonstration orders.

    orders: permutations of the column's demonstrations (orders[0] is the column's own
    order); probs: float64[order, label] raw next-token label probabilities.
    """

    labels: tuple[str, ...]
    orders: tuple[tuple[int, ...], ...]
    probs: np.ndarray
    prompts: tuple[BuiltPrompt, ...] = field(default=(), compare=False)

    @property
    def shares(self) -> np.ndarray:
        """float64[order, label]: probabilities normalised over the labels."""
        return normalise_over_labels(self.probs)

    @property
    def predicted(self) -> list[str]:
        return [self.labels[i] for i in np.argmax(self.probs, axis=1)]

    def counts(self) -> dict[str, int]:
        """How many orders predict each label."""
        predicted = self.predicted
        return {label: predicted.count(label) for label in self.labels}

    def best_and_worst(self, label: int) -> tuple[int, int]:
        """Indices of the orders with the highest and the lowest share of ``label``."""
        share = self.shares[:, label]
        return int(np.argmax(share)), int(np.argmin(share))


# --------------------------------------------------------------------------- label words as anchors


def label_word_positions(offsets: np.ndarray, chars: Sequence[int]) -> list[int]:
    """Token index holding each character of ``chars`` (a label word's first character):
    the token whose span [start, end) contains it, else the first token starting at or
    after it (empty spans, trimmed whitespace, skipped); -1 for a negative character or
    none found. offsets: int[T, 2]."""
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    positions: list[int] = []
    for char in chars:
        inside = np.flatnonzero((offsets[:, 0] <= char) & (char < offsets[:, 1]))
        after = np.flatnonzero((offsets[:, 0] >= char) & (offsets[:, 1] > offsets[:, 0]))
        if char < 0:
            positions.append(-1)
        elif inside.size:
            positions.append(int(inside[0]))
        else:
            positions.append(int(after[0]) if after.size else -1)
    return positions


@dataclass(frozen=True)
class AnchorFlow:
    """Wang et al. 2023's information flows per layer (float64[layer] each).

    s_wp: mean saliency over pairs (p, j), p a demonstration's label word, j < p;
    s_pq: mean over (q, p), q the final position; s_ww: mean over every other pair (i, j),
    j < i. NaN where a set is empty (no demonstrations). label_positions: token index of
    each demonstration's label word; target: q; loss_label: the label whose loss was used.
    """

    s_wp: np.ndarray
    s_pq: np.ndarray
    s_ww: np.ndarray
    label_positions: tuple[int, ...] = ()
    target: int = -1
    loss_label: str = ""


def anchor_flow(saliency: np.ndarray, label_positions: Sequence[int], target: int,
                loss_label: str = "") -> AnchorFlow:
    """The three flows from saliency float[layer, query, key] (rows attend to columns).

    C_wp = {(p_k, j): j < p_k}, C_pq = {(q, p_k)}, C_ww = {(i, j): j < i} minus both;
    each S is the mean of the saliency over its set (Wang et al. 2023, eqs. 2-4).
    """
    saliency = np.asarray(saliency, dtype=np.float64)
    tokens = saliency.shape[-1]
    positions = sorted({int(p) for p in label_positions if 0 <= p < tokens})
    below = np.tril(np.ones((tokens, tokens), dtype=bool), k=-1)
    wp = np.zeros_like(below)
    for p in positions:
        wp[p, :p] = True
    pq = np.zeros_like(below)
    pq[target, positions] = True
    ww = below & ~wp & ~pq

    def mean(mask: np.ndarray) -> np.ndarray:
        count = int(mask.sum())
        if count == 0:
            return np.full(saliency.shape[0], np.nan)
        return (saliency * mask).sum(axis=(1, 2)) / count

    return AnchorFlow(mean(wp), mean(pq), mean(ww), tuple(positions), int(target), loss_label)


# --------------------------------------------------------------------------- the icl report


@dataclass(frozen=True)
class IclReport:
    """Everything ``attention-explorer icl`` writes (see ``to_json``)."""

    prompt: BuiltPrompt
    labels: tuple[str, ...]
    label_probs: np.ndarray
    effects: DemoEffects
    flow: AnchorFlow

    def to_json(self) -> dict[str, object]:
        """{prompt, label_probs {label: p}, demo_effects [{index, text, label,
        leave_out_probs, flipped_probs}], anchor_flow {S_wp, S_pq, S_ww}}; NaN -> null."""
        return {
            "prompt": self.prompt.text,
            "label_probs": _by_label(self.labels, self.label_probs),
            "demo_effects": [{
                "index": e.index, "text": e.text, "label": e.label,
                "leave_out_probs": _by_label(self.labels, e.leave_out_probs),
                "flipped_probs": (None if e.flipped_probs is None
                                  else _by_label(self.labels, e.flipped_probs)),
            } for e in self.effects.effects],
            "anchor_flow": {"S_wp": _floats(self.flow.s_wp), "S_pq": _floats(self.flow.s_pq),
                            "S_ww": _floats(self.flow.s_ww)},
        }


def _by_label(labels: Sequence[str], values: np.ndarray) -> dict[str, float]:
    return {label: float(v) for label, v in zip(labels, values, strict=True)}


def _floats(values: np.ndarray) -> list[float | None]:
    return [None if v != v else float(v) for v in np.asarray(values, dtype=np.float64)]

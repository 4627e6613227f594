"""Few-shot prompts: templates, prompt building with named segments, demonstration choice,
segment -> token mapping, labelled CSV files and the evaluation metrics.

numpy and stdlib only; the model side lives in ``explorer.backend.fewshot_runner``.

Prompt layout (the course's format is the default)::

    [instruction + separator]            only when the instruction is not empty
    demonstration 1 + separator          demonstration format with {text} and {label}
    ...
    demonstration k + separator
    query                                query format with {text}, ends where the label goes

Segments cover the whole prompt without gaps: the separator after a part belongs to
that part (a demonstration is "its text plus the blank line that ends it").
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explorer.core.errors import ExplorerError

COURSE_DEMONSTRATION = "Classify this review:\n{text}\nSentiment: {label}"
COURSE_QUERY = "Classify this review:\n{text}\nSentiment:"
DEFAULT_SEPARATOR = "\n\n"
DEFAULT_LABELS: tuple[str, ...] = ("Positive", "Negative")
CONTENT_FREE_INPUTS: tuple[str, ...] = ("N/A",)
"""Content-free queries for contextual calibration (Zhao et al. 2021 also use "" and "[MASK]")."""

_PLACEHOLDER = re.compile(r"\{(text|label)\}")


# --------------------------------------------------------------------------- template


@dataclass(frozen=True)
class FewShotTemplate:
    """Instruction text, demonstration format ({text}, {label}), query format ({text}),
    and the separator written after the instruction and after every demonstration."""

    instruction: str = ""
    demonstration: str = COURSE_DEMONSTRATION
    query: str = COURSE_QUERY
    separator: str = DEFAULT_SEPARATOR

    def __post_init__(self) -> None:
        for placeholder in ("{text}", "{label}"):
            if placeholder not in self.demonstration:
                raise ExplorerError(f"The demonstration format must contain {placeholder}.")
        if "{text}" not in self.query:
            raise ExplorerError("The query format must contain {text}.")
        if "{label}" in self.query:
            raise ExplorerError("The query format must not contain {label}: the model predicts it.")

    def render_demonstration(self, text: str, label: str) -> str:
        return _fill(self.demonstration, text=text, label=label)

    def render_query(self, text: str) -> str:
        return _fill(self.query, text=text, label="")


def _fill(pattern: str, **values: str) -> str:
    """Replace {text}/{label} in one pass, so braces inside the review text stay literal."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], pattern)


COURSE_TEMPLATE = FewShotTemplate()


def demonstration_pattern(template: FewShotTemplate) -> re.Pattern[str]:
    """A regex that reads a rendered demonstration back: groups ``text`` and ``label``
    (use ``fullmatch`` on the demonstration without its separator)."""
    parts = re.split(r"(\{text\}|\{label\})", template.demonstration)
    regex = "".join("(?P<text>.*?)" if p == "{text}" else "(?P<label>.*?)" if p == "{label}"
                    else re.escape(p) for p in parts)
    return re.compile(regex, re.DOTALL)

_SECTION = re.compile(r"^=== *(instruction|demonstration|query|separator) *===\s*$")


def parse_template(text: str, source: str = "template") -> FewShotTemplate:
    """Read the template text format (or JSON with the same four keys).

    Text format: lines ``=== instruction ===``, ``=== demonstration ===``, ``=== query ===``
    and optionally ``=== separator ===`` start sections. A section's body is its lines
    joined with newlines, without the final newline. The separator section is one line
    where ``\\n`` means a newline (default ``\\n\\n``, a blank line). Lines before the first
    marker are comments. A missing instruction section means no instruction.
    """
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return _parse_json_template(stripped, source)
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        marker = _SECTION.match(line)
        if marker:
            current = marker.group(1)
            if current in sections:
                raise ExplorerError(f"{source}: the section '=== {current} ===' appears twice.")
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    for required in ("demonstration", "query"):
        if required not in sections:
            raise ExplorerError(
                f"{source}: missing the '=== {required} ===' section. A template has the "
                "sections instruction (optional), demonstration, query, separator (optional)."
            )
    parts = {name: "\n".join(lines) for name, lines in sections.items()}
    separator = DEFAULT_SEPARATOR
    if "separator" in parts:
        separator = parts["separator"].strip("\n").replace("\\n", "\n").replace("\\t", "\t")
    return FewShotTemplate(
        instruction=parts.get("instruction", ""),
        demonstration=parts["demonstration"],
        query=parts["query"],
        separator=separator,
    )


def _parse_json_template(text: str, source: str) -> FewShotTemplate:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExplorerError(f"{source}: not valid JSON ({exc.msg}, line {exc.lineno}).") from exc
    known = {"instruction", "demonstration", "query", "separator"}
    if not isinstance(data, dict) or not set(data) <= known or not all(
        isinstance(v, str) for v in data.values()
    ):
        raise ExplorerError(f"{source}: a JSON template is an object with string keys {sorted(known)}.")
    return FewShotTemplate(**data)


def read_template(path: Path) -> FewShotTemplate:
    """Read a template file (text format or JSON, see ``parse_template``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExplorerError(f"Cannot read the template file '{path}': {exc}") from exc
    return parse_template(text, source=str(path))


# --------------------------------------------------------------------------- examples


@dataclass(frozen=True)
class LabelledExample:
    """One row of a labelled CSV file; ``row`` is its 1-based line number in the file."""

    text: str
    label: str
    row: int = 0


def parse_labels(text: str | Sequence[str]) -> tuple[str, ...]:
    """"Positive,Negative" -> ("Positive", "Negative"); at least two distinct, non-empty labels."""
    items = text.split(",") if isinstance(text, str) else list(text)
    labels = tuple(item.strip() for item in items)
    if any(not label for label in labels):
        raise ExplorerError(f"Empty label in {text!r}; give labels like Positive,Negative.")
    if len(labels) < 2:
        raise ExplorerError("Give at least two labels, separated by commas (e.g. Positive,Negative).")
    if len({label.casefold() for label in labels}) != len(labels):
        raise ExplorerError(f"The labels {list(labels)} repeat a label.")
    return labels


def parse_shots(text: str | Sequence[int]) -> tuple[int, ...]:
    """"0,1,2,4" -> (0, 1, 2, 4): non-negative integers, duplicates dropped, sorted."""
    items = text.split(",") if isinstance(text, str) else list(text)
    shots: set[int] = set()
    for item in items:
        try:
            value = int(str(item).strip())
        except ValueError:
            raise ExplorerError(f"--shots takes whole numbers like 0,1,2,4; got {item!r}.") from None
        if value < 0:
            raise ExplorerError(f"--shots cannot be negative; got {value}.")
        shots.add(value)
    if not shots:
        raise ExplorerError("--shots is empty; give numbers like 0,1,2,4.")
    return tuple(sorted(shots))


def read_labelled_csv(path: Path, labels: Sequence[str]) -> tuple[LabelledExample, ...]:
    """Rows of a UTF-8 CSV file with a header holding ``text`` and ``label`` (other columns
    are ignored). Labels match the declared ``labels`` ignoring case and surrounding spaces
    and are stored in the declared spelling. Raises ExplorerError naming the file and row."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return parse_labelled_csv(handle.read(), labels, source=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ExplorerError(f"Cannot read '{path}': {exc}") from exc


def parse_labelled_csv(text: str, labels: Sequence[str], source: str = "CSV"
                       ) -> tuple[LabelledExample, ...]:
    """The in-memory half of ``read_labelled_csv``."""
    if not text.strip():
        raise ExplorerError(f"{source} is empty; it needs a header 'text,label' and rows.")
    reader = csv.DictReader(io.StringIO(text), strict=True)
    header = [name.strip() for name in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [name for name in ("text", "label") if name not in header]
    if missing:
        raise ExplorerError(
            f"{source} has no column {' or '.join(repr(m) for m in missing)}; its header is "
            f"{header}. The first line must name the columns, e.g. 'text,label'."
        )
    canonical = {label.strip().casefold(): label for label in labels}
    examples: list[LabelledExample] = []
    try:
        for number, record in enumerate(reader, start=2):
            text_value = (record.get("text") or "").strip()
            raw_label = (record.get("label") or "").strip()
            if not text_value and not raw_label:
                continue  # blank line
            if not text_value:
                raise ExplorerError(f"{source}, row {number}: the text is empty.")
            label = canonical.get(raw_label.casefold())
            if label is None:
                raise ExplorerError(
                    f"{source}, row {number}: unknown label {raw_label!r}; the labels are "
                    f"{', '.join(labels)} (set them with --labels)."
                )
            examples.append(LabelledExample(text_value, label, number))
    except csv.Error as exc:
        raise ExplorerError(f"{source}: not a valid CSV file ({exc}).") from exc
    if not examples:
        raise ExplorerError(f"{source} has a header but no rows.")
    return tuple(examples)


# --------------------------------------------------------------------------- demonstrations


def choose_demonstrations(pool: Sequence[LabelledExample], k: int, seed: int,
                          labels: Sequence[str] | None = None) -> tuple[LabelledExample, ...]:
    """``k`` demonstrations from ``pool``, reproducible from ``seed``, with mixed labels.

    Each label's examples are shuffled with ``numpy.random.default_rng(seed)``, the labels
    are taken in turn (round robin, so label counts differ by at most one and every label
    appears once k >= number of labels), and the chosen k are shuffled again so the last
    demonstration's label is not fixed. For one seed the k-shot set contains the
    (k-1)-shot set, so a curve over k adds demonstrations instead of swapping them.
    """
    if k < 0:
        raise ExplorerError("The number of demonstrations cannot be negative.")
    if seed < 0:
        raise ExplorerError(f"The seed must be a non-negative integer, not {seed}.")
    if k > len(pool):
        raise ExplorerError(
            f"{k} demonstrations were asked for but the demonstration pool has only {len(pool)}."
        )
    if k == 0:
        return ()
    rng = np.random.default_rng(seed)
    order = list(labels) if labels is not None else sorted({e.label for e in pool})
    by_label = {label: [e for e in pool if e.label == label] for label in order}
    for members in by_label.values():
        rng.shuffle(members)  # type: ignore[arg-type]
    label_order = [order[i] for i in rng.permutation(len(order))]
    round_robin: list[LabelledExample] = []
    depth = 0
    while len(round_robin) < len(pool):
        for label in label_order:
            if depth < len(by_label[label]):
                round_robin.append(by_label[label][depth])
        depth += 1
    chosen = round_robin[:k]
    shuffle = np.random.default_rng([seed, k]).permutation(k)
    return tuple(chosen[i] for i in shuffle)


LABEL_MODES: tuple[str, ...] = ("gold", "flipped", "random")
"""Demonstration labels in an evaluation: as in the pool, each one flipped, or drawn at random."""


def flip_label(label: str, labels: Sequence[str]) -> str:
    """The label a flipped demonstration shows: the other one of two labels; with more
    labels, the next declared label (cyclically). ExplorerError for an unknown label."""
    labels = list(labels)
    if label not in labels:
        raise ExplorerError(f"Cannot flip the label {label!r}: it is not one of {labels}.")
    return labels[(labels.index(label) + 1) % len(labels)]


def parse_label_modes(text: str | Sequence[str]) -> tuple[str, ...]:
    """"gold" or "gold,flipped,random" -> the modes in the given order, duplicates dropped."""
    items = text.split(",") if isinstance(text, str) else list(text)
    modes: list[str] = []
    for item in items:
        mode = str(item).strip().lower()
        if mode not in LABEL_MODES:
            raise ExplorerError(f"Unknown label mode {str(item).strip()!r}; choose "
                                f"{', '.join(LABEL_MODES[:-1])} or {LABEL_MODES[-1]}.")
        if mode not in modes:
            modes.append(mode)
    if not modes:
        raise ExplorerError("No label mode given; choose gold, flipped or random.")
    return tuple(modes)


def relabel(demos: Sequence[LabelledExample], labels: Sequence[str], mode: str, seed: int
            ) -> tuple[LabelledExample, ...]:
    """The demonstrations with the labels of ``mode`` (Min et al. 2022).

    gold: unchanged; flipped: every label replaced by ``flip_label``; random: every label
    drawn uniformly from ``labels`` with ``numpy.random.default_rng([seed, k, 1])``
    (k = number of demonstrations), independently of the true label, so some stay right.
    """
    if mode == "gold":
        return tuple(demos)
    if mode == "flipped":
        return tuple(LabelledExample(d.text, flip_label(d.label, labels), d.row) for d in demos)
    if mode == "random":
        rng = np.random.default_rng([seed, len(demos), 1])
        drawn = rng.integers(0, len(labels), size=len(demos))
        return tuple(LabelledExample(d.text, labels[int(i)], d.row) for d, i in zip(demos, drawn, strict=True))
    raise ExplorerError(f"Unknown label mode {mode!r}; choose gold, flipped or random.")


def demonstration_orders(k: int, count: int, seed: int) -> tuple[tuple[int, ...], ...]:
    """Up to ``count`` distinct orders (permutations of range(k)) of k demonstrations.

    The first order is the identity (the order ``choose_demonstrations`` gives), so one
    order reproduces a single-order run. When k! <= count every permutation is returned
    (identity first, then lexicographic): k = 0 and k = 1 have one order, k = 2 two.
    Otherwise the others are drawn with ``numpy.random.default_rng([seed, k, 2])``,
    rejecting repeats.
    """
    if count < 1:
        raise ExplorerError(f"The number of orders must be at least 1, not {count}.")
    if math.factorial(k) <= count:
        return tuple(itertools.permutations(range(k)))
    rng = np.random.default_rng([seed, k, 2])
    orders: list[tuple[int, ...]] = [tuple(range(k))]
    seen = set(orders)
    while len(orders) < count:
        order = tuple(int(i) for i in rng.permutation(k))
        if order not in seen:
            seen.add(order)
            orders.append(order)
    return tuple(orders)


def apply_order(demos: Sequence[LabelledExample], order: Sequence[int]) -> tuple[LabelledExample, ...]:
    """``demos`` rearranged: position i holds ``demos[order[i]]``."""
    return tuple(demos[i] for i in order)


@dataclass(frozen=True)
class PlannedBlock:
    """One set of prompts of an evaluation: k demonstrations with the labels of
    ``label_mode`` in order number ``order`` (``orders`` orders exist for this k)."""

    shots: int
    label_mode: str
    order: int
    orders: int
    demos: tuple[LabelledExample, ...]

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        """What the prompts depend on: equal keys give equal prompts (k = 0 in every mode)."""
        return tuple((d.text, d.label) for d in self.demos)

    def describe(self) -> str:
        """e.g. "4-shot", "4-shot, flipped labels, order 2/5"."""
        text = f"{self.shots}-shot"
        if self.label_mode != "gold":
            text += f", {self.label_mode} labels"
        if self.orders > 1:
            text += f", order {self.order + 1}/{self.orders}"
        return text


def evaluation_plan(pool: Sequence[LabelledExample], labels: Sequence[str], shots: Sequence[int],
                    seed: int, orders: int = 1, label_modes: Sequence[str] = ("gold",)
                    ) -> tuple[PlannedBlock, ...]:
    """Every block of an evaluation, k outermost, then label mode, then order.

    For each k the demonstrations are ``choose_demonstrations(pool, k, seed, labels)``,
    relabelled for the mode (``relabel``) and rearranged by each of
    ``demonstration_orders(k, orders, seed)``; order 0 is the chosen order itself.
    """
    plan: list[PlannedBlock] = []
    for k in shots:
        chosen = choose_demonstrations(pool, k, seed, labels)
        permutations = demonstration_orders(k, orders, seed)
        for mode in label_modes:
            labelled = relabel(chosen, labels, mode, seed)
            for number, order in enumerate(permutations):
                plan.append(PlannedBlock(k, mode, number, len(permutations),
                                         apply_order(labelled, order)))
    return tuple(plan)


# --------------------------------------------------------------------------- prompts


@dataclass(frozen=True)
class Segment:
    """A named part of a prompt: characters [start, end) of the prompt text.

    kind is "instruction", "demonstration" or "query"; name is "instruction",
    "demo 1".."demo k" or "query"; label is the demonstration's label ("" otherwise).
    """

    name: str
    kind: str
    start: int
    end: int
    label: str = ""


@dataclass(frozen=True)
class BuiltPrompt:
    """A prompt's text and its segments (contiguous, covering the whole text, in order)."""

    text: str
    segments: tuple[Segment, ...]
    query_label: str = ""

    @property
    def char_bounds(self) -> list[tuple[int, int]]:
        return [(s.start, s.end) for s in self.segments]

    def segment_text(self, index: int) -> str:
        segment = self.segments[index]
        return self.text[segment.start : segment.end]


def build_prompt(template: FewShotTemplate, demos: Sequence[LabelledExample],
                 query: str | LabelledExample) -> BuiltPrompt:
    """Instruction (if any), the demonstrations in order, then the query."""
    pieces: list[tuple[str, str, str, str]] = []  # (name, kind, text, label)
    if template.instruction:
        pieces.append(("instruction", "instruction", template.instruction + template.separator, ""))
    for number, demo in enumerate(demos, start=1):
        text = template.render_demonstration(demo.text, demo.label) + template.separator
        pieces.append((f"demo {number}", "demonstration", text, demo.label))
    query_text = query.text if isinstance(query, LabelledExample) else query
    pieces.append(("query", "query", template.render_query(query_text), ""))
    segments, position = [], 0
    for name, kind, text, label in pieces:
        segments.append(Segment(name, kind, position, position + len(text), label))
        position += len(text)
    query_label = query.label if isinstance(query, LabelledExample) else ""
    return BuiltPrompt("".join(p[2] for p in pieces), tuple(segments), query_label)


def shared_prefix_chars(template: FewShotTemplate, demos: Sequence[LabelledExample]) -> int:
    """How many leading characters every prompt with these demonstrations shares: the
    instruction, the demonstrations and the query format's text before {text}."""
    return build_prompt(template, demos, "").segments[-1].start + template.query.index("{text}")


def token_segment_ids(offsets: np.ndarray, bounds: Sequence[tuple[int, int]]) -> np.ndarray:
    """Which segment each token belongs to: int64[T] (-1 = none).

    offsets: int64[T, 2] character spans of the tokens; bounds: [start, end) per segment,
    in order and not overlapping. Rule: a token belongs to the segment holding its FIRST
    character (offsets[t, 0]), so a token that straddles a boundary (tokenisation merged
    the end of one segment with the start of the next) counts for the earlier segment.
    Tokens with a negative offset are special (BOS, EOS) and belong to no segment; so do
    tokens whose first character lies outside every segment.

    Offsets are taken as the tokenizer reports them. Byte-level tokenizers that trim
    offsets report "Ġthis" from the "t", and a token made only of trimmed whitespace as
    an empty span (s, s) just after it; an empty span therefore counts from character
    s - 1, the last character it really covers.
    """
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    empty = (offsets[:, 1] <= offsets[:, 0]) & (offsets[:, 0] > 0)
    starts = np.where(empty, offsets[:, 0] - 1, offsets[:, 0])
    ids = np.full(len(offsets), -1, dtype=np.int64)
    for index, (start, end) in enumerate(bounds):
        ids[(starts >= start) & (starts < end)] = index
    ids[offsets[:, 0] < 0] = -1
    return ids


def segment_token_spans(offsets: np.ndarray, bounds: Sequence[tuple[int, int]]
                        ) -> list[tuple[int, int]]:
    """Token spans [first, last + 1) per segment, for ``analysis.segment_sums``.

    Uses the first-character rule of ``token_segment_ids``. A segment with no token of its
    own (all its characters merged into a token that started earlier) gets an empty span
    (i, i) where i is the index of the first token after it. Special tokens that fall
    between a segment's first and last token are inside its span.
    """
    ids = token_segment_ids(offsets, bounds)
    spans: list[tuple[int, int]] = []
    for index in range(len(bounds)):
        members = np.flatnonzero(ids == index)
        if members.size:
            spans.append((int(members[0]), int(members[-1]) + 1))
        else:
            later = np.flatnonzero(ids > index)
            at = int(later[0]) if later.size else len(ids)
            spans.append((at, at))
    return spans


# --------------------------------------------------------------------------- metrics


BOOTSTRAP_RESAMPLES = 1000
CI_LEVEL = 0.95
POOLED = "all"
"""The ``order`` of a summary row pooled over every evaluated order."""


@dataclass(frozen=True)
class ItemPrediction:
    """One query run with k demonstrations (labels of ``label_mode``, in order ``order``).

    label_probs: float64[label], next-token probability of each label summed over its
    first-token variants (raw, not normalised over the labels).
    """

    shots: int
    index: int
    label: str
    predicted: str
    prompt: str
    label_probs: tuple[float, ...]
    calibrated_predicted: str = ""
    label_mode: str = "gold"
    order: int = 0


@dataclass(frozen=True)
class ShotSummary:
    """One row per k, label mode and order (``order`` "0".."N-1", or "all" pooled).

    accuracy: raw argmax over the label probabilities matches the true label.
    calibrated_accuracy: the same after contextual calibration (NaN when not measured).
    mean_label_prob: mean over items of p(true label) / sum over labels of p(label), from the
    raw (uncalibrated) probabilities.
    label_mass: mean over items of the summed probability of all label variants (how much
    of the next-token distribution goes to any label at all).
    prior: float[label] content-free label distribution used for calibration (empty if none
    or pooled over orders).
    accuracy_ci_low/high, calibrated_ci_low/high: 95% percentile bootstrap interval
    (``bootstrap_ci``: items resampled, seeded, 1,000 resamples; a pooled row resamples
    items and keeps every order of a drawn item).
    orders: how many orders the row covers (1 for a single-order row).
    """

    shots: int
    n: int
    accuracy: float
    calibrated_accuracy: float
    mean_label_prob: float
    label_mass: float
    prior: tuple[float, ...] = ()
    demos: tuple[LabelledExample, ...] = field(default=(), compare=False)
    label_mode: str = "gold"
    order: str = "0"
    accuracy_ci_low: float = float("nan")
    accuracy_ci_high: float = float("nan")
    calibrated_ci_low: float = float("nan")
    calibrated_ci_high: float = float("nan")
    orders: int = 1


def normalise_over_labels(label_probs: np.ndarray) -> np.ndarray:
    """float[..., label] -> float64[..., label] summing to 1 (uniform where all are zero)."""
    p = np.asarray(label_probs, dtype=np.float64)
    total = p.sum(axis=-1, keepdims=True)
    uniform = np.full_like(p, 1.0 / p.shape[-1])
    return np.divide(p, total, out=uniform, where=total > 0)


def content_free_prior(content_free_probs: np.ndarray) -> np.ndarray:
    """float[input, label] label probabilities on content-free inputs -> float64[label]:
    each row normalised over the labels, then averaged (Zhao et al. 2021, p_cf)."""
    rows = normalise_over_labels(np.atleast_2d(content_free_probs))
    return normalise_over_labels(rows.mean(axis=0))


def calibrate(label_probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Contextual calibration: q = normalise(W p) with W = diag(prior)^-1.

    label_probs: float[..., label] (normalised over labels first); prior: float[label].
    Returns float64[..., label]. A zero prior entry is clipped to 1e-12.
    """
    p = normalise_over_labels(label_probs)
    weights = 1.0 / np.clip(np.asarray(prior, dtype=np.float64), 1e-12, None)
    return normalise_over_labels(p * weights)


def predict(label_probs: np.ndarray, labels: Sequence[str]) -> list[str]:
    """Argmax label per row of float[item, label] (ties go to the first declared label)."""
    return [labels[i] for i in np.argmax(np.atleast_2d(label_probs), axis=-1)]


def bootstrap_ci(correct: np.ndarray, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES,
                 level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``correct``.

    correct: float[item] (1 = right) or float[order, item]; items are resampled with
    replacement ``resamples`` times (``numpy.random.default_rng(seed)``), every order of
    a drawn item comes along, and the interval is the (1 - level)/2 and (1 + level)/2
    quantiles of the resampled means. (nan, nan) without items.
    """
    values = np.atleast_2d(np.asarray(correct, dtype=np.float64))
    n = values.shape[-1]
    if n == 0:
        return float("nan"), float("nan")
    values = values.reshape(-1, n)
    per_item = values.mean(axis=0)  # float64[item]: mean over orders
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    means = per_item[draws].mean(axis=1)
    low, high = np.quantile(means, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


def summarise(shots: int, labels: Sequence[str], true_labels: Sequence[str],
              label_probs: np.ndarray, prior: np.ndarray | None = None,
              demos: Sequence[LabelledExample] = (), *, label_mode: str = "gold",
              order: int = 0, seed: int = 0) -> ShotSummary:
    """Metrics of one k and one demonstration order from float[item, label] raw label
    probabilities; confidence intervals from ``bootstrap_ci`` with ``seed``."""
    return summarise_orders(shots, labels, true_labels, np.asarray(label_probs)[None],
                            None if prior is None else np.asarray(prior)[None], demos,
                            label_mode=label_mode, order=str(order), seed=seed)


def summarise_orders(shots: int, labels: Sequence[str], true_labels: Sequence[str],
                     label_probs: np.ndarray, priors: np.ndarray | None = None,
                     demos: Sequence[LabelledExample] = (), *, label_mode: str = "gold",
                     order: str = POOLED, seed: int = 0) -> ShotSummary:
    """Metrics pooled over orders from float[order, item, label] raw label probabilities
    and float[order, label] calibration priors (each order calibrated with its own prior):
    every metric is the mean over orders and items."""
    n, count = len(true_labels), len(labels)
    probs = np.asarray(label_probs, dtype=np.float64).reshape(-1, n, count)
    orders = probs.shape[0]
    if n == 0:
        nan = float("nan")
        return ShotSummary(shots, 0, nan, nan, nan, nan, (), tuple(demos), label_mode, order,
                           orders=orders)
    truth = np.array([labels.index(label) for label in true_labels])
    correct = np.argmax(probs, axis=-1) == truth  # bool[order, item]
    normalised = normalise_over_labels(probs)
    mean_label_prob = float(np.mean(normalised[:, np.arange(n), truth]))
    label_mass = float(np.mean(probs.sum(axis=-1)))
    low, high = bootstrap_ci(correct, seed)
    nan = float("nan")
    calibrated_accuracy, cal_low, cal_high = nan, nan, nan
    prior_tuple: tuple[float, ...] = ()
    if priors is not None:
        priors = np.asarray(priors, dtype=np.float64).reshape(orders, count)
        calibrated = np.stack([calibrate(probs[o], priors[o]) for o in range(orders)])
        calibrated_correct = np.argmax(calibrated, axis=-1) == truth
        calibrated_accuracy = float(np.mean(calibrated_correct))
        cal_low, cal_high = bootstrap_ci(calibrated_correct, seed)
        if orders == 1:
            prior_tuple = tuple(float(x) for x in priors[0])
    return ShotSummary(shots, n, float(np.mean(correct)), calibrated_accuracy, mean_label_prob,
                       label_mass, prior_tuple, tuple(demos), label_mode, order, low, high,
                       cal_low, cal_high, orders)


# --------------------------------------------------------------------------- CSV output

SUMMARY_COLUMNS: tuple[str, ...] = ("shots", "n", "accuracy", "calibrated_accuracy",
                                    "mean_label_prob", "label_mode", "order",
                                    "accuracy_ci_low", "accuracy_ci_high")
"""The summary CSV: the first five columns are the original ones, in their order."""


def item_columns(labels: Sequence[str]) -> tuple[str, ...]:
    """shots,index,label,predicted,prompt, p_<label> per label, then label_mode,order."""
    return ("shots", "index", "label", "predicted", "prompt", *(f"p_{label}" for label in labels),
            "label_mode", "order")


def _number(value: float) -> str:
    return "" if value != value else f"{value:.6g}"  # NaN -> empty cell


def written_summary_rows(rows: Sequence[ShotSummary]) -> list[ShotSummary]:
    """The rows the summary CSV holds: the pooled rows (``order == "all"``) only when some
    k was evaluated under more than one order, so a single-order run keeps the one row
    per k (and label mode) that scripts written for the first release read."""
    if any(r.orders > 1 for r in rows):
        return list(rows)
    return [r for r in rows if r.order != POOLED]


def write_summary_csv(path: Path, rows: Sequence[ShotSummary]) -> None:
    """One row per k, label mode and order with SUMMARY_COLUMNS (pooled rows as
    ``written_summary_rows`` keeps them); NaN is an empty cell."""
    rows = written_summary_rows(rows)
    _write(path, SUMMARY_COLUMNS, [
        [str(r.shots), str(r.n), _number(r.accuracy), _number(r.calibrated_accuracy),
         _number(r.mean_label_prob), r.label_mode, r.order, _number(r.accuracy_ci_low),
         _number(r.accuracy_ci_high)] for r in rows
    ])


def write_items_csv(path: Path, labels: Sequence[str], items: Sequence[ItemPrediction]) -> None:
    """One row per (k, label mode, order, item): ``index`` is the 0-based position in the
    examples file and p_<label> the raw next-token probability summed over the label's
    variants."""
    _write(path, item_columns(labels), [
        [str(i.shots), str(i.index), i.label, i.predicted, i.prompt,
         *(f"{p:.6g}" for p in i.label_probs), i.label_mode, str(i.order)] for i in items
    ])


def _write(path: Path, header: Sequence[str], rows: list[list[str]]) -> None:
    try:
        with Path(path).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as exc:
        raise ExplorerError(f"Cannot write '{path}': {exc}") from exc


# --------------------------------------------------------------------------- shipped data


def resources_dir() -> Path:
    """The shipped ``resources/`` folder, read as package data ``explorer/resources``.

    In a checkout ``explorer/resources`` is a symlink to the top-level ``resources/``; the
    wheel build copies the files behind it, so an installed copy finds them at the same
    place."""
    return Path(str(importlib.resources.files("explorer").joinpath("resources")))


def shipped(name: str) -> Path:
    """A file under ``resources/sentiment/``; ExplorerError if it is not there."""
    path = resources_dir() / "sentiment" / name
    if not path.is_file():
        raise ExplorerError(
            f"The shipped file '{path}' is missing (an installation without the package data explorer/resources/?). "
            "Pass your own files with --examples, --demos and --template."
        )
    return path

"""Few-shot evaluation on a loaded causal model: label-word probabilities per prompt and
accuracy / calibration per number of demonstrations.

Label variants: for each label the FIRST token of ``label`` and of ``" " + label`` (the
declared spelling), and with case-insensitive matching (the default of ``evaluate``) also
its lower / capitalised / upper case forms that are one token each. Ids are deduplicated
per label; ``LabelVariants.variants`` records which (text, id, piece) were summed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explorer.backend.engine import check_prompt, tokenize
from explorer.backend.kv_cache import cache_argument, returned_cache
from explorer.backend.loader import LoadedModel
from explorer.core import fewshot
from explorer.core.errors import ExplorerError
from explorer.core.fewshot import (
    CONTENT_FREE_INPUTS,
    COURSE_TEMPLATE,
    FewShotTemplate,
    ItemPrediction,
    LabelledExample,
    ShotSummary,
    build_prompt,
    content_free_prior,
    predict,
    summarise,
)
from explorer.core.progress import TaskState


@dataclass(frozen=True)
class LabelVariants:
    """One label and the first-token variants whose probabilities are summed.

    variants: ((variant text, token id, token piece), ...) with distinct ids.
    """

    label: str
    variants: tuple[tuple[str, int, str], ...]

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(v[1] for v in self.variants)

    def describe(self) -> str:
        """e.g. 'Positive: "Positive" -> Positive (#123), " Positive" -> ĠPositive (#456)'."""
        parts = [f"{text!r} -> {piece} (#{token_id})" for text, token_id, piece in self.variants]
        return f"{self.label}: " + ", ".join(parts)


@dataclass(frozen=True)
class Evaluation:
    """Everything one evaluation measured (or, with ``complete`` False, has measured so far).

    rows: a summary per (k, label mode, order) and a pooled one per (k, label mode)
    (``order == "all"``), in the order of ``fewshot.evaluation_plan``; items: one
    prediction per (k, label mode, order, item).
    """

    labels: tuple[str, ...]
    variants: tuple[LabelVariants, ...]
    rows: tuple[ShotSummary, ...]
    items: tuple[ItemPrediction, ...]
    content_free: tuple[str, ...] = field(default=CONTENT_FREE_INPUTS)
    label_modes: tuple[str, ...] = ("gold",)
    orders: int = 1
    case_insensitive: bool = True
    complete: bool = True

    def pooled_rows(self) -> tuple[ShotSummary, ...]:
        """The rows pooled over orders, one per (k, label mode)."""
        return tuple(r for r in self.rows if r.order == fewshot.POOLED)


def case_forms(label: str) -> tuple[str, ...]:
    """The other spellings case-insensitive matching also counts: lower case, capitalised
    and upper case forms that differ from ``label`` (e.g. "Positive" -> "positive",
    "POSITIVE")."""
    forms: list[str] = []
    for form in (label.lower(), label[:1].upper() + label[1:].lower(), label.upper()):
        if form != label and form not in forms:
            forms.append(form)
    return tuple(forms)


def label_variants(loaded: LoadedModel, labels: Sequence[str], lowercase: bool = False,
                   case_insensitive: bool = False) -> tuple[LabelVariants, ...]:
    """First-token ids of ``label`` and ``" " + label``, plus other spellings if asked.

    ``lowercase`` (kept for old callers) adds the first tokens of the lowercase forms.
    ``case_insensitive`` adds every form of ``case_forms`` (with and without a leading
    space) that the tokenizer has as ONE token: " negative" is counted for "Negative", but
    a form split into pieces ("NEG" + "ATIVE") adds nothing, so a short piece that starts
    many other words is never summed.

    A first token shared by two labels (e.g. a bare space token when the tokenizer has no
    " Positive" piece) says nothing about either label and is dropped from both; a label
    left with no variant of its own raises ExplorerError.
    """
    tokenizer = loaded.tokenizer
    candidates: list[dict[int, tuple[str, int, str]]] = []
    claims: dict[int, set[str]] = {}
    for label in labels:
        texts = [(label, False), (" " + label, False)]
        if lowercase and label.lower() != label:
            texts += [(label.lower(), False), (" " + label.lower(), False)]
        if case_insensitive:
            texts += [(text, True) for form in case_forms(label) for text in (form, " " + form)]
        seen: dict[int, tuple[str, int, str]] = {}
        for text, whole_only in texts:
            ids = tokenizer.encode(text, add_special_tokens=False)
            if not ids or (whole_only and len(ids) != 1):
                continue
            token_id = int(ids[0])
            if token_id not in seen:
                seen[token_id] = (text, token_id, str(tokenizer.convert_ids_to_tokens(token_id)))
            claims.setdefault(token_id, set()).add(label)
        candidates.append(seen)
    result: list[LabelVariants] = []
    for label, seen in zip(labels, candidates, strict=True):
        own = tuple(v for token_id, v in seen.items() if len(claims[token_id]) == 1)
        if not own:
            pieces = ", ".join(repr(v[2]) for v in seen.values()) or "no tokens"
            raise ExplorerError(
                f"The label {label!r} has no first token of its own ({pieces} also start "
                "another label); pick label words whose first tokens differ."
            )
        result.append(LabelVariants(label, own))
    return tuple(result)


def next_token_probs(loaded: LoadedModel, prompt: str, prefix: PrefixCache | None = None
                     ) -> np.ndarray:
    """float32[V] next-token distribution after the last token of ``prompt``.

    Same tokenisation and softmax as ``engine.analyze(...).last_probs`` but without
    attention weights, and only the last position goes through the output head. With a
    ``prefix`` whose token ids start the prompt's token ids, only the rest of the prompt
    is run on top of the prefix's key/value cache (equal up to float rounding).
    """
    import torch

    if not loaded.info.causal:
        raise ExplorerError(
            f"'{loaded.info.name}' is an encoder; few-shot evaluation needs a model that "
            "predicts the next token."
        )
    ids, _, offsets = tokenize(loaded, prompt)
    check_prompt(loaded, prompt, len(ids))
    past, start = (None, 0) if prefix is None else prefix.lookup(ids, offsets)
    with torch.inference_mode():
        outputs = forward_tokens(loaded, ids[start:], past)
        logits = outputs.logits[0, -1].float()
        return torch.log_softmax(logits, dim=-1).exp().cpu().numpy().astype(np.float32)


def forward_tokens(loaded: LoadedModel, ids: list[int], past: Any = None, keep_cache: bool = False) -> Any:
    """The model's output for ``ids`` on top of the key/value cache ``past`` (None: from the
    start), logits of the last position only where the model allows; ``keep_cache`` asks
    for the cache back (``kv_cache.returned_cache``)."""
    import torch

    input_ids = torch.tensor([ids], dtype=torch.long, device=loaded.model.device)
    kwargs: dict[str, Any] = {"use_cache": keep_cache or past is not None}
    if past is not None:
        kwargs[cache_argument(loaded.model)] = past
    try:
        return loaded.model(input_ids=input_ids, logits_to_keep=1, **kwargs)
    except TypeError:  # models without logits_to_keep
        return loaded.model(input_ids=input_ids, **kwargs)


class PrefixCache:
    """The key/value cache of the leading tokens that many prompts share (the instruction,
    the demonstrations and the query format's text before {text}).

    ``prefix_chars`` is how many characters every prompt shares
    (``fewshot.shared_prefix_chars``). On first use the prompt's
    own leading tokens that end at or before that character are run once and their cache
    kept: tokens are taken from the FULL prompt's tokenisation, because a prefix tokenised
    alone can differ at its end (byte-level BPE makes "\n\n" one token at the end of a
    text but two before a word). ``lookup(ids, offsets)`` returns (a private copy of the
    cache, its length) when those token ids start ``ids`` and leave a token to run, else
    (None, 0) and the prompt runs in full, so the result never depends on the cache.
    """

    def __init__(self, loaded: LoadedModel, prefix_chars: int) -> None:
        self.loaded = loaded
        self.prefix_chars = prefix_chars
        self.ids: list[int] | None = None  # None: not built yet; []: unusable
        self.past: Any = None

    def lookup(self, ids: list[int], offsets: np.ndarray) -> tuple[Any, int]:
        if self.ids is None:
            self._build(ids, offsets)
        n = len(self.ids or [])
        if n == 0 or len(ids) <= n or ids[:n] != self.ids:
            return None, 0
        return copy.deepcopy(self.past), n

    def _build(self, ids: list[int], offsets: np.ndarray) -> None:
        import torch

        self.ids = []
        ends = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)[:, 1]
        inside = (ends <= self.prefix_chars) & (ends >= 0) | (ends < 0)
        outside = np.flatnonzero(~inside)
        count = int(outside[0]) if outside.size else len(ids)
        if self.prefix_chars <= 0 or count < 1 or count >= len(ids):
            return
        with torch.inference_mode():
            outputs = forward_tokens(self.loaded, ids[:count], keep_cache=True)
        self.past = returned_cache(outputs)
        if self.past is not None:
            self.ids = list(ids[:count])


def label_probabilities(loaded: LoadedModel, prompt: str, variants: Sequence[LabelVariants],
                        prefix: PrefixCache | None = None) -> np.ndarray:
    """float64[label]: next-token probability of each label, summed over its variant ids."""
    probs = next_token_probs(loaded, prompt, prefix)
    return sum_variants(probs, variants)


def sum_variants(probs: np.ndarray, variants: Sequence[LabelVariants]) -> np.ndarray:
    """float[V] distribution -> float64[label] sums over each label's variant ids."""
    probs = np.asarray(probs, dtype=np.float64)
    return np.array([probs[list(v.ids)].sum() for v in variants], dtype=np.float64)


PartialCallback = Callable[["Evaluation"], None]


def evaluate(
    loaded: LoadedModel,
    examples: Sequence[LabelledExample],
    demos: Sequence[LabelledExample],
    labels: Sequence[str],
    shots: Sequence[int],
    template: FewShotTemplate = COURSE_TEMPLATE,
    seed: int = 0,
    calibrate: bool = True,
    task: TaskState | None = None,
    content_free: Sequence[str] = CONTENT_FREE_INPUTS,
    *,
    orders: int = 1,
    label_modes: Sequence[str] = ("gold",),
    case_insensitive: bool = True,
    on_partial: PartialCallback | None = None,
) -> Evaluation:
    """Run every example with k demonstrations for each k in ``shots``, each label mode
    and each of up to ``orders`` demonstration orders (``fewshot.evaluation_plan``).

    Each block (k, mode, order) uses one demonstration sequence for every example and for
    the content-free inputs that measure its calibration prior. A block's shared prefix
    (instruction, demonstrations, the query format before the text) is run once and its
    key/value cache reused (``PrefixCache``); a block whose demonstrations equal an
    earlier block's (k = 0 in every mode, a random relabelling that changed nothing) reuses
    its numbers. After every block ``on_partial`` receives the evaluation so far
    (``complete=False``), so a caller can show partial results. Label probabilities are
    summed over case variants unless ``case_insensitive`` is False.

    One query is one step: progress is reported after each, and a cancel request stops
    before the next query (raises Cancelled), so at most the query already running
    completes.
    """
    task = task or TaskState()
    labels = tuple(labels)
    modes = fewshot.parse_label_modes(label_modes)
    variants = label_variants(loaded, labels, case_insensitive=case_insensitive)
    plan = fewshot.evaluation_plan(demos, labels, shots, seed, orders, modes)
    cf_inputs = tuple(content_free) if calibrate else ()
    unique = len({block.key for block in plan})
    total = max(1, unique * (len(examples) + len(cf_inputs)))
    done = 0
    measured: dict[tuple[tuple[str, str], ...], tuple[np.ndarray, np.ndarray | None]] = {}
    truth = [e.label for e in examples]
    rows: list[ShotSummary] = []
    items: list[ItemPrediction] = []
    group: list[tuple[np.ndarray, np.ndarray | None]] = []

    def step(message: str) -> None:
        nonlocal done
        done += 1
        task.progress(done / total, message)

    def snapshot(complete: bool) -> Evaluation:
        return Evaluation(labels, variants, tuple(rows), tuple(items), cf_inputs, modes,
                          orders, case_insensitive, complete)

    for block in plan:
        task.check_cancelled()
        if block.key not in measured:
            measured[block.key] = _run_block(loaded, template, block, examples, variants,
                                             cf_inputs, task, step)
        probs, prior = measured[block.key]
        predicted = predict(probs, labels)
        calibrated = ([""] * len(examples) if prior is None
                      else predict(fewshot.calibrate(probs, prior), labels))
        for index, example in enumerate(examples):
            items.append(ItemPrediction(
                shots=block.shots, index=index, label=example.label, predicted=predicted[index],
                prompt=build_prompt(template, block.demos, example).text,
                label_probs=tuple(float(p) for p in probs[index]),
                calibrated_predicted=calibrated[index], label_mode=block.label_mode,
                order=block.order,
            ))
        rows.append(summarise(block.shots, labels, truth, probs, prior, block.demos,
                              label_mode=block.label_mode, order=block.order, seed=seed))
        group.append((probs, prior))
        if block.order == block.orders - 1:  # the last order of (k, mode): the pooled row
            priors = None if prior is None else np.stack([g[1] for g in group])  # type: ignore[misc]
            rows.append(fewshot.summarise_orders(
                block.shots, labels, truth, np.stack([g[0] for g in group]), priors,
                label_mode=block.label_mode, order=fewshot.POOLED, seed=seed))
            group = []
        if on_partial is not None:
            on_partial(snapshot(complete=False))
    return snapshot(complete=True)


def _run_block(loaded: LoadedModel, template: FewShotTemplate, block: fewshot.PlannedBlock,
               examples: Sequence[LabelledExample], variants: Sequence[LabelVariants],
               cf_inputs: Sequence[str], task: TaskState, step: Callable[[str], None]
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """float64[item, label] raw label probabilities and the float64[label] calibration
    prior (None without content-free inputs) of one block, on one shared prefix cache."""
    prefix = PrefixCache(loaded, fewshot.shared_prefix_chars(template, block.demos))
    name = block.describe()
    prior = None
    if cf_inputs:
        cf_probs = []
        for text in cf_inputs:
            task.check_cancelled()
            prompt = build_prompt(template, block.demos, text).text
            cf_probs.append(label_probabilities(loaded, prompt, variants, prefix))
            step(f"{name} (calibrating on {text!r})")
        prior = content_free_prior(np.array(cf_probs))
    probs = np.zeros((len(examples), len(variants)), dtype=np.float64)
    for index, example in enumerate(examples):
        task.check_cancelled()
        prompt = build_prompt(template, block.demos, example).text
        probs[index] = label_probabilities(loaded, prompt, variants, prefix)
        step(f"{name} (item {index + 1}/{len(examples)})")
    return probs, prior

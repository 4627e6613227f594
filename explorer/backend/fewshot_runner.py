"""Few-shot evaluation on a loaded causal model: label-word probabilities per prompt and
accuracy / calibration per number of demonstrations.

Label variants: for each label the FIRST token of ``label`` and of ``" " + label`` (the
declared spelling, no lowercase forms unless asked for). Ids are deduplicated per label;
``LabelVariants.variants`` records which (text, id, piece) were summed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
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
    choose_demonstrations,
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
    """Everything one evaluation measured: one summary per k and one prediction per (k, item)."""

    labels: tuple[str, ...]
    variants: tuple[LabelVariants, ...]
    rows: tuple[ShotSummary, ...]
    items: tuple[ItemPrediction, ...]
    content_free: tuple[str, ...] = field(default=CONTENT_FREE_INPUTS)


def label_variants(loaded: LoadedModel, labels: Sequence[str], lowercase: bool = False
                   ) -> tuple[LabelVariants, ...]:
    """First-token ids of ``label`` and ``" " + label`` (and lowercase forms if asked).

    A first token shared by two labels (e.g. a bare space token when the tokenizer has no
    " Positive" piece) says nothing about either label and is dropped from both; a label
    left with no variant of its own raises ExplorerError.
    """
    tokenizer = loaded.tokenizer
    candidates: list[dict[int, tuple[str, int, str]]] = []
    claims: dict[int, set[str]] = {}
    for label in labels:
        texts = [label, " " + label]
        if lowercase and label.lower() != label:
            texts += [label.lower(), " " + label.lower()]
        seen: dict[int, tuple[str, int, str]] = {}
        for text in texts:
            ids = tokenizer.encode(text, add_special_tokens=False)
            if not ids:
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
        outputs = _forward(loaded, ids[start:], past)
        logits = outputs.logits[0, -1].float()
        return torch.log_softmax(logits, dim=-1).exp().cpu().numpy().astype(np.float32)


def _forward(loaded: LoadedModel, ids: list[int], past: Any = None, keep_cache: bool = False) -> Any:
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
    """The key/value cache of the leading tokens that many prompts share (the demonstrations).

    ``prefix_chars`` is where the query starts in every prompt. On first use the prompt's
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
            outputs = _forward(self.loaded, ids[:count], keep_cache=True)
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
) -> Evaluation:
    """Run every example with k demonstrations for each k in ``shots``.

    For each k one demonstration set is drawn (``choose_demonstrations`` with ``seed``) and
    used for every example and for the content-free inputs that measure the calibration
    prior. The demonstrations' key/value cache is computed once per k (``PrefixCache``).
    One query is one step: progress is reported after each, and a cancel request stops
    before the next query (raises Cancelled), so at most the query already running
    completes.
    """
    task = task or TaskState()
    labels = tuple(labels)
    variants = label_variants(loaded, labels)
    plan = [(k, choose_demonstrations(demos, k, seed, labels)) for k in shots]
    cf_inputs = tuple(content_free) if calibrate else ()
    total = max(1, len(plan) * (len(examples) + len(cf_inputs)))
    done = 0
    rows: list[ShotSummary] = []
    items: list[ItemPrediction] = []

    def step(message: str) -> None:
        nonlocal done
        done += 1
        task.progress(done / total, message)

    for k, chosen in plan:
        task.check_cancelled()
        prefix = PrefixCache(loaded, build_prompt(template, chosen, "").segments[-1].start)
        prior = None
        if cf_inputs:
            cf_probs = []
            for text in cf_inputs:
                task.check_cancelled()
                prompt = build_prompt(template, chosen, text).text
                cf_probs.append(label_probabilities(loaded, prompt, variants, prefix))
                step(f"{k}-shot (calibrating on {text!r})")
            prior = content_free_prior(np.array(cf_probs))
        probs = np.zeros((len(examples), len(labels)), dtype=np.float64)
        for index, example in enumerate(examples):
            task.check_cancelled()
            prompt = build_prompt(template, chosen, example).text
            probs[index] = label_probabilities(loaded, prompt, variants, prefix)
            step(f"{k}-shot (item {index + 1}/{len(examples)})")
        predicted = predict(probs, labels)
        calibrated = ([""] * len(examples) if prior is None
                      else predict(fewshot.calibrate(probs, prior), labels))
        for index, example in enumerate(examples):
            items.append(ItemPrediction(
                shots=k, index=index, label=example.label, predicted=predicted[index],
                prompt=build_prompt(template, chosen, example).text,
                label_probs=tuple(float(p) for p in probs[index]),
                calibrated_predicted=calibrated[index],
            ))
        rows.append(summarise(k, labels, [e.label for e in examples], probs, prior, chosen))
    return Evaluation(labels, variants, tuple(rows), tuple(items), cf_inputs)


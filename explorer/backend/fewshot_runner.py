"""Few-shot evaluation on a loaded causal model: label-word probabilities per prompt and
accuracy / calibration per number of demonstrations.

Label variants: for each label the FIRST token of ``label`` and of ``" " + label`` (the
declared spelling, no lowercase forms unless asked for). Ids are deduplicated per label;
``LabelVariants.variants`` records which (text, id, piece) were summed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from explorer.backend.engine import check_prompt, tokenize
from explorer.backend.loader import LoadedModel
from explorer.core.errors import ExplorerError
from explorer.core.fewshot import (
    CONTENT_FREE_INPUTS,
    COURSE_TEMPLATE,
    FewShotTemplate,
    ItemPrediction,
    LabelledExample,
    ShotSummary,
    build_prompt,
    calibrate,
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

    Raises ExplorerError when two labels share a first token: their probabilities could not
    be told apart.
    """
    tokenizer = loaded.tokenizer
    result: list[LabelVariants] = []
    owner: dict[int, str] = {}
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
        if not seen:
            raise ExplorerError(f"The label {label!r} produces no tokens.")
        for token_id, (text, _, piece) in seen.items():
            if token_id in owner and owner[token_id] != label:
                raise ExplorerError(
                    f"The labels {owner[token_id]!r} and {label!r} start with the same token "
                    f"{piece!r}; pick label words whose first tokens differ."
                )
            owner[token_id] = label
        result.append(LabelVariants(label, tuple(seen.values())))
    return tuple(result)


def next_token_probs(loaded: LoadedModel, prompt: str) -> np.ndarray:
    """float32[V] next-token distribution after the last token of ``prompt``.

    Same tokenisation and softmax as ``engine.analyze(...).last_probs`` but without
    attention weights, and only the last position goes through the output head.
    """
    import torch

    if not loaded.info.causal:
        raise ExplorerError(
            f"'{loaded.info.name}' is an encoder; few-shot evaluation needs a model that "
            "predicts the next token."
        )
    ids, _, _ = tokenize(loaded, prompt)
    check_prompt(loaded, prompt, len(ids))
    with torch.inference_mode():
        input_ids = torch.tensor([ids], dtype=torch.long)
        try:
            outputs = loaded.model(input_ids=input_ids, use_cache=False, logits_to_keep=1)
        except TypeError:  # models without logits_to_keep
            outputs = loaded.model(input_ids=input_ids, use_cache=False)
        logits = outputs.logits[0, -1].float()
        return torch.log_softmax(logits, dim=-1).exp().numpy().astype(np.float32)


def label_probabilities(loaded: LoadedModel, prompt: str, variants: Sequence[LabelVariants]
                        ) -> np.ndarray:
    """float64[label]: next-token probability of each label, summed over its variant ids."""
    probs = next_token_probs(loaded, prompt)
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
    calibrate_labels: bool = True,
    task: TaskState | None = None,
    content_free: Sequence[str] = CONTENT_FREE_INPUTS,
) -> Evaluation:
    """Run every example with k demonstrations for each k in ``shots``.

    For each k one demonstration set is drawn (``choose_demonstrations`` with ``seed``) and
    used for every example and for the content-free inputs that measure the calibration
    prior. One model forward is one step: progress is reported after each, and a cancel
    request stops before the next forward (raises Cancelled), so at most the forward
    already running completes.
    """
    task = task or TaskState()
    labels = tuple(labels)
    variants = label_variants(loaded, labels)
    plan = [(k, choose_demonstrations(demos, k, seed, labels)) for k in shots]
    cf_inputs = tuple(content_free) if calibrate_labels else ()
    total = max(1, len(plan) * (len(examples) + len(cf_inputs)))
    done = 0
    rows: list[ShotSummary] = []
    items: list[ItemPrediction] = []

    def step(message: str) -> None:
        nonlocal done
        done += 1
        task.progress(done / total, message)

    for k, chosen in plan:
        prior = None
        if cf_inputs:
            cf_probs = []
            for text in cf_inputs:
                task.check_cancelled()
                cf_probs.append(label_probabilities(loaded, build_prompt(template, chosen, text).text,
                                                    variants))
                step(f"{k}-shot (calibrating on {text!r})")
            prior = content_free_prior(np.array(cf_probs))
        probs = np.zeros((len(examples), len(labels)), dtype=np.float64)
        for index, example in enumerate(examples):
            task.check_cancelled()
            prompt = build_prompt(template, chosen, example).text
            probs[index] = label_probabilities(loaded, prompt, variants)
            step(f"{k}-shot (item {index + 1}/{len(examples)})")
        predicted = predict(probs, labels)
        calibrated = predict(calibrate(probs, prior), labels) if prior is not None else [""] * len(examples)
        for index, example in enumerate(examples):
            items.append(ItemPrediction(
                shots=k, index=index, label=example.label, predicted=predicted[index],
                prompt=build_prompt(template, chosen, example).text,
                label_probs=tuple(float(p) for p in probs[index]),
                calibrated_predicted=calibrated[index],
            ))
        rows.append(summarise(k, labels, [e.label for e in examples], probs, prior, chosen))
    return Evaluation(labels, variants, tuple(rows), tuple(items), cf_inputs)


"""Demonstration effects and order sensitivity of one few-shot prompt on a causal model.

Every variant of a prompt (a demonstration left out, a label flipped, another order)
shares its leading tokens with the prompt itself up to the first demonstration it
changes. ``SharedPrefixRunner`` runs the prompt once, keeps its key/value cache, and
runs each variant on a copy of that cache cut back to the tokens the two have in common
(token ids compared, so a tokenisation that differs at the boundary only shortens the
reused part). Models whose cache cannot be cut back (sliding-window layers) run each
variant in full; the numbers never depend on the cache.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from explorer.backend.engine import check_prompt, tokenize
from explorer.backend.fewshot_runner import LabelVariants, forward_tokens, sum_variants
from explorer.backend.kv_cache import returned_cache
from explorer.backend.loader import LoadedModel
from explorer.core.errors import ExplorerError
from explorer.core.fewshot import BuiltPrompt, FewShotTemplate, flip_label
from explorer.core.icl import (
    DemoEffect,
    DemoEffects,
    OrderSpread,
    demonstration_parts,
    demonstration_segments,
    reorder_demonstrations,
    with_demonstration_label,
    without_demonstration,
)
from explorer.core.progress import TaskState


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _cut(cache: Any, keep: int) -> Any | None:
    """A copy of ``cache`` holding its first ``keep`` tokens, or None when the cache
    cannot be cut back exactly. ``crop(-n)`` removes the last n tokens in every
    transformers version (a positive argument means the length to keep in 4.x and is
    refused in 5.x)."""
    if not getattr(cache, "is_croppable", True) or not hasattr(cache, "crop"):
        return None
    copied = copy.deepcopy(cache)
    remove = int(copied.get_seq_length()) - keep
    try:
        if remove > 0:
            copied.crop(-remove)
    except (RuntimeError, ValueError):  # sliding-window layers that dropped older states
        return None
    return copied if int(copied.get_seq_length()) == keep else None


class SharedPrefixRunner:
    """Next-token distributions of a base prompt and of prompts that start like it.

    ``reuse=False`` runs every prompt in full (the naive baseline of the benchmark).
    ``reused_tokens`` counts the tokens taken from the cache instead of being run.
    """

    def __init__(self, loaded: LoadedModel, base: str, reuse: bool = True) -> None:
        import torch

        if not loaded.info.causal:
            raise ExplorerError(f"'{loaded.info.name}' is an encoder: it does not predict a "
                                "next token, so there are no label probabilities to compare.")
        self.loaded = loaded
        self.reuse = reuse
        self.reused_tokens = 0
        self.ids, _, _ = tokenize(loaded, base)
        check_prompt(loaded, base, len(self.ids))
        with torch.inference_mode():
            outputs = forward_tokens(loaded, self.ids, keep_cache=reuse)
            self.base_probs = torch.log_softmax(outputs.logits[0, -1].float(), -1).exp().numpy()
        self.cache = returned_cache(outputs) if reuse else None

    def probs(self, prompt: str) -> np.ndarray:
        """float32[V] next-token distribution after ``prompt``."""
        import torch

        ids, _, _ = tokenize(self.loaded, prompt)
        check_prompt(self.loaded, prompt, len(ids))
        keep = min(_common_prefix(ids, self.ids), len(ids) - 1, len(self.ids))
        past = _cut(self.cache, keep) if self.cache is not None and keep > 0 else None
        start = keep if past is not None else 0
        self.reused_tokens += start
        with torch.inference_mode():
            logits = forward_tokens(self.loaded, ids[start:], past).logits[0, -1].float()
            return torch.log_softmax(logits, -1).exp().numpy()


def demo_effects(loaded: LoadedModel, prompt: BuiltPrompt, template: FewShotTemplate,
                 variants: Sequence[LabelVariants], task: TaskState | None = None,
                 reuse: bool = True) -> DemoEffects:
    """Label probabilities of ``prompt`` with each demonstration left out and with its
    label flipped (``fewshot.flip_label`` among the variants' labels). A demonstration
    whose label is not a declared label keeps ``flipped_probs`` None."""
    task = task or TaskState()
    labels = tuple(v.label for v in variants)
    started = time.perf_counter()
    runner = SharedPrefixRunner(loaded, prompt.text, reuse)
    count = len(demonstration_segments(prompt))
    effects: list[DemoEffect] = []
    for number in range(count):
        task.progress(number / max(count, 1), f"demonstration {number + 1}/{count}")
        parts = demonstration_parts(prompt, number, template)
        segment = prompt.segments[demonstration_segments(prompt)[number]]
        text = parts.text if parts else prompt.text[segment.start : segment.end].strip()
        label = parts.label if parts else segment.label
        left = sum_variants(runner.probs(without_demonstration(prompt, number).text), variants)
        flipped, flipped_label = None, ""
        if parts is not None and label in labels:
            flipped_label = flip_label(label, labels)
            changed = with_demonstration_label(prompt, number, flipped_label, template)
            flipped = sum_variants(runner.probs(changed.text), variants)
        effects.append(DemoEffect(number, text, label, left, flipped, flipped_label))
    task.progress(1.0, "demonstration effects")
    return DemoEffects(labels, sum_variants(runner.base_probs, variants), tuple(effects),
                       time.perf_counter() - started, runner.reused_tokens)


def order_spread(loaded: LoadedModel, prompt: BuiltPrompt, orders: Sequence[Sequence[int]],
                 variants: Sequence[LabelVariants], task: TaskState | None = None
                 ) -> OrderSpread:
    """Label probabilities of ``prompt`` with its demonstrations in each of ``orders``
    (permutations, ``fewshot.demonstration_orders``; the identity is the prompt itself)."""
    task = task or TaskState()
    runner = SharedPrefixRunner(loaded, prompt.text)
    prompts, rows = [], []
    for number, order in enumerate(orders):
        task.progress(number / len(orders), f"order {number + 1}/{len(orders)}")
        shuffled = reorder_demonstrations(prompt, order)
        probs = runner.base_probs if shuffled.text == prompt.text else runner.probs(shuffled.text)
        prompts.append(shuffled)
        rows.append(sum_variants(probs, variants))
    task.progress(1.0, "orders")
    return OrderSpread(tuple(v.label for v in variants), tuple(tuple(o) for o in orders),
                       np.array(rows, dtype=np.float64), tuple(prompts))

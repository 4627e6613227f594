"""Saliency of every attention weight for a label prediction, and the label-anchor flows.

Wang et al. 2023 ("Label Words are Anchors") score attention edge (i, j) of layer l by
I_l(i, j) = |sum over heads of A_h(i, j) * dL/dA_h(i, j)| with L the loss of the
prediction. Here L = -log p(predicted label), p summed over the label's first-token
variants at the final position. One eager forward runs with a hook on every attention
module (the modules transformers records weights from, ``attention_capture``) keeping
its weights output in the autograd graph; ``torch.autograd.grad`` then gives dL/dA for
all layers at once, without filling any parameter's ``.grad``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from explorer.backend.attention_capture import attention_modules
from explorer.backend.engine import check_prompt, tokenize
from explorer.backend.fewshot_runner import LabelVariants
from explorer.backend.loader import LoadedModel
from explorer.core.errors import AttentionUnavailableError, ExplorerError
from explorer.core.fewshot import BuiltPrompt, FewShotTemplate
from explorer.core.icl import (
    AnchorFlow,
    anchor_flow,
    demonstration_parts,
    demonstration_segments,
    label_word_positions,
)
from explorer.core.progress import TaskState


@contextmanager
def _eager(model: Any) -> Iterator[None]:
    """Run ``model`` with eager attention (the only one that returns weights)."""
    previous = getattr(model.config, "_attn_implementation", "eager")
    switch = previous != "eager" and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(previous)


TargetChoice = Callable[[np.ndarray], Sequence[int]]
"""Given the float32[V] next-token distribution, the token ids whose summed probability
the loss is about."""


def attention_saliency(loaded: LoadedModel, prompt: str, targets: Sequence[int] | TargetChoice,
                       task: TaskState | None = None) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Saliency float64[layer, query, key] of every attention weight for the loss
    L = -log(sum of p(id) over the target ids) at the final position, the float32[V]
    next-token distribution of the same forward, and the target ids. ``targets`` is the
    ids, or a function choosing them from the distribution (e.g. the predicted label's)."""
    import torch

    task = task or TaskState()
    model = loaded.model
    info = loaded.info
    if not info.causal:
        raise ExplorerError(f"'{info.name}' is an encoder: it predicts no label, so there is "
                            "no loss to take the saliency of.")
    ids, _, _ = tokenize(loaded, prompt)
    check_prompt(loaded, prompt, len(ids))
    found = attention_modules(model, info.layers)
    if found is None:
        raise AttentionUnavailableError(
            f"Cannot find the attention modules of '{info.name}' to take their gradients.")
    modules, index = found
    weights: list[Any] = []

    def keep(_module: Any, _args: Any, output: Any) -> None:
        value = output[index] if isinstance(output, tuple) and len(output) > index else None
        weights.append(value)

    def leaf(_module: Any, _args: Any, output: Any) -> Any:
        return output.detach().requires_grad_(True)  # a graph even if no parameter needs grad

    handles = [m.register_forward_hook(keep) for m in modules]
    handles.append(model.get_input_embeddings().register_forward_hook(leaf))
    task.progress(0.1, "forward pass with gradients")
    try:
        with _eager(model), torch.enable_grad():
            logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].float()
            if any(w is None or not w.requires_grad for w in weights) or len(weights) != len(modules):
                raise AttentionUnavailableError(
                    f"'{info.name}' did not return attention weights in the autograd graph.")
            log_probs = torch.log_softmax(logits, dim=-1)
            probs = log_probs.detach().exp().numpy().astype(np.float32)
            chosen = [int(i) for i in (targets(probs) if callable(targets) else targets)]
            loss = -torch.logsumexp(log_probs[chosen], dim=0)
            task.progress(0.5, "gradients of the attention weights")
            grads = torch.autograd.grad(loss, weights)
        saliency = np.stack([(w.detach() * g).sum(dim=1)[0].abs().double().numpy()
                             for w, g in zip(weights, grads, strict=True)])
    finally:
        for handle in handles:
            handle.remove()
    task.progress(1.0, "saliency")
    return saliency, probs, chosen


def label_anchor_flow(loaded: LoadedModel, prompt: BuiltPrompt, template: FewShotTemplate,
                      variants: Sequence[LabelVariants], task: TaskState | None = None
                      ) -> AnchorFlow:
    """S_wp, S_pq and S_ww per layer for ``prompt`` (``core.icl.anchor_flow``), with L
    the loss of the label the model predicts (argmax of the summed label probabilities).

    Label word position: the token holding the first character of each demonstration's
    label (read back with the template); demonstrations that do not follow the format
    have none. The final position is the prompt's last token."""
    ids, _, offsets = tokenize(loaded, prompt.text)
    picked: list[LabelVariants] = []

    def predicted_label(probs: np.ndarray) -> tuple[int, ...]:
        sums = [float(probs[list(v.ids)].sum()) for v in variants]
        picked.append(variants[int(np.argmax(sums))])
        return picked[-1].ids

    saliency, _, _ = attention_saliency(loaded, prompt.text, predicted_label, task)
    chars = []
    for number in range(len(demonstration_segments(prompt))):
        parts = demonstration_parts(prompt, number, template)
        chars.append(parts.label_char if parts else -1)
    positions = [p for p in label_word_positions(offsets, chars) if p >= 0]
    return anchor_flow(saliency, positions, len(ids) - 1, picked[-1].label)

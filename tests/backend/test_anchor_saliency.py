"""Label-anchor flows against an independent autograd computation on tiny models:
transformers' own ``output_attentions`` weights, ``torch.autograd.grad`` and loops over
Wang et al.'s pair sets."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.backend.anchor_saliency import attention_saliency, label_anchor_flow
from explorer.backend.fewshot_runner import label_variants
from explorer.backend.loader import LoadedModel
from explorer.core import fewshot as fs
from explorer.core.errors import ExplorerError
from tests.support.tiny_models import (
    byte_level_tokenizer,
    loaded,
    tiny_gemma3,
    tiny_gpt2,
    tiny_llama,
)

LABELS = ("Positive", "Negative")
POOL = [fs.LabelledExample(f"the dog sat {i}", LABELS[i % 2]) for i in range(6)]


@pytest.fixture(scope="module", params=["gpt2", "llama", "gemma3"])
def model(request) -> LoadedModel:
    built = {"gpt2": lambda: tiny_gpt2(512), "llama": lambda: tiny_llama(512),
             "gemma3": lambda: tiny_gemma3(max_positions=512)}[request.param]()
    return LoadedModel.from_objects(built, byte_level_tokenizer(), f"tiny-{request.param}")


def reference(model: LoadedModel, text: str, variants) -> tuple[np.ndarray, str]:
    """Saliency [layer, T, T] from output_attentions + autograd.grad, and the predicted label."""
    import torch

    ids = model.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.enable_grad():
        out = model.model(input_ids=ids, output_attentions=True, use_cache=False)
        probs = torch.softmax(out.logits[0, -1].double(), -1)
        sums = torch.stack([probs[list(v.ids)].sum() for v in variants])
        best = int(torch.argmax(sums))
        loss = -torch.log(sums[best])
        grads = torch.autograd.grad(loss, out.attentions)
    saliency = np.stack([(a * g).sum(1)[0].abs().detach().double().numpy()
                         for a, g in zip(out.attentions, grads, strict=True)])
    return saliency, variants[best].label


def pair_means(saliency: np.ndarray, labels_at: list[int], target: int) -> np.ndarray:
    layers, tokens, _ = saliency.shape
    out = np.zeros((3, layers))
    for layer in range(layers):
        groups: list[list[float]] = [[], [], []]
        for i in range(tokens):
            for j in range(i):
                kind = 0 if i in labels_at else 1 if (i == target and j in labels_at) else 2
                groups[kind].append(saliency[layer, i, j])
        out[:, layer] = [np.mean(g) for g in groups]
    return out


def test_flows_equal_an_independent_autograd_computation(model) -> None:
    demos = fs.choose_demonstrations(POOL, 4, 3, LABELS)
    prompt = fs.build_prompt(fs.COURSE_TEMPLATE, demos, "I loved this movie!")
    variants = label_variants(model, LABELS)
    flow = label_anchor_flow(model, prompt, fs.COURSE_TEMPLATE, variants)
    saliency, predicted = reference(model, prompt.text, variants)
    # label words found independently: the token starting at each "Sentiment: <label>"
    encoding = model.tokenizer(prompt.text, return_offsets_mapping=True)
    starts = []
    cursor = 0
    for demo in demos:
        cursor = prompt.text.index("Sentiment: " + demo.label, cursor) + len("Sentiment: ")
        starts.append(next(t for t, (s, e) in enumerate(encoding["offset_mapping"]) if s <= cursor < e))
    target = len(encoding["input_ids"]) - 1
    assert list(flow.label_positions) == starts and flow.target == target
    assert flow.loss_label == predicted
    expected = pair_means(saliency, starts, target)
    np.testing.assert_allclose([flow.s_wp, flow.s_pq, flow.s_ww], expected, rtol=2e-3, atol=1e-12)
    assert flow.s_wp.shape == (model.info.layers,) and np.all(expected[2] > 0)


def test_saliency_of_a_chosen_token_and_no_parameter_gradients() -> None:
    model = loaded("llama")
    target = model.tokenizer.encode("Positive")[0]
    saliency, probs, chosen = attention_saliency(model, "The cat sat on the mat.", [target])
    assert chosen == [target] and probs.shape == (model.info.vocab_size,)
    assert saliency.shape == (3, 8, 8) or saliency.shape[0] == 3
    assert np.allclose(np.triu(saliency[0], 1), 0)  # causal: nothing above the diagonal
    assert all(p.grad is None for p in model.model.parameters())


def test_encoder_has_no_loss() -> None:
    with pytest.raises(ExplorerError, match="encoder"):
        attention_saliency(loaded("bert"), "the cat", [1])

"""The engine's numbers equal plain transformers (eager attention) on tiny models."""

import numpy as np
import pytest
import torch

from explorer.backend.engine import analyze
from tests.support.tiny_models import loaded

PROMPT = "Classify this review: I loved this movie! Sentiment:"


def reference(model_kind: str, prompt: str):
    lm = loaded(model_kind)
    ids = lm.tokenizer(prompt)["input_ids"]
    with torch.no_grad():
        out = lm.model(input_ids=torch.tensor([ids]), output_attentions=True)
    return lm, ids, out


@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert"])
def test_attentions_equal_plain_transformers_to_float16(kind):
    lm, ids, out = reference(kind, PROMPT)
    result = analyze(lm, PROMPT)
    expected = torch.stack([a[0] for a in out.attentions]).numpy()
    assert result.attentions.dtype == np.float16
    assert result.attentions.shape == expected.shape == (
        lm.info.layers, lm.info.heads, len(ids), len(ids))
    np.testing.assert_allclose(result.attentions.astype(np.float32), expected, atol=1e-3)
    assert result.token_ids.tolist() == ids
    rows = result.attentions.astype(np.float32).sum(-1)
    np.testing.assert_allclose(rows, 1.0, atol=3e-3)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_causal_maps_are_zero_above_the_diagonal(kind):
    result = analyze(loaded(kind), PROMPT)
    upper = np.triu(np.ones(result.attentions.shape[-2:], bool), k=1)
    assert np.all(result.attentions[..., upper] == 0)
    lower_mass = np.where(upper, 0, result.attentions.astype(np.float32)).sum(-1)
    np.testing.assert_allclose(lower_mass, 1.0, atol=3e-3)  # every row's weight is on keys <= query


def test_encoder_rows_are_full():
    result = analyze(loaded("bert"), PROMPT)
    upper = np.triu(np.ones(result.attentions.shape[-2:], bool), k=1)
    assert result.attentions[..., upper].min() > 0
    assert result.top_k == 0 and result.last_probs.size == 0
    assert result.offsets[0].tolist() == [-1, -1] and result.offsets[-1].tolist() == [-1, -1]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_topk_logits_and_probs_equal_independent_softmax(kind):
    lm, ids, out = reference(kind, PROMPT)
    result = analyze(lm, PROMPT, top_k=7)
    logits = out.logits[0].double().numpy()
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    order = np.argsort(-logits, axis=-1, kind="stable")[:, :7]
    assert result.topk_ids.shape == (len(ids), 7)
    np.testing.assert_array_equal(result.topk_ids, order)
    np.testing.assert_allclose(result.topk_logits, np.take_along_axis(logits, order, -1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.topk_probs, np.take_along_axis(probs, order, -1), rtol=1e-4, atol=1e-7)
    assert np.all(np.diff(result.topk_probs, axis=1) <= 0)
    np.testing.assert_allclose(result.last_probs, probs[-1], rtol=1e-4, atol=1e-8)
    # the probability of the prompt's own next token, and its rank in the full distribution
    for i in range(len(ids) - 1):
        assert result.actual_next_probs[i] == pytest.approx(probs[i, ids[i + 1]], rel=1e-4)
        assert result.actual_next_ranks[i] == int((probs[i] > probs[i, ids[i + 1]]).sum()) + 1
    assert np.isnan(result.actual_next_probs[-1]) and result.actual_next_ranks[-1] == -1


def test_offsets_point_at_the_token_text():
    lm = loaded("gpt2")
    prompt = "Héllo wörld 🙂 café"
    result = analyze(lm, prompt)
    for start, end in result.offsets:
        assert 0 <= start <= end <= len(prompt)
    # several byte-level tokens of one emoji share that character's span
    covered = {i for s, e in result.offsets for i in range(s, e)}
    assert {i for i, ch in enumerate(prompt) if ch != " "} <= covered
    starts = result.offsets[:, 0]
    assert np.all(np.diff(starts) >= 0)


def test_rotary_positional_is_the_models_own_inv_freq():
    lm = loaded("llama")
    result = analyze(lm, PROMPT)
    assert result.positional_kind == "rotary"
    # the model's own buffer, not the project's formula
    inv_freq = lm.model.model.rotary_emb.inv_freq.detach().double().numpy()
    positions = np.arange(result.num_tokens, dtype=np.float64)
    np.testing.assert_allclose(result.positional, np.outer(positions, inv_freq), rtol=1e-5, atol=1e-6)
    assert result.positional.shape == (result.num_tokens, len(inv_freq))
    head_dim = lm.info.hidden_size // lm.info.heads
    assert lm.info.rope_base == 10000.0 and lm.info.rope_dims == head_dim == 2 * len(inv_freq)
    assert lm.info.kv_heads == 2 and lm.info.group_size == 2


@pytest.mark.parametrize("kind,weight", [("gpt2", "transformer.wpe.weight"),
                                         ("bert", "embeddings.position_embeddings.weight")])
def test_learned_positional_is_the_embedding_rows(kind, weight):
    lm = loaded(kind)
    result = analyze(lm, PROMPT)
    assert result.positional_kind == "learned"
    rows = dict(lm.model.named_parameters())[weight][: result.num_tokens].detach().numpy()
    np.testing.assert_array_equal(result.positional, rows)


def test_cancel_stops_the_forward_within_one_layer():
    from explorer.core.errors import Cancelled
    from explorer.core.progress import TaskState

    lm = loaded("llama")  # 3 layers
    layers = lm.model.model.layers
    ran: list[int] = []  # the index of every layer whose attention actually ran
    for index, layer in enumerate(layers):
        original = layer.self_attn.forward

        def counting(*args, _index=index, _original=original, **kwargs):
            ran.append(_index)
            return _original(*args, **kwargs)

        layer.self_attn.forward = counting
    try:
        # cancel as soon as the first layer has run: a check only at the end would let all 3 run
        task = TaskState(is_cancel_requested=lambda: len(ran) >= 1)
        with pytest.raises(Cancelled):
            analyze(lm, PROMPT, task=task)
    finally:
        for layer in layers:
            del layer.self_attn.forward
    assert ran == [0]

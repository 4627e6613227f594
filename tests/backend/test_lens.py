"""The logit lens equals an independent computation on plain transformers: hooks on the
decoder layers, then the final norm and the unembedding (and Gemma's soft-cap), in float64."""

import numpy as np
import pytest
import torch

from explorer.backend import lens as lens_backend
from explorer.backend.lens import lens_token_probs, logit_lens
from explorer.core.errors import Cancelled, ExplorerError, PromptError
from explorer.core.lens import NoNextTokenError
from explorer.core.progress import TaskState
from tests.support.tiny_models import loaded

PROMPT = "The cat sat on the mat. The dog sat on the log. The cat sat on the"


def parts(kind, model):
    """The decoder layers and final norm, named by hand for each architecture."""
    if kind in ("gpt2", "bloom"):
        return model.transformer.h, model.transformer.ln_f
    return model.model.layers, model.model.norm


def reference(kind, lm, prompt):
    """(ids, per-layer probabilities float64[L, T, V], the model's own probabilities [T, V],
    hidden_states, per-layer residuals) computed without the explorer."""
    model = lm.model
    layers, norm = parts(kind, model)
    ids = lm.tokenizer(prompt)["input_ids"]
    residuals = []
    hooks = [layer.register_forward_hook(
        lambda _m, _a, out: residuals.append((out if torch.is_tensor(out) else out[0])[0].clone()))
        for layer in layers]
    try:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
            cap = getattr(model.config, "final_logit_softcapping", None)
            per_layer = []
            for residual in residuals:
                logits = model.lm_head(norm(residual)).double()
                if cap:
                    logits = torch.tanh(logits / cap) * cap
                per_layer.append(torch.softmax(logits, dim=-1).numpy())
    finally:
        for hook in hooks:
            hook.remove()
    own = torch.softmax(out.logits[0].double(), dim=-1).numpy()
    return ids, np.stack(per_layer), own, out.hidden_states, residuals


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """A few positions per chunk, so chunk boundaries are crossed on every tiny prompt."""
    monkeypatch.setattr(lens_backend, "CHUNK_ELEMENTS", 5 * 300)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gemma3", "bloom"])  # bloom: its own attention
def test_lens_equals_hooks_plus_final_norm_and_unembedding(kind):
    lm = loaded(kind)
    if kind == "bloom":  # its random layers barely move the distribution: make them count
        with torch.no_grad():
            for block in lm.model.transformer.h:
                block.mlp.dense_4h_to_h.weight.mul_(30)
    result = logit_lens(lm, PROMPT, top_k=6)
    ids, probs, own, _, _ = reference(kind, lm, PROMPT)
    layers, num = lm.info.layers, len(ids)
    assert result.token_ids.tolist() == ids
    assert result.lens_ids.shape == (layers, num, 6) and result.lens_ids.dtype == np.int64
    assert result.lens_probs.dtype == np.float32
    assert result.lens_final_probs.shape == result.lens_kl.shape == (layers, num)
    order = np.argsort(-probs, axis=-1, kind="stable")[..., :6]
    np.testing.assert_array_equal(result.lens_ids, order)
    np.testing.assert_allclose(result.lens_probs, np.take_along_axis(probs, order, -1), atol=1e-6)
    best = own.argmax(-1)
    np.testing.assert_array_equal(result.lens_final_ids, best)
    np.testing.assert_allclose(result.lens_final_probs, probs[:, np.arange(num), best], atol=1e-6)
    kl = (own[None] * (np.log(own[None]) - np.log(probs))).sum(-1)
    np.testing.assert_allclose(result.lens_kl, kl, atol=2e-6)
    np.testing.assert_allclose(result.lens_logsumexp.shape, (layers, num))
    # the last layer is the model's own output
    np.testing.assert_allclose(result.lens_probs[-1], np.take_along_axis(own, order[-1], -1), atol=1e-4)
    np.testing.assert_allclose(result.lens_final_probs[-1], own.max(-1), atol=1e-4)
    assert np.all(np.abs(result.lens_kl[-1]) < 1e-4)
    assert result.lens_kl[:-1].mean() > 1e-5  # earlier layers really differ (the test has teeth)
    assert result.pieces(result.lens_ids[0, 0]) == lm.tokenizer.convert_ids_to_tokens(order[0, 0].tolist())


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gemma3"])
def test_last_hidden_state_is_already_normed_and_the_hooks_are_not(kind):
    """Why the lens hooks the layers: transformers' last hidden_states entry is normed."""
    lm = loaded(kind)
    _, _, _, hidden, residuals = reference(kind, lm, PROMPT)
    _, norm = parts(kind, lm.model)
    for layer, residual in enumerate(residuals[:-1]):
        torch.testing.assert_close(hidden[layer + 1][0], residual)
    with torch.no_grad():
        torch.testing.assert_close(hidden[-1][0], norm(residuals[-1]))
        assert not torch.allclose(hidden[-1][0], residuals[-1], atol=1e-3)


def test_gemma_soft_capping_matches_the_model_head():
    """A head scaled up until its logits reach Gemma's cap of 30: the lens must cap as the
    model does (without the cap the last layer would not equal the model's output)."""
    lm = loaded("gemma3")
    with torch.no_grad():
        lm.model.lm_head.weight.mul_(200)  # tied: the (scaled) input embedding grows too
    ids, probs, own, _, residuals = reference("gemma3", lm, PROMPT)
    with torch.no_grad():
        raw = lm.model.lm_head(lm.model.model.norm(residuals[-1])).double()
    assert float(raw.abs().max()) > 60  # far past the cap
    uncapped = torch.softmax(raw, dim=-1).numpy()
    assert np.abs(uncapped - own).max() > 0.05
    result = logit_lens(lm, PROMPT, top_k=4)
    np.testing.assert_allclose(result.lens_final_probs[-1], own.max(-1), atol=1e-4)
    order = np.argsort(-probs, axis=-1, kind="stable")[..., :4]
    np.testing.assert_allclose(result.lens_probs, np.take_along_axis(probs, order, -1), atol=1e-5)


def test_typed_token_probabilities_equal_the_reference():
    lm = loaded("llama")
    result = logit_lens(lm, PROMPT, top_k=3)
    _, probs, _, _, _ = reference("llama", lm, PROMPT)
    rare = int(np.argsort(probs[0, -1])[len(probs[0, -1]) // 2])  # a mid-ranked token
    assert rare not in result.lens_ids[:, -1].ravel()
    np.testing.assert_allclose(lens_token_probs(lm, result, rare), probs[:, :, rare], rtol=1e-4, atol=1e-9)
    with pytest.raises(ExplorerError, match="outside the vocabulary"):
        lens_token_probs(lm, result, 10**6)


def test_single_token_id_accepts_pieces_and_text_and_refuses_more():
    lm = loaded("gpt2")
    the = lm.tokenizer(" the", add_special_tokens=False)["input_ids"]
    assert len(the) == 1
    assert lens_backend.single_token_id(lm, " the") == the[0]
    assert lens_backend.single_token_id(lm, "Ġthe") == the[0]
    with pytest.raises(ExplorerError, match="not one"):
        lens_backend.single_token_id(lm, "Classify this review")


def test_a_head_the_lens_cannot_reproduce_is_refused():
    lm = loaded("llama")

    def doubled(_module, _args, output):
        output["logits"] = output["logits"] * 2
        return output

    lm.model.register_forward_hook(doubled)
    with pytest.raises(ExplorerError, match="cannot reproduce the output head"):
        logit_lens(lm, PROMPT)


def test_encoder_has_no_lens():
    with pytest.raises(NoNextTokenError, match="encoder"):
        logit_lens(loaded("bert"), PROMPT)


def test_empty_prompt_and_memory_limit(monkeypatch):
    lm = loaded("gpt2")
    with pytest.raises(PromptError):
        logit_lens(lm, "")
    monkeypatch.setenv("ATTENTION_EXPLORER_MAX_RUN_BYTES", "1000")
    with pytest.raises(PromptError, match="residual stream"):
        logit_lens(lm, PROMPT)


def test_cancel_stops_the_lens_and_progress_rises():
    lm = loaded("gemma3")
    seen = []
    task = TaskState(report=lambda f, m: seen.append(f), is_cancel_requested=lambda: len(seen) > 12)
    with pytest.raises(Cancelled):
        logit_lens(lm, PROMPT, task=task)
    seen.clear()
    logit_lens(lm, PROMPT, task=TaskState(report=lambda f, m: seen.append(f)))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


def test_the_residual_store_scales_with_layers_not_vocabulary():
    lm = loaded("llama")
    info = lm.info
    small = lens_backend.lens_bytes(lm, 100)
    large = lens_backend.lens_bytes(lm, 1100)
    assert large - small == 1000 * info.hidden_size * 4 * (info.layers + 12)

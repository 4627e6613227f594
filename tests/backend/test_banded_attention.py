"""Sliding-window layers run as sdpa over blocks of queries, each against the keys it sees,
with the same output as sdpa given the whole [T, T] mask.

The kernel tests build their reference mask with the window rule the code uses: they test
the blocking. The rule itself is held to transformers by the Gemma 3 tests (tiny here, the
embedded model in ``test_gemma3.py``)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explorer.backend import qk_capture
from explorer.backend.banded_attention import banded_sdpa, mask_is_window
from explorer.backend.engine import analyze
from explorer.core.attention import LayerSpec
from tests.support.tiny_models import loaded

PROMPT = "The cat sat on the mat. The dog sat on the log. Attention is all you need."


def window_mask(t, spec):
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    visible = (i - j).abs() < spec.sliding_window
    if spec.causal:
        visible &= j <= i
    return visible


def whole_mask_sdpa(query, key, value, spec):
    visible = window_mask(query.shape[2], spec)
    index = torch.tensor(spec.kv_map)
    out = F.scaled_dot_product_attention(query, key[:, index], value[:, index],
                                         attn_mask=visible, scale=spec.scale)
    return out.transpose(1, 2)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window", [1, 5, 17, 80])
@pytest.mark.parametrize("block", [4, 16, 512])
def test_banded_sdpa_equals_sdpa_with_the_whole_mask(causal, window, block):
    torch.manual_seed(window + block)
    t, d = 50, 8
    spec = LayerSpec(scale=0.3, causal=causal, kv_map=(0, 0, 1, 1), sliding_window=window)
    q, k, v = torch.randn(1, 4, t, d), torch.randn(1, 2, t, d), torch.randn(1, 2, t, d)
    expected = whole_mask_sdpa(q, k, v, spec)
    mask = window_mask(t, spec)[None, None]  # the model's own mask, bool or additive
    additive = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    for given in (mask, additive):
        assert mask_is_window(given, spec, block=block)
        got = banded_sdpa(q, k, v, spec, given, block=block)
        assert got.shape == (1, t, 4, d) and got.is_contiguous()
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_a_mask_that_is_not_the_window_in_one_row_is_told():
    spec = LayerSpec(scale=1.0, causal=True, kv_map=(0,), sliding_window=8)
    mask = window_mask(40, spec)[None, None].clone()
    assert mask_is_window(mask, spec, block=16)
    mask[0, 0, 33, 2] = True  # a row far from the rows the recorder rebuilds
    for block in (16, 512):  # outside a block's span, and inside it
        assert not mask_is_window(mask, spec, block=block)
    additive = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    assert not mask_is_window(additive, spec)
    assert mask_is_window(additive.masked_fill(mask & ~window_mask(40, spec), float("-inf")), spec)
    mask[0, 0, 33, 2] = False
    mask[0, 0, 20, 19] = False  # a key of the window hidden
    assert not mask_is_window(mask, spec)
    biased = torch.zeros(mask.shape).masked_fill(~window_mask(40, spec), float("-inf"))
    assert mask_is_window(biased, spec)
    biased[0, 0, 30, 28] = -0.5  # a bias on a visible key
    assert not mask_is_window(biased, spec)


def test_the_recorder_does_not_band_a_layer_whose_mask_is_not_its_window(monkeypatch):
    """The rows the recorder rebuilds agree, a row it does not rebuild sees a far key: the
    whole mask is checked before any block, the layer is not banded and the lazy run is
    refused (it falls back to full capture)."""
    calls = _count_banded(monkeypatch, block=8)
    lm = loaded("gemma3")
    attention = lm.model.model.layers[0].self_attn
    t, d = 40, lm.info.head_dim
    spec_window = attention.sliding_window
    mask = window_mask(t, LayerSpec(1.0, True, (0,), spec_window))[None, None].clone()
    mask[0, 0, 33, 2] = True
    recorder = qk_capture.QueryKeyRecorder(1, 4, 1, d, t)
    q, k, v = torch.randn(1, 4, t, d), torch.randn(1, 1, t, d), torch.randn(1, 1, t, d)
    recorder.attend(attention, q, k, v, mask, scaling=d ** -0.5, sliding_window=spec_window)
    assert recorder.problem and "every row" in recorder.problem and calls == []


def test_banded_sdpa_refuses_a_layer_it_cannot_do():
    q = torch.randn(1, 2, 6, 4)
    for spec in (LayerSpec(1.0, True, (0, 0)), LayerSpec(1.0, True, (0, 0), 3, softcap=5.0)):
        with pytest.raises(ValueError):
            banded_sdpa(q, q[:, :1], q[:, :1], spec, torch.ones(1, 1, 6, 6, dtype=torch.bool))


def _count_banded(monkeypatch, block):
    calls = []

    def counting(query, key, value, spec, mask):
        calls.append(spec.sliding_window)
        return banded_sdpa(query, key, value, spec, mask, block=block)

    monkeypatch.setattr(qk_capture, "banded_sdpa", counting)
    return calls


def test_a_lazy_gemma3_run_bands_its_sliding_layers_and_gives_the_eager_model_output(monkeypatch):
    lm = loaded("gemma3")  # window 8; five sliding layers and a full one
    calls = _count_banded(monkeypatch, block=8)  # 42 tokens: six blocks a layer
    lazy = analyze(lm, PROMPT, top_k=7, attention="lazy")
    assert lazy.num_tokens > 4 * 8
    assert calls == [8] * 5  # the full layer keeps sdpa's causal kernel
    full = analyze(lm, PROMPT, top_k=7, attention="full")  # the eager forward
    np.testing.assert_array_equal(lazy.topk_ids, full.topk_ids)
    np.testing.assert_allclose(lazy.last_probs, full.last_probs, atol=1e-5)
    np.testing.assert_allclose(lazy.topk_probs, full.topk_probs, atol=1e-5)


def test_a_run_that_keeps_no_attention_bands_too_and_models_without_a_window_do_not(
        monkeypatch):
    lm = loaded("gemma3")
    full = analyze(lm, PROMPT, top_k=7, attention="full")
    calls = _count_banded(monkeypatch, block=8)
    none = analyze(lm, PROMPT, top_k=7, attention="none")
    assert calls == [8] * 5 and none.queries is None
    np.testing.assert_array_equal(none.topk_ids, full.topk_ids)
    np.testing.assert_allclose(none.topk_probs, full.topk_probs, atol=1e-5)
    calls.clear()
    analyze(loaded("llama"), PROMPT, attention="lazy")
    analyze(loaded("llama"), PROMPT, attention="none")
    assert calls == []

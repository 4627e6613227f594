"""Integration on the embedded models: the engine equals plain transformers."""

import numpy as np
import pytest
import torch

from explorer.backend import gguf_cache
from explorer.backend.embedded import EMBEDDED_MODELS
from explorer.backend.engine import analyze
from explorer.backend.loader import load_model
from explorer.core.errors import Cancelled
from explorer.core.progress import TaskState

pytestmark = pytest.mark.embedded
PROMPT = "Classify this review:\nI loved this movie!\nSentiment:"


def test_smollm2_shape_and_scheme(smollm2):
    info = smollm2.info
    assert (info.layers, info.heads, info.kv_heads, info.hidden_size) == (30, 9, 3, 576)
    assert info.positional_kind == "rotary" and info.rope_base == 100000.0 and info.rope_dims == 64
    assert info.context_length == 8192 and info.causal and info.dtype == "float32"


def test_smollm2_equals_plain_transformers(smollm2):
    result = analyze(smollm2, PROMPT)
    ids = smollm2.tokenizer(PROMPT)["input_ids"]
    with torch.no_grad():
        out = smollm2.model(input_ids=torch.tensor([ids]), output_attentions=True)
    expected = torch.stack([a[0] for a in out.attentions]).numpy()
    np.testing.assert_allclose(result.attentions.astype(np.float32), expected, atol=1e-3)
    upper = np.triu(np.ones((len(ids), len(ids)), bool), k=1)
    assert np.all(result.attentions[..., upper] == 0)
    probs = torch.softmax(out.logits[0].double(), -1).numpy()
    np.testing.assert_allclose(result.topk_probs, np.take_along_axis(probs, result.topk_ids, -1),
                               rtol=1e-4, atol=1e-7)
    assert result.topk_tokens[-1][0] == "ĠPositive"  # the course example's expected label


def test_minilm_is_a_bidirectional_encoder(minilm):
    result = analyze(minilm, "I loved this movie!")
    assert result.tokens[0] == "[CLS]" and result.tokens[-1] == "[SEP]"
    assert result.attentions.shape == (6, 12, result.num_tokens, result.num_tokens)
    upper = np.triu(np.ones((result.num_tokens,) * 2, bool), k=1)
    future = result.attentions[..., upper].astype(np.float32)
    assert (future > 0).mean() > 0.95  # queries see later keys (a few weights underflow float16)
    assert future.sum() > 0.2 * result.attentions.astype(np.float32).sum() / 2
    assert result.positional_kind == "learned" and result.positional.shape == (result.num_tokens, 384)
    assert not result.has_next_token


def test_gguf_conversion_reports_progress_and_cancels_mid_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTENTION_EXPLORER_CACHE", str(tmp_path))
    seen: list[str] = []

    def cancel_once_converting() -> bool:
        return any(s.startswith("Converting and de-quantizing GGUF tensors") for s in seen)

    task = TaskState(report=lambda f, s: seen.append(s), is_cancel_requested=cancel_once_converting)
    with pytest.raises(Cancelled):
        load_model("smollm2", task)
    converted = [s for s in seen if s.startswith("Converting and de-quantizing")]
    assert converted and converted[-1].endswith("(1/272)")  # stopped after one tensor
    path = EMBEDDED_MODELS["smollm2"].locate()
    assert not gguf_cache.is_complete(gguf_cache.cache_dir_for(path))


def test_second_load_reads_the_cache(smollm2):
    path = EMBEDDED_MODELS["smollm2"].locate()
    cache = gguf_cache.cache_dir_for(path)
    assert gguf_cache.is_complete(cache)
    assert smollm2.info.source == str(cache)
    again = load_model("smollm2")
    assert again.info.source == str(cache)
    a = analyze(again, PROMPT)
    b = analyze(smollm2, PROMPT)
    np.testing.assert_array_equal(a.topk_ids, b.topk_ids)
    np.testing.assert_allclose(a.topk_logits, b.topk_logits, atol=1e-5)


def test_the_cache_equals_transformers_reading_the_gguf_directly(smollm2):
    """Every run, not only the first conversion: the cached safetensors model has the same
    tokenizer, weights and logits as transformers' own ``gguf_file=`` load (~30 s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = EMBEDDED_MODELS["smollm2"].locate()
    assert smollm2.info.source == str(gguf_cache.cache_dir_for(path))  # we test the cache
    direct = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                  attn_implementation="eager", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    ids = tokenizer(PROMPT)["input_ids"]
    assert smollm2.tokenizer(PROMPT)["input_ids"] == ids
    cached, reference = smollm2.model.state_dict(), direct.state_dict()
    assert cached.keys() == reference.keys()
    different = [name for name in reference if not torch.equal(cached[name], reference[name])]
    assert different == []
    with torch.no_grad():
        ours = smollm2.model(input_ids=torch.tensor([ids])).logits
        theirs = direct(input_ids=torch.tensor([ids])).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)

"""Lazy attention: maps rebuilt from recorded queries and keys equal transformers' eager
weights, next-token arrays equal the full run's, files round-trip, bad files are refused."""

import json

import numpy as np
import pytest
import torch

from explorer.backend.engine import analyze
from explorer.backend.qk_capture import QueryKeyRecorder
from explorer.core.attention import head_map
from explorer.core.errors import AttentionDataError, Cancelled
from explorer.core.progress import TaskState
from explorer.core.result_io import load_npz, save_npz
from tests.support.tiny_models import loaded

PROMPT = "The cat sat on the mat. The dog sat on the log. Attention is all you need."


def eager_weights(lm, prompt):
    ids = lm.tokenizer(prompt)["input_ids"]
    with torch.no_grad():
        out = lm.model(input_ids=torch.tensor([ids]), output_attentions=True)
    return np.stack([a[0].numpy() for a in out.attentions])


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gemma3", "bert"])
def test_rebuilt_maps_equal_eager_attention_in_every_layer_and_head(kind):
    lm = loaded(kind)
    prompt = PROMPT[:60] if kind == "gpt2" else PROMPT
    result = analyze(lm, prompt, attention="lazy")
    assert result.attention_mode == "lazy" and result.attentions is None and not result.notes
    expected = eager_weights(lm, prompt)
    rebuilt = np.stack([np.stack([head_map(result, layer, head) for head in range(lm.info.heads)])
                        for layer in range(lm.info.layers)])
    assert rebuilt.shape == expected.shape
    assert np.abs(rebuilt - expected).max() <= 2e-3
    assert result.queries.shape == (lm.info.layers, lm.info.heads, result.num_tokens, lm.info.head_dim)
    assert result.keys.shape[1] == lm.info.kv_heads


def test_gemma3_sliding_layers_are_banded_and_the_full_layer_is_not():
    lm = loaded("gemma3")  # window 8, layer 5 is the full layer
    result = analyze(lm, PROMPT, attention="lazy")
    assert result.num_tokens > 3 * 8  # the prompt is longer than the window
    spec = result.attention_spec.layers
    assert [s.sliding_window for s in spec] == [8, 8, 8, 8, 8, None]
    assert spec[0].scale == pytest.approx(24 ** -0.5) and set(spec[0].kv_map) == {0}
    i, j = np.indices((result.num_tokens, result.num_tokens))
    outside_band = i - j >= 8
    for layer in range(6):
        weights = head_map(result, layer, 2)
        if layer < 5:
            assert np.all(weights[outside_band] == 0)
        else:
            assert weights[outside_band].min() > 0


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gemma3"])
def test_next_token_arrays_of_a_lazy_run_equal_the_full_run(kind):
    lm = loaded(kind)
    prompt = PROMPT[:60] if kind == "gpt2" else PROMPT
    full = analyze(lm, prompt, top_k=7, attention="full")
    for mode in ("lazy", "none"):
        fast = analyze(lm, prompt, top_k=7, attention=mode)
        np.testing.assert_array_equal(fast.topk_ids, full.topk_ids)
        np.testing.assert_allclose(fast.topk_probs, full.topk_probs, atol=1e-4)
        np.testing.assert_allclose(fast.last_probs, full.last_probs, atol=1e-4)
        np.testing.assert_allclose(fast.actual_next_probs[:-1], full.actual_next_probs[:-1], atol=1e-4)
        np.testing.assert_array_equal(fast.actual_next_ranks, full.actual_next_ranks)
    none = analyze(lm, prompt, attention="none")
    assert none.attentions is None and none.queries is None and not none.has_attention


def test_auto_keeps_short_prompts_in_full():
    result = analyze(loaded("llama"), PROMPT)
    assert result.attention_mode == "full" and result.attentions is not None


def test_a_model_that_cannot_be_rebuilt_falls_back_to_full_capture_and_says_so():
    lm = loaded("bloom")  # ALiBi inside its own module: no attention interface
    result = analyze(lm, PROMPT, attention="lazy")
    assert result.attention_mode == "full"
    assert any("captured in full" in note for note in result.notes)
    np.testing.assert_allclose(result.attentions.astype(np.float32), eager_weights(lm, PROMPT), atol=1e-3)


def test_the_recorder_refuses_a_mask_that_carries_a_bias():
    """A float mask with a position bias is not a causal mask: rows differ, so the run is
    reported as not reproducible instead of rebuilding wrong maps."""
    lm = loaded("llama")
    attention = lm.model.model.layers[0].self_attn
    t, d = 6, lm.info.head_dim
    recorder = QueryKeyRecorder(1, 4, 2, d, t)
    q, k, v = torch.randn(1, 4, t, d), torch.randn(1, 2, t, d), torch.randn(1, 2, t, d)
    causal = torch.full((t, t), float("-inf")).triu(1)
    recorder.attend(attention, q, k, v, causal[None, None].clone(), scaling=d ** -0.5)
    assert recorder.problem is None  # a plain causal float mask is reproducible
    recorder = QueryKeyRecorder(1, 4, 2, d, t)
    bias = -0.5 * (torch.arange(t)[:, None] - torch.arange(t)[None, :]).abs().float()
    recorder.attend(attention, q, k, v, (causal + bias)[None, None], scaling=d ** -0.5)
    assert recorder.problem and "differ" in recorder.problem


def test_the_recorder_checks_each_kind_of_layer_once_and_every_new_mask():
    """Layers given the same mask tensor are one kind: checked once. A later layer given
    another mask (here one carrying a bias) is checked, and refused."""
    lm = loaded("llama")
    attention = lm.model.model.layers[0].self_attn
    t, d = 6, lm.info.head_dim
    causal = torch.full((t, t), float("-inf")).triu(1)[None, None]
    recorder = QueryKeyRecorder(3, 4, 2, d, t)
    checked = []
    check = recorder._verify
    recorder._verify = lambda layer, *a: checked.append(layer) or check(layer, *a)
    for _ in range(2):
        recorder.attend(attention, torch.randn(1, 4, t, d), torch.randn(1, 2, t, d),
                        torch.randn(1, 2, t, d), causal, scaling=d ** -0.5)
    assert checked == [0] and recorder.problem is None
    bias = -0.5 * (torch.arange(t)[:, None] - torch.arange(t)[None, :]).abs().float()
    recorder.attend(attention, torch.randn(1, 4, t, d), torch.randn(1, 2, t, d),
                    torch.randn(1, 2, t, d), causal + bias, scaling=d ** -0.5)
    assert checked == [0, 2]
    assert recorder.problem and "layer 2" in recorder.problem


def test_gemma3_checks_its_sliding_and_full_layers_once_each():
    lm = loaded("gemma3")
    layers = lm.model.config.num_hidden_layers
    kinds = []
    check = QueryKeyRecorder._verify

    def counting(self, layer, *args):
        kinds.append(layer)
        return check(self, layer, *args)

    QueryKeyRecorder._verify = counting
    try:
        result = analyze(lm, PROMPT, attention="lazy")
    finally:
        QueryKeyRecorder._verify = check
    windows = [spec.sliding_window for spec in result.attention_spec.layers]
    assert len(set(windows)) == 2 and len(kinds) == 2 and layers > 2
    assert {windows[layer] for layer in kinds} == set(windows)


def test_cancel_stops_the_lazy_forward_within_one_layer():
    lm = loaded("llama")  # 3 layers
    ran = []
    handles = [layer.register_forward_hook(lambda *a, i=i: ran.append(i))
               for i, layer in enumerate(lm.model.model.layers)]
    try:
        with pytest.raises(Cancelled):
            analyze(lm, PROMPT, attention="lazy", task=TaskState(is_cancel_requested=lambda: True))
    finally:
        for handle in handles:
            handle.remove()
    assert ran == []  # the attention of layer 0 raised before its MLP finished
    assert lm.model.config._attn_implementation == "eager"  # restored after the cancel


def test_lazy_file_round_trip_and_notebook_access(tmp_path):
    lm = loaded("llama")
    result = analyze(lm, PROMPT, attention="lazy")
    path = save_npz(result, tmp_path / "run.npz")
    with np.load(path) as data:
        assert "attentions" not in data.files
        assert data["queries"].dtype == np.float16 and data["keys"].dtype == np.float16
        assert data["queries"].shape == result.queries.shape
        spec = json.loads(str(data["attention_spec"]))
        assert set(spec["layers"][0]) >= {"scale", "causal", "sliding_window", "softcap", "kv_map"}
        assert spec["layers"][0]["kv_map"] == [0, 0, 1, 1]
        from_file = head_map(data, 2, 3)  # straight from np.load, no RunResult
    np.testing.assert_allclose(from_file, head_map(result, 2, 3), atol=2e-3)
    back = load_npz(path)
    assert back.attention_mode == "lazy"
    np.testing.assert_array_equal(back.topk_ids, result.topk_ids)
    np.testing.assert_allclose(head_map(back, 1, 1), head_map(result, 1, 1), atol=2e-3)


def test_none_file_has_only_tokens_and_probabilities(tmp_path):
    result = analyze(loaded("llama"), PROMPT, attention="none")
    with np.load(save_npz(result, tmp_path / "run.npz")) as data:
        assert not {"attentions", "queries", "keys", "attention_spec"} & set(data.files)
        assert str(data["attention_mode"]) == "none"
        assert data["topk_probs"].shape[0] == result.num_tokens


@pytest.mark.parametrize("drop", ["queries", "keys", "attention_spec"])
def test_a_lazy_file_missing_an_array_is_refused(tmp_path, drop):
    result = analyze(loaded("llama"), PROMPT, attention="lazy")
    path = save_npz(result, tmp_path / "run.npz")
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files if name != drop}
    broken = tmp_path / "broken.npz"
    np.savez(broken, **arrays)
    with pytest.raises(AttentionDataError, match=drop):
        load_npz(broken)
    with np.load(broken) as data, pytest.raises(AttentionDataError, match=drop):
        head_map(data, 0, 0)


def test_a_lazy_file_with_shapes_that_disagree_is_refused(tmp_path):
    result = analyze(loaded("llama"), PROMPT, attention="lazy")
    with np.load(save_npz(result, tmp_path / "run.npz")) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["keys"] = arrays["keys"][:, :, :-2]
    np.savez(tmp_path / "broken.npz", **arrays)
    with pytest.raises(AttentionDataError, match="disagree"):
        load_npz(tmp_path / "broken.npz")


def test_cli_attention_modes(tmp_path, tiny_gpt2_folder, capsys):
    from explorer.cli import main

    for mode, present, absent in (("lazy", {"queries", "keys", "attention_spec"}, {"attentions"}),
                                  ("none", set(), {"attentions", "queries", "keys"}),
                                  ("full", {"attentions"}, {"queries", "keys"})):
        out = tmp_path / f"{mode}.npz"
        code = main(["analyze", "--model", str(tiny_gpt2_folder), "--prompt", "The cat sat",
                     "--attention", mode, "--out", str(out)])
        assert code == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["attention_mode"] == mode
        with np.load(out) as data:
            assert present <= set(data.files) and not absent & set(data.files)
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses an unknown mode
        main(["analyze", "--model", str(tiny_gpt2_folder), "--prompt", "The cat",
              "--attention", "sparse", "--out", str(tmp_path / "x.npz")])
    assert exit_info.value.code == 2


@pytest.mark.embedded
def test_smollm2_lazy_maps_equal_eager_at_1500_tokens(smollm2):
    from explorer.core.fewshot import shipped

    text = " ".join(shipped("reviews.csv").read_text().split()) * 3
    ids = smollm2.tokenizer(text)["input_ids"][:1500]
    prompt = smollm2.tokenizer.decode(ids)
    full = analyze(smollm2, prompt, attention="full")
    lazy = analyze(smollm2, prompt, attention="lazy")
    assert full.num_tokens == lazy.num_tokens >= 1400 and lazy.attention_mode == "lazy"
    worst = 0.0
    for layer in range(smollm2.info.layers):
        for head in range(smollm2.info.heads):
            diff = np.abs(head_map(lazy, layer, head) - full.attentions[layer, head].astype(np.float32))
            worst = max(worst, float(diff.max()))
    assert worst <= 2e-3
    np.testing.assert_array_equal(lazy.topk_ids, full.topk_ids)
    np.testing.assert_allclose(lazy.topk_probs, full.topk_probs, atol=1e-4)

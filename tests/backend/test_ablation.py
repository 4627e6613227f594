"""Head ablation against independent computations on tiny GPT-2, Llama (GQA) and Gemma 3,
and SmolLM2 as integration.

The reference hooks here are written from scratch: each names the output projection by
its path in that architecture and rewrites the head's slice of its input, then the plain
transformers forward gives the logits. A second reference zeroes the projection's weight
columns instead (no hook at all)."""

import copy

import numpy as np
import pytest
import torch

from explorer.backend import ablation as ablation_backend
from explorer.backend.ablation import ablation_scan, single_token_id
from explorer.backend.engine import analyze
from explorer.core.ablation import Ablation, AblationError
from explorer.core.attention import head_map
from explorer.core.errors import Cancelled
from explorer.core.progress import TaskState
from tests.support import tiny_models

PROMPT = "The cat sat on the mat. The dog sat on the log."
KINDS = ("gpt2", "llama", "gemma3")


def projection_by_path(kind, model, layer):
    """The attention output projection, named by hand per architecture."""
    if kind == "gpt2":
        return model.transformer.h[layer].attn.c_proj
    return model.model.layers[layer].self_attn.o_proj  # llama, gemma3, SmolLM2


@pytest.fixture(scope="module", params=KINDS)
def tiny(request):
    return request.param, tiny_models.loaded(request.param)


def reference_probs(kind, loaded, prompt, heads, mode):
    """float64[T, V] softmax of the plain forward with an independent slice hook."""
    model = loaded.model
    dim = loaded.info.head_dim or loaded.info.hidden_size // loaded.info.heads
    handles = []
    for layer in sorted({where for where, _ in heads}):
        mine = [h for where, h in heads if where == layer]

        def hook(_module, args, mine=mine):
            x = args[0].clone()
            for h in mine:
                cols = slice(h * dim, (h + 1) * dim)
                if mode == "zero":
                    x[:, :, cols] = 0.0
                else:
                    x[:, :, cols] = x[:, :, cols].mean(dim=1, keepdim=True)
            return (x,)

        handles.append(projection_by_path(kind, model, layer).register_forward_pre_hook(hook))
    ids = loaded.tokenizer(prompt)["input_ids"]
    try:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0]
    finally:
        for handle in handles:
            handle.remove()
    return torch.softmax(logits.double(), dim=-1).numpy(), ids


def some_heads(loaded):
    info = loaded.info
    return frozenset({(0, 1), (info.layers - 1, info.heads - 1)})


@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize("attention", ["full", "lazy", "none"])
def test_ablation_equals_an_independent_hook(tiny, mode, attention):
    kind, loaded = tiny
    heads = some_heads(loaded)
    result = analyze(loaded, PROMPT, top_k=5, attention=attention,
                     ablation=Ablation(heads, mode))
    expected, ids = reference_probs(kind, loaded, PROMPT, heads, mode)
    plain, _ = reference_probs(kind, loaded, PROMPT, frozenset(), mode)
    np.testing.assert_allclose(result.last_probs, expected[-1], atol=2e-6)
    following = expected[np.arange(len(ids) - 1), ids[1:]]
    np.testing.assert_allclose(result.actual_next_probs[:-1], following, atol=2e-6)
    np.testing.assert_allclose(result.topk_probs[:, 0], expected.max(axis=1), atol=2e-6)
    # the ablation did something the tolerance could not hide
    assert np.abs(expected - plain).max() > 1e-4


def test_zero_ablation_equals_zeroed_weight_columns(tiny):
    """No hook at all: a copy of the model whose projection ignores the head's slice."""
    kind, loaded = tiny
    heads = some_heads(loaded)
    dim = loaded.info.head_dim or loaded.info.hidden_size // loaded.info.heads
    model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        for layer, head in heads:
            weight = projection_by_path(kind, model, layer).weight
            cols = slice(head * dim, (head + 1) * dim)
            if kind == "gpt2":  # Conv1D: weight [in, out]
                weight[cols, :] = 0.0
            else:  # Linear: weight [out, in]
                weight[:, cols] = 0.0
        ids = loaded.tokenizer(PROMPT)["input_ids"]
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    expected = torch.softmax(logits.double(), dim=-1).numpy()
    result = analyze(loaded, PROMPT, attention="none", ablation=Ablation(heads, "zero"))
    np.testing.assert_allclose(result.last_probs, expected, atol=2e-6)


def test_nothing_ablated_is_the_plain_run(tiny):
    kind, loaded = tiny
    plain = analyze(loaded, PROMPT)
    for nothing in (None, Ablation(), Ablation(frozenset(), "mean")):
        same = analyze(loaded, PROMPT, ablation=nothing)
        np.testing.assert_array_equal(same.last_probs, plain.last_probs)
        np.testing.assert_array_equal(same.attentions, plain.attentions)
    expected, _ = reference_probs(kind, loaded, PROMPT, frozenset(), "zero")
    np.testing.assert_allclose(plain.last_probs, expected[-1], atol=2e-6)
    # no hook is left behind
    after = analyze(loaded, PROMPT, ablation=Ablation(some_heads(loaded)))
    assert np.abs(after.last_probs - plain.last_probs).max() > 1e-6
    np.testing.assert_array_equal(analyze(loaded, PROMPT).last_probs, plain.last_probs)


@pytest.mark.parametrize("attention", ["full", "lazy"])
def test_later_layers_attend_differently_and_the_ablated_layer_does_not(tiny, attention):
    """The head's output is removed after its own attention: maps of its layer and below
    stay, maps of the layers above change (every panel shows the ablated model)."""
    _, loaded = tiny
    plain = analyze(loaded, PROMPT, attention=attention)
    ablated = analyze(loaded, PROMPT, attention=attention,
                      ablation=Ablation(frozenset({(0, 0), (0, 2)})))
    last = len(plain.tokens) - 1
    np.testing.assert_allclose(head_map(ablated, 0, 1), head_map(plain, 0, 1), atol=1e-6)
    moved = max(float(np.abs(head_map(ablated, 1, h, rows=[last])
                             - head_map(plain, 1, h, rows=[last])).max())
                for h in range(loaded.info.heads))
    assert moved > 1e-4


def test_encoder_heads_can_be_ablated_too():
    loaded = tiny_models.loaded("bert")
    plain = analyze(loaded, "the cat sat on the mat")
    ablated = analyze(loaded, "the cat sat on the mat", ablation=Ablation(frozenset({(0, 1)})))
    np.testing.assert_array_equal(head_map(ablated, 0, 0), head_map(plain, 0, 0))
    assert np.abs(head_map(ablated, 1, 0) - head_map(plain, 1, 0)).max() > 1e-4


def test_unknown_head_is_refused_before_running(tiny):
    _, loaded = tiny
    layers = loaded.info.layers
    with pytest.raises(AblationError, match=rf"Head {layers}\.1 does not exist"):
        analyze(loaded, PROMPT, ablation=Ablation(frozenset({(layers, 1)})))


def single_logprob(loaded, position, target, heads, mode):
    result = analyze(loaded, PROMPT, attention="none", ablation=Ablation(heads, mode))
    if position == result.num_tokens - 1:
        return float(np.log(np.float64(result.last_probs[target])))
    assert int(result.token_ids[position + 1]) == target
    return float(np.log(np.float64(result.actual_next_probs[position])))


@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize("position", [None, 6])
def test_each_scan_entry_equals_the_single_ablation_run(tiny, mode, position):
    _, loaded = tiny
    scan = ablation_scan(loaded, PROMPT, position=position, mode=mode)
    info = loaded.info
    assert scan.delta_logprob.shape == (info.layers, info.heads)
    assert scan.delta_logprob.dtype == np.float32 and not scan.notes
    pos = scan.position
    base = single_logprob(loaded, pos, scan.target_id, frozenset(), mode)
    assert scan.base_logprob == pytest.approx(base, abs=1e-5)
    expected = np.array([[single_logprob(loaded, pos, scan.target_id, {(layer, h)}, mode) - base
                          for h in range(info.heads)] for layer in range(info.layers)])
    np.testing.assert_allclose(scan.delta_logprob, expected, atol=1e-5)
    assert np.abs(expected).max() > 1e-3  # heads matter enough for the tolerance to bite


def test_scan_targets_default_to_the_next_token_or_the_top1(tiny):
    _, loaded = tiny
    plain = analyze(loaded, PROMPT)
    middle = ablation_scan(loaded, PROMPT, position=4)
    assert middle.target_id == int(plain.token_ids[5])
    end = ablation_scan(loaded, PROMPT)
    assert end.position == plain.num_tokens - 1
    assert end.target_id == int(np.argmax(plain.last_probs))
    chosen = ablation_scan(loaded, PROMPT, target_id=7)
    assert chosen.target_id == 7
    assert chosen.base_logprob == pytest.approx(np.log(np.float64(plain.last_probs[7])), abs=1e-5)


def test_fast_scan_equals_the_naive_scan(tiny):
    _, loaded = tiny
    fast = ablation_scan(loaded, PROMPT, position=8, mode="mean")
    naive = ablation_scan(loaded, PROMPT, position=8, mode="mean", method="naive")
    np.testing.assert_allclose(fast.delta_logprob, naive.delta_logprob, atol=1e-6)


def test_a_restart_that_does_not_reproduce_the_model_falls_back_to_the_naive_scan(monkeypatch):
    loaded = tiny_models.loaded("llama")
    expected = ablation_scan(loaded, PROMPT)
    monkeypatch.setattr(ablation_backend, "_final_norm", lambda model: None)  # skips the norm
    scan = ablation_scan(loaded, PROMPT)
    assert scan.notes and "did not reproduce" in scan.notes[0]
    np.testing.assert_allclose(scan.delta_logprob, expected.delta_logprob, atol=1e-6)


def test_scan_reports_progress_and_stops_on_cancel():
    loaded = tiny_models.loaded("gemma3")
    seen = []
    ablation_scan(loaded, PROMPT, task=TaskState(report=lambda f, m: seen.append(f)))
    assert seen[-1] == 1.0 and seen == sorted(seen) and len(seen) > loaded.info.layers
    checks = {"n": 0}

    def cancel_later():
        checks["n"] += 1
        return checks["n"] > 10

    with pytest.raises(Cancelled):
        ablation_scan(loaded, PROMPT, task=TaskState(is_cancel_requested=cancel_later))
    plain = analyze(loaded, PROMPT)  # the model is left as it was (no hook, same attention)
    np.testing.assert_array_equal(plain.last_probs, analyze(loaded, PROMPT).last_probs)
    assert loaded.model.config._attn_implementation == "eager"


def test_scan_refuses_encoders_and_bad_positions():
    with pytest.raises(AblationError, match="encoder"):
        ablation_scan(tiny_models.loaded("bert"), "the cat")
    with pytest.raises(AblationError, match="outside the prompt"):
        ablation_scan(tiny_models.loaded("gpt2"), PROMPT, position=99)


def test_target_must_be_one_token():
    loaded = tiny_models.loaded("gpt2")
    some_id = loaded.tokenizer(PROMPT)["input_ids"][1]
    assert single_token_id(loaded, loaded.tokenizer.decode([some_id])) == some_id
    with pytest.raises(AblationError, match="not one"):
        single_token_id(loaded, " naïve café")
    with pytest.raises(AblationError, match="empty"):
        single_token_id(loaded, "")


@pytest.mark.embedded
def test_smollm2_ablation_and_scan(smollm2):
    prompt = "The capital of France is Paris. The capital of Italy is"
    heads = frozenset({(3, 2), (12, 5)})
    result = analyze(smollm2, prompt, attention="none", ablation=Ablation(heads))
    expected, _ = reference_probs("llama", smollm2, prompt, heads, "zero")
    np.testing.assert_allclose(result.last_probs, expected[-1], atol=1e-5)
    scan = ablation_scan(smollm2, prompt)
    assert scan.delta_logprob.shape == (30, 9)
    base = float(np.log(np.float64(analyze(smollm2, prompt, attention="none")
                                   .last_probs[scan.target_id])))
    for layer, head, delta in scan.strongest(3) + [(29, 8, float(scan.delta_logprob[29, 8]))]:
        single = analyze(smollm2, prompt, attention="none",
                         ablation=Ablation(frozenset({(layer, head)})))
        ablated = float(np.log(np.float64(single.last_probs[scan.target_id])))
        assert delta == pytest.approx(ablated - base, abs=2e-4)
    assert scan.strongest(1)[0][2] < -0.05  # some head matters for the answer


def test_shift_gives_the_plain_run_and_kl_after_every_token(tiny):
    kind, loaded = tiny
    heads = some_heads(loaded)
    shift = ablation_backend.ablation_shift(loaded, PROMPT, Ablation(heads, "zero"), top_k=5)
    plain, _ = reference_probs(kind, loaded, PROMPT, frozenset(), "zero")
    ablated, _ = reference_probs(kind, loaded, PROMPT, heads, "zero")
    np.testing.assert_allclose(shift.base.last_probs, plain[-1], atol=2e-6)
    expected = torch.nn.functional.kl_div(torch.tensor(np.log(ablated)), torch.tensor(plain),
                                          reduction="none").sum(dim=-1).numpy()
    assert expected.max() > 1e-5
    np.testing.assert_allclose(shift.kl, expected, rtol=1e-3, atol=1e-8)
    last = shift.base.num_tokens - 1
    top = int(np.argmax(plain[-1]))
    assert shift.base_prob(last, top) == pytest.approx(plain[-1, top], abs=2e-6)
    next_id = int(shift.base.token_ids[3])
    assert shift.base_prob(2, next_id) == pytest.approx(plain[2, next_id], abs=2e-6)
    rare = int(np.argmin(plain[2]))
    assert shift.base_prob(2, rare) is None

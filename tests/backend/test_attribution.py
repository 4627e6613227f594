"""Attribution on tiny models, each number against an independent torch / numpy computation."""

import json

import numpy as np
import pytest
import torch

from explorer.backend.attribution import attribute
from explorer.backend.engine import analyze
from explorer.backend.loader import LoadedModel
from explorer.cli import main
from explorer.core.attribution import AttributionError
from explorer.core.errors import Cancelled
from explorer.core.progress import TaskState
from tests.core.test_rollout import full_rollout
from tests.support import tiny_models

PROMPT = "The cat sat on the mat. The dog"


@pytest.fixture(scope="module")
def gpt2():
    return tiny_models.loaded("gpt2")


@pytest.fixture(scope="module")
def llama():
    return tiny_models.loaded("llama")


def token_ids(loaded, prompt=PROMPT):
    return loaded.tokenizer(prompt)["input_ids"]


def independent_log_prob(loaded, ids, position, target, embeds=None):
    """log p(target | ids[:position + 1]) from the full-length plain model (later tokens
    included: a causal model must ignore them)."""
    with torch.no_grad():
        if embeds is None:
            logits = loaded.model(input_ids=torch.tensor([ids])).logits
        else:
            logits = loaded.model(inputs_embeds=embeds[None]).logits
    return float(logits[0, position].log_softmax(-1)[target])


def independent_grad_x_input(loaded, ids, position, target):
    """Σ_d x_jd ∂f/∂x_jd with plain autograd over every token of the prompt."""
    x = loaded.model.get_input_embeddings()(torch.tensor([ids])).detach().requires_grad_(True)
    f = loaded.model(inputs_embeds=x).logits[0, position].log_softmax(-1)[target]
    (grad,) = torch.autograd.grad(f, x)
    return (x * grad).sum(-1)[0].detach().numpy()


def no_norm_gpt2(embedding_scale=20.0, weight_scale=3.0):
    """GPT-2 with every layer norm replaced by Identity (a smooth path from the baseline),
    weights scaled up so the path is clearly curved (1-step IG misses by > 1%)."""
    model = tiny_models.tiny_gpt2()
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.mul_(embedding_scale if "wte" in name else weight_scale)
    for block in model.transformer.h:
        block.ln_1 = torch.nn.Identity()
        block.ln_2 = torch.nn.Identity()
    model.transformer.ln_f = torch.nn.Identity()
    return LoadedModel.from_objects(model, tiny_models.byte_level_tokenizer(), "tiny-gpt2-no-norm")


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_grad_x_input_equals_plain_autograd(kind, request):
    loaded = request.getfixturevalue(kind)
    ids = token_ids(loaded)
    position = len(ids) - 4
    record = attribute(loaded, PROMPT, position=position, methods=["grad_x_input"],
                       faithfulness=False)
    target = record.target.id
    expected = independent_grad_x_input(loaded, ids, position, target)
    scores = record.scores["grad_x_input"]
    assert np.abs(expected[:position + 1]).max() > 1e-4  # not a trivially zero comparison
    np.testing.assert_allclose(scores[:position + 1], expected[:position + 1], rtol=1e-4, atol=1e-7)
    assert not scores[position + 1:].any() and np.abs(expected[position + 1:]).max() == 0.0
    assert record.target.prob == pytest.approx(np.exp(independent_log_prob(loaded, ids, position, target)),
                                               rel=1e-5)


def test_default_target_is_the_top_1_and_a_typed_target_is_used(gpt2):
    ids = token_ids(gpt2)
    with torch.no_grad():
        logits = gpt2.model(input_ids=torch.tensor([ids])).logits[0, -1]
    record = attribute(gpt2, PROMPT, methods=["grad_x_input"], faithfulness=False)
    assert record.position == len(ids) - 1
    assert record.target.id == int(logits.argmax())
    typed = attribute(gpt2, PROMPT, target=" sat", methods=["grad_x_input"], faithfulness=False)
    mat = gpt2.tokenizer.encode(" sat")
    assert len(mat) == 1 and typed.target.id == mat[0] and typed.target.token == "Ġsat"
    assert typed.target.prob == pytest.approx(float(logits.softmax(-1)[mat[0]]), rel=1e-5)
    by_piece = attribute(gpt2, PROMPT, target="Ġsat", methods=["grad_x_input"], faithfulness=False)
    assert by_piece.target.id == mat[0]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_integrated_gradients_delta_and_f_x(kind, request):
    loaded = request.getfixturevalue(kind)
    ids = token_ids(loaded)
    position = len(ids) - 2
    record = attribute(loaded, PROMPT, position=position, methods=["integrated_gradients"],
                       steps=8, faithfulness=False)
    ig, target = record.ig, record.target.id
    scores = record.scores["integrated_gradients"].astype(np.float64)
    assert (ig.steps, ig.baseline) == (8, "zero")
    assert ig.delta == pytest.approx(scores.sum() - (ig.f_x - ig.f_baseline), abs=1e-6)
    assert ig.f_x == pytest.approx(independent_log_prob(loaded, ids, position, target), abs=1e-5)
    zeros = torch.zeros(len(ids), loaded.model.get_input_embeddings().embedding_dim)
    assert ig.f_baseline == pytest.approx(
        independent_log_prob(loaded, ids, position, target, embeds=zeros), abs=1e-5)


def test_integrated_gradients_equals_an_unbatched_midpoint_sum(llama):
    """The batched IG against a plain loop over α = (i + ½)/N, one forward each."""
    ids = token_ids(llama)[:9]
    prompt = llama.tokenizer.decode(ids)
    assert token_ids(llama, prompt) == ids
    steps = 6
    record = attribute(llama, prompt, methods=["integrated_gradients"], steps=steps,
                       baseline="eos", faithfulness=False, gradient_batch_tokens=20)
    embed = llama.model.get_input_embeddings()
    x = embed(torch.tensor(ids)).detach()
    b = embed(torch.tensor([llama.tokenizer.eos_token_id] * len(ids))).detach()
    total = torch.zeros_like(x)
    for i in range(steps):
        point = (b + (i + 0.5) / steps * (x - b)).requires_grad_(True)
        f = llama.model(inputs_embeds=point[None]).logits[0, -1].log_softmax(-1)[record.target.id]
        total += torch.autograd.grad(f, point)[0]
    expected = ((x - b) * total / steps).sum(-1).numpy()
    np.testing.assert_allclose(record.scores["integrated_gradients"], expected, rtol=1e-4, atol=1e-6)
    assert record.ig.baseline == "eos"


def test_completeness_within_one_percent_without_normalisation_layers():
    loaded = no_norm_gpt2()
    one = attribute(loaded, PROMPT, methods=["integrated_gradients"], steps=1, faithfulness=False)
    many = attribute(loaded, PROMPT, methods=["integrated_gradients"], steps=64, faithfulness=False)
    change = many.ig.f_x - many.ig.f_baseline
    assert abs(change) > 1.0  # f moves by more than a nat along the path
    assert one.ig.relative_gap > 0.01  # the path is curved: one step is not enough
    assert abs(many.ig.delta) <= 0.01 * abs(change)
    assert many.ig.delta == pytest.approx(
        float(many.scores["integrated_gradients"].astype(np.float64).sum()) - change, abs=1e-6)


def test_weights_keep_requiring_gradients(gpt2):
    attribute(gpt2, PROMPT, methods=["grad_x_input"], faithfulness=False)
    assert all(p.requires_grad for p in gpt2.model.parameters())


# --------------------------------------------------------------------------- attention


@pytest.mark.parametrize("mode", ["full", "lazy"])
def test_rollout_and_attention_equal_numpy_from_the_full_arrays(llama, mode):
    full = analyze(llama, PROMPT, attention="full")
    run = analyze(llama, PROMPT, attention=mode)
    position = full.num_tokens - 3
    record = attribute(llama, PROMPT, position=position, methods=["rollout", "attention"],
                       faithfulness=False, run=run)
    attentions = full.attentions
    np.testing.assert_allclose(record.scores["rollout"], full_rollout(attentions)[position],
                               rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(record.scores["attention"],
                               attentions[-1, :, position].astype(np.float32).mean(0), atol=2e-4)


def test_encoder_gets_rollout_only():
    bert = tiny_models.loaded("bert")
    record = attribute(bert, "the cat sat on the mat")
    assert record.methods == ("rollout",) and record.target is None and record.position == 0
    assert record.ig is None and record.faithfulness == {}
    full = analyze(bert, "the cat sat on the mat", attention="full")
    np.testing.assert_allclose(record.scores["rollout"], full_rollout(full.attentions)[0],
                               rtol=1e-3, atol=1e-5)
    assert record.to_json()["aopc"] == {} and record.to_json()["target"] is None
    with pytest.raises(AttributionError, match="encoder"):
        attribute(bert, "the cat", methods=["grad_x_input"])
    with pytest.raises(AttributionError, match="encoder"):
        attribute(bert, "the cat", target="cat")


# --------------------------------------------------------------------------- faithfulness


def test_deletion_curve_starts_at_the_plain_probability(gpt2):
    ids = token_ids(gpt2)
    position = len(ids) - 1
    record = attribute(gpt2, PROMPT, methods=["grad_x_input", "rollout"], steps=4)
    target = record.target.id
    plain = np.exp(independent_log_prob(gpt2, ids, position, target))
    for method in ("grad_x_input", "rollout", "random"):
        curve = record.faithfulness[method]
        assert curve.ks[0] == 0 and curve.ks[-1] == position + 1
        assert curve.deletion[0] == pytest.approx(plain, rel=1e-5)
        assert curve.keep_only[-1] == pytest.approx(plain, rel=1e-5)


def test_deletion_point_equals_an_independent_replaced_forward(llama):
    ids = token_ids(llama)
    record = attribute(llama, PROMPT, methods=["integrated_gradients"], steps=4, baseline="eos")
    curve = record.faithfulness["integrated_gradients"]
    index = 3
    k = int(curve.ks[index])
    top = np.argsort(-record.scores["integrated_gradients"], kind="stable")[:k]
    embed = llama.model.get_input_embeddings()
    x = embed(torch.tensor(ids)).detach()
    replaced = x.clone()
    replaced[torch.tensor(top)] = embed(torch.tensor(llama.tokenizer.eos_token_id)).detach()
    expected = np.exp(independent_log_prob(llama, ids, len(ids) - 1, record.target.id, replaced))
    assert curve.deletion[index] == pytest.approx(expected, rel=1e-4)
    kept = embed(torch.tensor([llama.tokenizer.eos_token_id] * len(ids))).detach().clone()
    kept[torch.tensor(top)] = x[torch.tensor(top)]
    expected_keep = np.exp(independent_log_prob(llama, ids, len(ids) - 1, record.target.id, kept))
    assert curve.keep_only[index] == pytest.approx(expected_keep, rel=1e-4)
    assert record.to_json()["aopc"]["integrated_gradients"]["comprehensiveness"] == pytest.approx(
        float(np.mean(curve.deletion[0] - curve.deletion[1:].astype(np.float64))), rel=1e-6)


def test_random_baseline_is_seeded_and_reproducible(gpt2):
    first = attribute(gpt2, PROMPT, methods=["rollout"], seed=3).faithfulness["random"]
    again = attribute(gpt2, PROMPT, methods=["rollout"], seed=3).faithfulness["random"]
    other = attribute(gpt2, PROMPT, methods=["rollout"], seed=4).faithfulness["random"]
    assert np.array_equal(first.order, again.order)
    assert np.array_equal(first.deletion, again.deletion)
    assert not np.array_equal(first.order, other.order)
    assert np.array_equal(first.order, np.random.default_rng(3).permutation(len(first.order)))


# --------------------------------------------------------------------------- bad input, cancel


@pytest.mark.parametrize("kwargs, message", [
    ({"target": "The cat sat"}, "not one"),
    ({"target": ""}, "empty"),
    ({"target_id": 10**7}, "outside the vocabulary"),
    ({"position": 99}, "outside the prompt"),
    ({"position": -1}, "outside the prompt"),
    ({"steps": 0}, "steps"),
    ({"steps": -2}, "steps"),
    ({"methods": "grad_x_input,shap"}, "Unknown method"),
    ({"baseline": "pad"}, "no pad token"),
])
def test_bad_input_is_refused_with_a_message(gpt2, kwargs, message):
    with pytest.raises(AttributionError, match=message):
        attribute(gpt2, PROMPT, **kwargs)


def test_cancel_stops_the_work(llama):
    calls = []

    def cancel_after_a_few():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        attribute(llama, PROMPT, task=TaskState(is_cancel_requested=cancel_after_a_few))
    assert all(p.requires_grad for p in llama.model.parameters())


# --------------------------------------------------------------------------- command line


def run_cli(capsys, *args):
    code = main(["attribute", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_writes_the_contract_json(tiny_gpt2_folder, tmp_path, capsys):
    out = tmp_path / "r.json"
    curves = tmp_path / "c.csv"
    code, stdout, err = run_cli(capsys, "--model", str(tiny_gpt2_folder), "--prompt", PROMPT,
                                "--position", "5", "--steps", "4", "--out", str(out),
                                "--curves-out", str(curves))
    assert code == 0, err
    data = json.loads(out.read_text(encoding="utf-8"))
    assert list(data) == ["tokens", "position", "target", "scores", "ig", "aopc"]
    assert data["position"] == 5 and len(data["tokens"]) == len(token_ids(tiny_models.loaded("gpt2")))
    assert set(data["target"]) == {"id", "token", "prob"}
    assert list(data["scores"]) == ["grad_x_input", "integrated_gradients", "rollout", "attention"]
    assert all(len(v) == len(data["tokens"]) for v in data["scores"].values())
    assert data["ig"]["steps"] == 4 and data["ig"]["baseline"] == "zero"
    assert data["ig"]["delta"] == pytest.approx(
        sum(data["scores"]["integrated_gradients"]) - (data["ig"]["f_x"] - data["ig"]["f_baseline"]),
        abs=1e-5)
    assert set(data["aopc"]) == {"grad_x_input", "integrated_gradients", "rollout", "attention", "random"}
    assert set(data["aopc"]["random"]) == {"comprehensiveness", "sufficiency"}
    lines = curves.read_text().splitlines()
    assert lines[0] == "method,k,deletion_prob,keep_only_prob" and len(lines) == 1 + 5 * 7
    assert json.loads(stdout)["target"] == data["target"]


@pytest.mark.parametrize("args, message", [
    (["--target", "The cat sat"], "not one"),
    (["--position", "40"], "outside the prompt"),
    (["--steps", "0"], "--steps"),
    (["--steps", "-5"], "--steps"),
    (["--methods", "rollout,lrp"], "Unknown method 'lrp'"),
])
def test_cli_bad_input_exits_2_without_traceback(tiny_gpt2_folder, tmp_path, capsys, args, message):
    code, _, err = run_cli(capsys, "--model", str(tiny_gpt2_folder), "--prompt", PROMPT,
                           "--out", str(tmp_path / "r.json"), *args)
    assert code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


def test_long_inputs_switch_to_sdpa_and_give_the_same_scores(gpt2, monkeypatch):
    import explorer.backend.attribution as attribution

    ids = token_ids(gpt2)
    eager = attribute(gpt2, PROMPT, methods=["grad_x_input"], faithfulness=False)
    seen = []
    original = attribution.gradient_scores

    def spy(model, *args, **kwargs):
        seen.append(model.config._attn_implementation)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(attribution, "SDPA_FROM_TOKENS", 2)
    monkeypatch.setattr(attribution, "gradient_scores", spy)
    switched = attribute(gpt2, PROMPT, methods=["grad_x_input"], faithfulness=False)
    assert seen == ["sdpa"] and gpt2.model.config._attn_implementation == "eager"
    expected = independent_grad_x_input(gpt2, ids, len(ids) - 1, eager.target.id)
    np.testing.assert_allclose(switched.scores["grad_x_input"], expected, rtol=1e-4, atol=1e-7)


def test_gradients_that_do_not_fit_in_memory_are_refused(gpt2, monkeypatch):
    from explorer.backend.attribution import gradient_batch_size
    from explorer.core.attribution import gradient_item_bytes

    info = gpt2.info
    per_item = gradient_item_bytes(info.layers, info.hidden_size, info.heads, 100, eager=True)
    assert per_item == 4 * 100 * info.layers * (16 * info.hidden_size + 2 * info.heads * 100)
    assert gradient_batch_size(info, 100, 34, True, budget=4096, limit=3 * per_item) == 3
    assert gradient_batch_size(info, 100, 34, True, budget=4096, limit=None) >= 1
    with pytest.raises(AttributionError, match="rollout and attention"):
        gradient_batch_size(info, 100, 34, True, limit=per_item - 1)
    monkeypatch.setenv("ATTENTION_EXPLORER_MAX_RUN_BYTES", "1000")
    with pytest.raises(AttributionError, match="need about"):
        attribute(gpt2, PROMPT, methods=["grad_x_input"])

"""Generation on tiny models equals transformers: greedy tokens, filtered probabilities,
captured attention rows; seeds, Stop, continue-from-alternative, the CLI."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer.backend.generation import (
    continue_with_alternative,
    eos_ids,
    generate,
    prepare_prompt,
)
from explorer.core.errors import ExplorerError, PromptError
from explorer.core.progress import TaskState
from explorer.core.sampling import SamplingSettings
from tests.support.tiny_models import loaded

PROMPT = "The cat sat on the mat. The dog"
KINDS = ["llama", "gpt2"]


@pytest.fixture(scope="module", params=KINDS)
def lm(request):
    return loaded(request.param)


def greedy(n=12, **kw):
    return SamplingSettings(max_new_tokens=n, temperature=0.0, **kw)


def hf_greedy(lm, ids, n, **kw):
    with torch.inference_mode():
        out = lm.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n, **kw,
                                eos_token_id=sorted(eos_ids(lm)), pad_token_id=0,
                                attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    return out[0, len(ids):].tolist()


def full_forward(lm, ids):
    with torch.inference_mode():
        return lm.model(input_ids=torch.tensor([list(ids)]), output_attentions=True,
                        use_cache=False)


def test_greedy_equals_transformers_generate(lm):
    result = generate(lm, PROMPT, greedy(20))
    assert result.generated_ids == hf_greedy(lm, result.prompt_ids.tolist(), 20)
    assert result.generated_ids  # something was generated
    assert all(s.prob == 1.0 for s in result.steps)
    assert result.text == lm.tokenizer.decode(result.generated_ids, skip_special_tokens=True)


def test_greedy_with_repetition_penalty_equals_transformers(lm):
    result = generate(lm, PROMPT, greedy(20, repetition_penalty=1.5))
    plain = generate(lm, PROMPT, greedy(20))
    assert result.generated_ids == hf_greedy(lm, result.prompt_ids.tolist(), 20,
                                             repetition_penalty=1.5)
    assert result.generated_ids != plain.generated_ids  # the penalty did something


def test_probabilities_equal_an_independent_filtered_softmax(lm):
    t, k, p = 1.3, 20, 0.8
    settings = SamplingSettings(max_new_tokens=6, temperature=t, top_k=k, top_p=p, seed=3)
    result = generate(lm, PROMPT, settings, top_alternatives=300)
    logits = full_forward(lm, result.token_ids.tolist()).logits[0].double()
    for step in result.steps:
        row = logits[step.position - 1]
        raw = torch.softmax(row, -1)
        q = torch.softmax(row / t, -1)
        q[torch.argsort(q, descending=True)[k:]] = 0  # top-k
        q = q / q.sum()
        sorted_q, order = torch.sort(q, descending=True)
        before = torch.cumsum(sorted_q, 0) - sorted_q
        q[order[before >= p]] = 0  # top-p
        q = q / q.sum()
        assert step.prob == pytest.approx(q[step.token_id].item(), abs=1e-5)
        assert step.raw_prob == pytest.approx(raw[step.token_id].item(), abs=1e-5)
        kept = int((q > 0).sum())
        assert len(step.top_ids) == kept
        np.testing.assert_allclose(step.top_probs, q[np.array(step.top_ids)].numpy(), atol=1e-5)
        assert step.top_probs.sum() == pytest.approx(1.0, abs=1e-5)
        expected_raw = torch.topk(raw, len(step.raw_top_ids))
        assert step.raw_top_ids.tolist() == expected_raw.indices.tolist()
        np.testing.assert_allclose(step.raw_top_probs, expected_raw.values.numpy(), atol=1e-5)
        assert step.raw_rank == int((raw > raw[step.token_id]).sum()) + 1


def test_captured_rows_equal_a_full_forward_and_the_map_is_causal(lm):
    result = generate(lm, PROMPT, greedy(10))
    out = full_forward(lm, result.token_ids.tolist())
    expected = torch.stack([a[0] for a in out.attentions]).numpy()
    full = result.attention_map()
    t = result.num_tokens
    assert full.dtype == np.float16 and full.shape == (lm.info.layers, lm.info.heads, t, t)
    np.testing.assert_allclose(full.astype(np.float32), expected, atol=2e-3)
    upper = np.triu(np.ones((t, t), bool), k=1)
    assert np.all(full[..., upper] == 0)
    np.testing.assert_allclose(full.astype(np.float32).sum(-1), 1.0, atol=3e-3)
    step = result.steps[4]
    np.testing.assert_array_equal(result.attention_row(step.position), step.attention)
    run = result.to_run_result()
    assert run.num_tokens == t and run.token_ids.tolist() == result.token_ids.tolist()
    # the next-token bars of a generated token are the distribution the next one came from
    assert run.topk_ids[step.position].tolist() == result.steps[5].raw_top_ids.tolist()
    assert run.actual_next_probs[step.position] == pytest.approx(result.steps[5].raw_prob)


def test_seed_reproduces_and_different_seeds_differ(lm):
    hot = dict(max_new_tokens=15, temperature=3.0, top_k=0, top_p=1.0)
    first = generate(lm, PROMPT, SamplingSettings(seed=11, **hot))
    again = generate(lm, PROMPT, SamplingSettings(seed=11, **hot))
    other = generate(lm, PROMPT, SamplingSettings(seed=12, **hot))
    assert first.generated_ids == again.generated_ids
    assert [s.prob for s in first.steps] == [s.prob for s in again.steps]
    assert first.generated_ids != other.generated_ids


def test_unseeded_run_records_its_seed(lm):
    hot = dict(max_new_tokens=8, temperature=3.0, top_k=0, top_p=1.0)
    first = generate(lm, PROMPT, SamplingSettings(**hot))
    assert first.settings.seed is not None
    again = generate(lm, PROMPT, first.settings)
    assert again.generated_ids == first.generated_ids


def test_stop_after_three_tokens_leaves_a_consistent_result(lm):
    streamed = []
    state = TaskState(is_cancel_requested=lambda: len(streamed) >= 3)
    result = generate(lm, PROMPT, greedy(20), task=state, on_step=streamed.append)
    assert result.stop_reason == "cancelled"
    assert result.num_generated == 3 and list(result.steps) == streamed
    assert result.generated_ids == hf_greedy(lm, result.prompt_ids.tolist(), 20)[:3]
    p = result.num_prompt_tokens
    for i, step in enumerate(result.steps):
        assert step.index == i and step.position == p + i
        assert step.attention.shape == (lm.info.layers, lm.info.heads, p + i + 1)
        np.testing.assert_allclose(step.attention.astype(np.float32).sum(-1), 1.0, atol=3e-3)
    assert result.attention_map().shape[-1] == p + 3
    run = result.to_run_result()  # inspectable like any analysis run
    assert run.num_tokens == p + 3 and run.last_probs.sum() == pytest.approx(1.0, abs=1e-4)


def test_steps_stream_in_order_before_the_result(lm):
    seen = []
    result = generate(lm, PROMPT, greedy(5),
                      on_step=lambda s: seen.append((s.index, s.token_id)))
    assert seen == [(s.index, s.token_id) for s in result.steps]


def test_continue_with_an_alternative_keeps_the_earlier_text(lm):
    first = generate(lm, PROMPT, greedy(10))
    index = 4
    alternative = int(first.steps[index].raw_top_ids[1])  # the runner-up there
    second = continue_with_alternative(lm, first, index, alternative)
    assert second.generated_ids[:index] == first.generated_ids[:index]
    assert second.generated_ids[index] == alternative
    assert second.steps[index].forced and not second.steps[index + 1].forced
    assert second.steps[index].raw_prob == pytest.approx(
        float(first.steps[index].raw_top_probs[1]), abs=1e-5)
    prefix = first.prompt_ids.tolist() + first.generated_ids[:index] + [alternative]
    rest = hf_greedy(lm, prefix, 10 - index - 1)
    assert second.generated_ids[index + 1:] == rest
    assert second.num_generated <= 10
    out = full_forward(lm, second.token_ids.tolist())
    expected = torch.stack([a[0] for a in out.attentions]).numpy()
    np.testing.assert_allclose(second.attention_map().astype(np.float32), expected, atol=2e-3)


def test_stop_sequence_ends_the_run(lm):
    settings = SamplingSettings(max_new_tokens=12, temperature=1.0, top_k=0, top_p=1.0, seed=1)
    first = generate(lm, PROMPT, settings)
    candidates = []
    for step in first.steps[1:]:
        piece = step.text.replace("\ufffd", "")
        earlier = lm.tokenizer.decode(first.generated_ids[: step.index], skip_special_tokens=True)
        if piece.strip() and piece not in earlier:
            candidates.append((step.index, piece))
    assert candidates, "seed 1 gives printable text on both tiny models"
    index, stop = candidates[0]
    result = generate(lm, PROMPT, replace(settings, stop=("never appears", stop)))
    assert result.stop_reason == "stop_sequence" and result.stop_sequence == stop
    assert result.generated_ids == first.generated_ids[: index + 1]
    assert result.text.endswith(stop)


def test_chat_template_text_is_what_the_model_sees():
    lm = loaded("llama")
    lm.tokenizer.chat_template = (
        "{% for m in messages %}<|endoftext|>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}")
    try:
        prepared = prepare_prompt(lm, "hello", chat=True)
        result = generate(lm, "hello", greedy(3), chat=True)
    finally:
        lm.tokenizer.chat_template = None
    assert prepared.text == "<|endoftext|>user: hello\nassistant:"
    assert result.model_text == prepared.text and result.chat
    assert result.prompt_ids.tolist() == list(prepared.ids)
    assert prepared.ids[0] == lm.tokenizer.convert_tokens_to_ids("<|endoftext|>")


def test_bad_input_is_explained():
    lm = loaded("llama")
    with pytest.raises(PromptError, match="empty"):
        generate(lm, "", greedy())
    with pytest.raises(PromptError, match="context window"):
        generate(lm, PROMPT, greedy(lm.info.context_length))
    with pytest.raises(PromptError, match="chat template"):
        generate(lm, PROMPT, greedy(), chat=True)
    with pytest.raises(ExplorerError):
        generate(lm, PROMPT, SamplingSettings(top_p=0.0))
    with pytest.raises(ExplorerError, match="encoder"):
        generate(loaded("bert"), PROMPT, greedy())


# ---- CLI ------------------------------------------------------------------------


def test_cli_writes_the_json(tiny_gpt2_folder, tmp_path, capsys):
    from explorer.cli import main

    out = tmp_path / "gen.json"
    code = main(["generate", "--model", str(tiny_gpt2_folder), "--prompt", PROMPT,
                 "--max-new-tokens", "5", "--temperature", "0.9", "--top-k", "40",
                 "--top-p", "0.9", "--seed", "7", "--top-alternatives", "3", "--out", str(out)])
    assert code == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert len(data["generated_ids"]) == len(data["steps"]) == 5
    assert data["settings"]["seed"] == 7 and data["settings"]["top_k"] == 40
    for step, token_id in zip(data["steps"], data["generated_ids"], strict=True):
        assert step["id"] == token_id
        assert {"id", "token", "prob", "raw_prob", "top"} <= step.keys()
        assert 0 < step["prob"] <= 1 and 0 < step["raw_prob"] <= 1
        assert 1 <= len(step["top"]) <= 3
        assert all(len(entry) == 3 for entry in step["top"])
    assert isinstance(data["text"], str) and data["model_text"] == PROMPT
    again = tmp_path / "again.json"
    main(["generate", "--model", str(tiny_gpt2_folder), "--prompt", PROMPT,
          "--max-new-tokens", "5", "--temperature", "0.9", "--top-k", "40",
          "--top-p", "0.9", "--seed", "7", "--out", str(again)])
    assert json.loads(again.read_text())["generated_ids"] == data["generated_ids"]


@pytest.mark.parametrize("extra", [["--prompt", ""], ["--prompt", "x", "--top-p", "2"],
                                   ["--prompt", "x", "--max-new-tokens", "0"],
                                   ["--prompt", "x", "--max-new-tokens", "500"],
                                   ["--prompt", "x", "--chat"]])
def test_cli_bad_input_exits_2(tiny_gpt2_folder, tmp_path, capsys, extra):
    from explorer.cli import main

    code = main(["generate", "--model", str(tiny_gpt2_folder), *extra,
                 "--out", str(tmp_path / "x.json")])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "x.json").exists()


# ---- the embedded model -----------------------------------------------------------


@pytest.mark.embedded
def test_smollm2_greedy_equals_transformers_generate():
    from explorer.backend.loader import load_model

    lm = load_model("smollm2")
    result = generate(lm, "The capital of France is", greedy(8))
    assert result.generated_ids == hf_greedy(lm, result.prompt_ids.tolist(), 8)
    chat = generate(lm, "Say hi.", greedy(4), chat=True)
    assert chat.model_text.startswith("<|im_start|>") and "Say hi." in chat.model_text
    assert chat.generated_ids == hf_greedy(lm, chat.prompt_ids.tolist(), 4)

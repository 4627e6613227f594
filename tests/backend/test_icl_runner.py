"""Demonstration effects and order spreads on tiny models, against fresh plain-transformers
runs of prompts written out by hand; the shared-prefix cache; the extra-model cache."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.backend.fewshot_runner import label_variants
from explorer.backend.icl_runner import SharedPrefixRunner, demo_effects, order_spread
from explorer.backend.loader import LoadedModel
from explorer.backend.model_cache import ModelCache, model_bytes
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
POOL = [fs.LabelledExample(f"the cat sat {i}", LABELS[i % 2]) for i in range(6)]
QUERY = "I don't like this chair."


@pytest.fixture(scope="module", params=["gpt2", "llama", "gemma3"])
def model(request) -> LoadedModel:
    built = {"gpt2": lambda: tiny_gpt2(512), "llama": lambda: tiny_llama(512),
             "gemma3": lambda: tiny_gemma3(max_positions=512)}[request.param]()
    return LoadedModel.from_objects(built, byte_level_tokenizer(), f"tiny-{request.param}")


def written(demos: list[tuple[str, str]], query: str = QUERY) -> str:
    """The course prompt written out by hand."""
    return "".join(f"Classify this review:\n{t}\nSentiment: {lab}\n\n" for t, lab in demos) + \
        f"Classify this review:\n{query}\nSentiment:"


def fresh(model: LoadedModel, text: str, variants) -> np.ndarray:
    """Label probabilities from one plain forward of the whole text (no cache)."""
    import torch

    ids = model.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(model.model(input_ids=ids).logits[0, -1].double(), -1).numpy()
    return np.array([probs[list(v.ids)].sum() for v in variants])


def test_effects_equal_fresh_runs_of_reduced_and_flipped_prompts(model) -> None:
    demos = fs.choose_demonstrations(POOL, 4, 1, LABELS)
    prompt = fs.build_prompt(fs.COURSE_TEMPLATE, demos, QUERY)
    pairs = [(d.text, d.label) for d in demos]
    variants = label_variants(model, LABELS)
    effects = demo_effects(model, prompt, fs.COURSE_TEMPLATE, variants)
    np.testing.assert_allclose(effects.base_probs, fresh(model, written(pairs), variants), rtol=2e-4)
    assert [e.index for e in effects.effects] == [0, 1, 2, 3]
    for e, (text, label) in zip(effects.effects, pairs, strict=True):
        assert (e.text, e.label) == (text, label)
        rest = [p for i, p in enumerate(pairs) if i != e.index]
        np.testing.assert_allclose(e.leave_out_probs, fresh(model, written(rest), variants), rtol=2e-4)
        other = "Negative" if label == "Positive" else "Positive"
        swapped = [(t, other if i == e.index else lab) for i, (t, lab) in enumerate(pairs)]
        assert e.flipped_label == other
        np.testing.assert_allclose(e.flipped_probs, fresh(model, written(swapped), variants), rtol=2e-4)
    # the effects are not all the same number: the check above compares different prompts
    assert len({round(float(e.leave_out_probs[0]), 9) for e in effects.effects}) > 1


def test_variants_run_only_the_tokens_after_the_shared_prefix() -> None:
    model = LoadedModel.from_objects(tiny_llama(512), byte_level_tokenizer(), "tiny-llama")
    demos = fs.choose_demonstrations(POOL, 4, 1, LABELS)
    prompt = fs.build_prompt(fs.COURSE_TEMPLATE, demos, QUERY)
    pairs = [(d.text, d.label) for d in demos]
    lengths: list[int] = []
    handle = model.model.register_forward_hook(
        lambda _m, _a, kwargs, _o: lengths.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    try:
        effects = demo_effects(model, prompt, fs.COURSE_TEMPLATE, label_variants(model, LABELS))
    finally:
        handle.remove()

    def ids(text: str) -> list[int]:
        return model.tokenizer(text)["input_ids"]

    base = ids(prompt.text)
    assert lengths[0] == len(base) and len(lengths) == 1 + 2 * 4
    for number in range(4):
        other = "Negative" if pairs[number][1] == "Positive" else "Positive"
        variants = (written([p for i, p in enumerate(pairs) if i != number]),
                    written([(t, other if i == number else lab) for i, (t, lab) in enumerate(pairs)]))
        for run, text in zip(lengths[1 + 2 * number: 3 + 2 * number], variants, strict=True):
            mine = ids(text)
            shared = next(i for i, (a, b) in enumerate(zip(mine, base, strict=False)) if a != b)
            before = len(ids(prompt.text[: prompt.segments[number].start])) if number else 0
            assert run == len(mine) - shared  # only the tokens after the common prefix ran
            assert shared >= before - 1  # everything before the changed demonstration is reused
    assert effects.reused_tokens > 0
    # the naive baseline runs every variant in full and gives the same numbers
    naive = demo_effects(model, prompt, fs.COURSE_TEMPLATE, label_variants(model, LABELS), reuse=False)
    assert naive.reused_tokens == 0
    for a, b in zip(effects.effects, naive.effects, strict=True):
        np.testing.assert_allclose(a.leave_out_probs, b.leave_out_probs, rtol=1e-4)
        np.testing.assert_allclose(a.flipped_probs, b.flipped_probs, rtol=1e-4)


def test_order_spread_equals_fresh_runs_of_each_order(model) -> None:
    demos = fs.choose_demonstrations(POOL, 3, 4, LABELS)
    prompt = fs.build_prompt(fs.COURSE_TEMPLATE, demos, QUERY)
    variants = label_variants(model, LABELS)
    orders = fs.demonstration_orders(3, 4, seed=0)
    spread = order_spread(model, prompt, orders, variants)
    assert spread.orders == orders and spread.probs.shape == (4, 2)
    for order, row in zip(orders, spread.probs, strict=True):
        text = written([(demos[i].text, demos[i].label) for i in order])
        np.testing.assert_allclose(row, fresh(model, text, variants), rtol=2e-4)
    assert len({tuple(np.round(r, 9)) for r in spread.probs}) == 4  # orders really differ


def test_encoder_and_unflippable_labels() -> None:
    with pytest.raises(ExplorerError, match="encoder"):
        SharedPrefixRunner(loaded("bert"), "the cat")
    model = loaded("gpt2")
    text = "Classify this review:\nthe cat\nSentiment: Neutral\n\nClassify this review:\nq\nSentiment:"
    from explorer.core.compare import segment_prompt

    prompt = segment_prompt(text, fs.COURSE_TEMPLATE)
    effects = demo_effects(model, prompt, fs.COURSE_TEMPLATE, label_variants(model, LABELS))
    assert effects.effects[0].label == "Neutral" and effects.effects[0].flipped_probs is None


# --------------------------------------------------------------------------- model cache


def test_model_cache_keeps_one_extra_model_and_counts_its_bytes() -> None:
    loads: list[str] = []

    def load(spec, task):
        loads.append(spec)
        return loaded(spec)

    cache = ModelCache(load, capacity=1)
    gpt2 = cache.get("gpt2")
    assert cache.get("gpt2") is gpt2 and loads == ["gpt2"]
    llama = cache.get("llama")
    assert cache.specs() == ["llama"] and loads == ["gpt2", "llama"]
    memory = cache.memory(main=gpt2)
    assert [(m.name, m.main) for m in memory] == [("tiny-gpt2", True), ("tiny-llama", False)]
    # independent count: every distinct parameter and buffer, float32 = 4 bytes
    import torch

    params = {id(p): p for p in [*llama.model.parameters(), *llama.model.buffers()]}
    expected = sum(p.numel() * p.element_size() for p in params.values())
    assert memory[1].bytes == model_bytes(llama) == expected
    # GPT-2 ties its output head to the input embedding: counted once
    tied = gpt2.model.lm_head.weight.data_ptr() == gpt2.model.transformer.wte.weight.data_ptr()
    assert tied and model_bytes(gpt2) < sum(p.numel() * 4 for p in gpt2.model.state_dict().values()
                                            if p.dtype == torch.float32)
    assert "MB" in memory[0].describe() and "(main)" in memory[0].describe()

"""In-context-learning analyses without a model: prompt variants against prompts built
from scratch, the anchor flows against loops over Wang et al.'s sets, order spreads and
the icl JSON keys."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from explorer.core import fewshot as fs
from explorer.core import icl
from explorer.core.compare import segment_prompt
from explorer.core.errors import ExplorerError

LABELS = ("Positive", "Negative")
POOL = [fs.LabelledExample(f"review number {i}", LABELS[i % 2]) for i in range(8)]
TEMPLATES = [
    fs.COURSE_TEMPLATE,
    fs.FewShotTemplate(instruction="Label the sentiment.", demonstration="Text: {text} => {label}",
                       query="Text: {text} =>", separator="\n"),
    fs.FewShotTemplate(demonstration="[{label}] {text}", query="[{text}", separator=" | "),
]


def by_hand(template: fs.FewShotTemplate, demos, query: str) -> str:
    """The prompt text written out with str.format-free concatenation."""
    head = template.instruction + template.separator if template.instruction else ""
    body = "".join(template.demonstration.replace("{text}", d.text).replace("{label}", d.label)
                   + template.separator for d in demos)
    return head + body + template.query.replace("{text}", query)


@pytest.mark.parametrize("template", TEMPLATES)
def test_variants_equal_prompts_built_from_scratch(template) -> None:
    demos = fs.choose_demonstrations(POOL, 4, 2, LABELS)
    prompt = fs.build_prompt(template, demos, "a query")
    assert prompt.text == by_hand(template, demos, "a query")
    for i in range(4):
        rest = [d for j, d in enumerate(demos) if j != i]
        left = icl.without_demonstration(prompt, i)
        assert left.text == by_hand(template, rest, "a query")
        assert left.segments == fs.build_prompt(template, rest, "a query").segments
        swapped = [fs.LabelledExample(d.text, fs.flip_label(d.label, LABELS)) if j == i else d
                   for j, d in enumerate(demos)]
        flipped = icl.with_demonstration_label(prompt, i, fs.flip_label(demos[i].label, LABELS), template)
        assert flipped.text == by_hand(template, swapped, "a query")
        assert flipped.segments == fs.build_prompt(template, swapped, "a query").segments
        parts = icl.demonstration_parts(prompt, i, template)
        assert (parts.text, parts.label) == (demos[i].text, demos[i].label)
        assert prompt.text[parts.label_char:].startswith(demos[i].label)
    for order in itertools.permutations(range(4)):
        moved = icl.reorder_demonstrations(prompt, order)
        assert moved.text == by_hand(template, [demos[i] for i in order], "a query")
        assert [s.name for s in moved.segments] == [s.name for s in prompt.segments]


def test_variants_of_an_edited_prompt_read_back_with_segment_prompt() -> None:
    text = ("Classify this review:\nGreat!\nSentiment: Positive\n\n"
            "Some note without the format\n\n"
            "Classify this review:\nBad.\nSentiment: Negative\n\n"
            "Classify this review:\nfine\nSentiment:")
    prompt = segment_prompt(text, fs.COURSE_TEMPLATE)
    assert icl.demonstration_parts(prompt, 1, fs.COURSE_TEMPLATE) is None
    with pytest.raises(ExplorerError, match="does not follow"):
        icl.with_demonstration_label(prompt, 1, "Positive", fs.COURSE_TEMPLATE)
    flipped = icl.with_demonstration_label(prompt, 2, "Positive", fs.COURSE_TEMPLATE)
    assert flipped.text == text.replace("Bad.\nSentiment: Negative", "Bad.\nSentiment: Positive")
    assert icl.without_demonstration(prompt, 1).text == text.replace("Some note without the format\n\n", "")
    with pytest.raises(ExplorerError, match="not an order"):
        icl.reorder_demonstrations(prompt, [0, 0, 1])


def test_label_word_positions() -> None:
    offsets = np.array([[-1, -1], [0, 5], [5, 11], [12, 20], [20, 20], [21, 30]])
    assert icl.label_word_positions(offsets, [0, 4, 6, 11, 12, 20, 40, -1]) == [1, 1, 2, 3, 3, 5, -1, -1]


def loops(saliency: np.ndarray, positions: list[int], target: int) -> np.ndarray:
    """S_wp, S_pq, S_ww per layer with explicit loops over the pair sets."""
    layers, tokens, _ = saliency.shape
    out = np.zeros((3, layers))
    for layer in range(layers):
        wp, pq, ww = [], [], []
        for i in range(tokens):
            for j in range(i):
                value = saliency[layer, i, j]
                if i in positions:
                    wp.append(value)
                elif i == target and j in positions:
                    pq.append(value)
                else:
                    ww.append(value)
        out[:, layer] = [np.mean(wp), np.mean(pq), np.mean(ww)]
    return out


def test_anchor_flow_is_the_mean_over_each_set_of_pairs() -> None:
    rng = np.random.default_rng(4)
    saliency = rng.random((3, 12, 12))
    saliency += 10 * np.triu(np.ones((12, 12)))  # diagonal and above never count
    flow = icl.anchor_flow(saliency, [6, 3, 9], 11, "Positive")
    expected = loops(saliency, [3, 6, 9], 11)
    np.testing.assert_allclose([flow.s_wp, flow.s_pq, flow.s_ww], expected, rtol=1e-12)
    assert flow.label_positions == (3, 6, 9) and flow.target == 11
    empty = icl.anchor_flow(saliency, [], 11)
    assert np.isnan(empty.s_wp).all() and np.isnan(empty.s_pq).all()
    np.testing.assert_allclose(empty.s_ww, [saliency[i][np.tril_indices(12, -1)].mean() for i in range(3)])


def test_order_spread_best_worst_and_counts() -> None:
    probs = np.array([[0.2, 0.2], [0.6, 0.1], [0.1, 0.5], [0.3, 0.29]])
    spread = icl.OrderSpread(LABELS, ((0, 1), (1, 0), (0, 1), (1, 0)), probs)
    assert spread.predicted == ["Positive", "Positive", "Negative", "Positive"]
    assert spread.counts() == {"Positive": 3, "Negative": 1}
    assert spread.best_and_worst(0) == (1, 2) and spread.best_and_worst(1) == (2, 1)
    np.testing.assert_allclose(spread.shares[1], [6 / 7, 1 / 7])


def test_icl_json_keys_are_exact() -> None:
    demos = fs.choose_demonstrations(POOL, 2, 0, LABELS)
    prompt = fs.build_prompt(fs.COURSE_TEMPLATE, demos, "q")
    effects = icl.DemoEffects(LABELS, np.array([0.3, 0.1]), (
        icl.DemoEffect(0, demos[0].text, demos[0].label, np.array([0.2, 0.2]), np.array([0.1, 0.4]), "x"),
        icl.DemoEffect(1, demos[1].text, demos[1].label, np.array([0.25, 0.1]), None)))
    flow = icl.AnchorFlow(np.array([1.0, np.nan]), np.array([2.0, 3.0]), np.array([0.5, 0.25]))
    data = icl.IclReport(prompt, LABELS, np.array([0.3, 0.1]), effects, flow).to_json()
    assert list(data) == ["prompt", "label_probs", "demo_effects", "anchor_flow"]
    assert data["prompt"] == prompt.text and data["label_probs"] == {"Positive": 0.3, "Negative": 0.1}
    assert list(data["demo_effects"][0]) == ["index", "text", "label", "leave_out_probs", "flipped_probs"]
    assert data["demo_effects"][0]["flipped_probs"] == {"Positive": 0.1, "Negative": 0.4}
    assert data["demo_effects"][1]["flipped_probs"] is None
    assert data["anchor_flow"] == {"S_wp": [1.0, None], "S_pq": [2.0, 3.0], "S_ww": [0.5, 0.25]}
    np.testing.assert_allclose(effects.delta_leave_out(0), [-0.1, -0.05])
    np.testing.assert_allclose(effects.delta_flipped(1), [0.3, np.nan])

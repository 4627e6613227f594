"""Comparison numbers from hand-made runs: segments of edited prompts, heatmap, differences."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core import compare
from explorer.core import fewshot as fs
from explorer.core.errors import ExplorerError
from explorer.core.types import ModelInfo, RunResult

LABELS = ("Positive", "Negative")
POOL = [fs.LabelledExample(f"review {i}", LABELS[i % 2]) for i in range(8)]
INFO = ModelInfo("fake", "fake", 2, 3, 3, 8, 50, 512, "none", True)


def fake_run(text: str, seed: int = 0, vocab: int = 50) -> RunResult:
    """One 'token' per word-ish chunk: offsets of the regex \\S+\\s* pieces."""
    import re

    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+\s*|\s+", text)]
    n = len(spans)
    rng = np.random.default_rng(seed)
    att = rng.random((2, 3, n, n)).astype(np.float32)
    att /= att.sum(-1, keepdims=True)
    probs = rng.random(vocab).astype(np.float32)
    probs /= probs.sum()
    return RunResult(text, np.arange(n), tuple(f"t{i}" for i in range(n)), np.array(spans), att,
                     np.zeros((n, 1), np.int64), np.zeros((n, 1)), np.zeros((n, 1)),
                     [["x"]] * n, np.zeros((n, 4)), "none", INFO, last_probs=probs)


@pytest.mark.parametrize("instruction", ["", "Label the sentiment."])
def test_segment_prompt_recovers_the_built_segments(instruction: str) -> None:
    template = fs.FewShotTemplate(instruction=instruction)
    for built in compare.builder_prompts(template, POOL, "the query", LABELS, seed=2):
        again = compare.segment_prompt(built.text, template)
        assert again.segments == built.segments


def test_segment_prompt_of_an_edited_prompt() -> None:
    text = "Classify this review:\nnice\nSentiment: Positive\n\nfree text\n\nClassify this review:\nq\nSentiment:"
    segments = compare.segment_prompt(text, fs.COURSE_TEMPLATE).segments
    assert [(s.name, s.label) for s in segments] == [("demo 1", "Positive"), ("demo 2", ""),
                                                     ("query", "")]
    assert segments[-1].end == len(text) and segments[0].start == 0


def test_builder_shots_and_errors() -> None:
    prompts = compare.builder_prompts(fs.COURSE_TEMPLATE, POOL, "q", LABELS, seed=1)
    assert [sum(s.kind == "demonstration" for s in p.segments) for p in prompts] == [0, 1, 2, 4]
    four = [s.label for s in prompts[-1].segments if s.label]
    assert sorted(four) == ["Negative", "Negative", "Positive", "Positive"]
    assert prompts == compare.builder_prompts(fs.COURSE_TEMPLATE, POOL, "q", LABELS, seed=1)
    with pytest.raises(ExplorerError):
        compare.builder_prompts(fs.COURSE_TEMPLATE, POOL, " ", LABELS, seed=1)
    with pytest.raises(ExplorerError):
        compare.builder_prompts(fs.COURSE_TEMPLATE, POOL, "q", LABELS, 1, shots=(0,))


def test_analyse_column_heat_and_labels() -> None:
    built = compare.builder_prompts(fs.COURSE_TEMPLATE, POOL, "the query", LABELS, seed=0)[2]
    run = fake_run(built.text)
    sums = (compare.LabelSum("Positive", (3, 7), ("Positive", "ĠPositive")),
            compare.LabelSum("Negative", (5,), ("Negative",)))
    column = compare.analyse_column(run, built, sums)
    assert column.heat.shape == (2, 3, 3)
    np.testing.assert_allclose(column.heat.sum(-1), 1.0, atol=1e-3)  # segments cover the row (float16)
    owner = [next(i for i, s in enumerate(built.segments) if s.start <= a < s.end)
             for a, _ in run.offsets]
    for seg in range(3):
        keys = [t for t, o in enumerate(owner) if o == seg]
        np.testing.assert_allclose(column.heat[:, :, seg],
                                   run.attentions[:, :, -1, keys].astype(np.float32).sum(-1), rtol=1e-5)
    p = run.last_probs.astype(np.float64)
    np.testing.assert_allclose(column.label_probs, [p[3] + p[7], p[5]])
    assert column.predicted == LABELS[int(p[3] + p[7] < p[5])]
    assert sums[0].describe() == "Positive = 'Positive' + '␣Positive'"
    np.testing.assert_allclose(column.layer_heat(None), column.heat.mean(1))


def test_query_difference_is_b_minus_a_over_query_tokens() -> None:
    a_built, b_built = compare.builder_prompts(fs.COURSE_TEMPLATE, POOL, "the query", LABELS, 0,
                                               shots=(0, 2))
    a = compare.analyse_column(fake_run(a_built.text, 1), a_built)
    b = compare.analyse_column(fake_run(b_built.text, 2), b_built)
    assert len(a.query_positions) == len(b.query_positions) > 0
    qa, qb = a.query_positions, b.query_positions
    diff = compare.query_difference(a, b, 1, 2)
    expected = (b.result.attentions[1, 2].astype(np.float32)[np.ix_(qb, qb)]
                - a.result.attentions[1, 2].astype(np.float32)[np.ix_(qa, qa)])
    np.testing.assert_allclose(diff, expected)
    mean = compare.query_difference(a, b, 0, None)
    assert mean.shape == (len(qa), len(qa))
    assert a.label_probs.size == 0 and a.predicted == ""

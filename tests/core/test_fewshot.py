"""Few-shot prompt building, segments, CSV reading and metrics: pure numpy, no torch."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from explorer.core import fewshot as fs
from explorer.core.errors import ExplorerError

LABELS = ("Positive", "Negative")


def ex(text: str, label: str) -> fs.LabelledExample:
    return fs.LabelledExample(text, label)


POOL = tuple(ex(f"pos {i}", "Positive") for i in range(6)) + tuple(
    ex(f"neg {i}", "Negative") for i in range(6)
)


def test_core_module_does_not_import_torch() -> None:
    code = ("import sys, explorer.core.fewshot; "
            "bad = {'torch', 'transformers', 'PySide6'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)

# --------------------------------------------------------------------------- building


def test_course_prompt_text_and_segments() -> None:
    demos = [ex("I loved this movie!", "Positive")]
    built = fs.build_prompt(fs.COURSE_TEMPLATE, demos, ex("I don't like this chair.", "Negative"))
    assert built.text == (
        "Classify this review:\nI loved this movie!\nSentiment: Positive\n\n"
        "Classify this review:\nI don't like this chair.\nSentiment:"
    )
    assert [s.name for s in built.segments] == ["demo 1", "query"]
    assert built.segments[0].label == "Positive" and built.query_label == "Negative"
    # contiguous cover; the blank line after a demonstration belongs to it
    assert built.segments[0].start == 0 and built.segments[-1].end == len(built.text)
    assert built.segments[0].end == built.segments[1].start
    assert built.segment_text(0).endswith("Positive\n\n")
    assert built.segment_text(1).startswith("Classify")


def test_instruction_segment_and_braces_in_text_stay_literal() -> None:
    template = fs.FewShotTemplate(instruction="Label the mood.", demonstration="{text} => {label}",
                                  query="{text} =>", separator="\n")
    built = fs.build_prompt(template, [ex("a {label} b", "Positive"), ex("c", "Negative")], "q {text}")
    assert built.text == "Label the mood.\na {label} b => Positive\nc => Negative\nq {text} =>"
    assert [s.kind for s in built.segments] == ["instruction", "demonstration", "demonstration", "query"]
    assert [built.segment_text(i) for i in range(4)] == [
        "Label the mood.\n", "a {label} b => Positive\n", "c => Negative\n", "q {text} =>"]


def test_zero_shot_has_only_the_query() -> None:
    built = fs.build_prompt(fs.COURSE_TEMPLATE, [], "Nice.")
    assert [s.name for s in built.segments] == ["query"]
    assert built.text == "Classify this review:\nNice.\nSentiment:"


@pytest.mark.parametrize("demo, query", [("{text}", "{text}"), ("{label}", "{text}"),
                                         ("{text} {label}", "no text"),
                                         ("{text} {label}", "{text} {label}")])
def test_template_validation(demo: str, query: str) -> None:
    with pytest.raises(ExplorerError):
        fs.FewShotTemplate(demonstration=demo, query=query)


# --------------------------------------------------------------------------- template files


def test_shipped_template_is_the_course_template() -> None:
    assert fs.read_template(fs.shipped("course.template")) == fs.COURSE_TEMPLATE


def test_template_text_format_and_json(tmp_path) -> None:
    text = ("comment\n=== instruction ===\nBe brief.\n=== demonstration ===\nQ: {text}\nA: {label}\n"
            "=== query ===\nQ: {text}\nA:\n=== separator ===\n\\n---\\n\n")
    template = fs.parse_template(text)
    assert template == fs.FewShotTemplate("Be brief.", "Q: {text}\nA: {label}", "Q: {text}\nA:",
                                          "\n---\n")
    path = tmp_path / "t.json"
    path.write_text('{"demonstration": "{text}={label}", "query": "{text}="}', encoding="utf-8")
    assert fs.read_template(path) == fs.FewShotTemplate("", "{text}={label}", "{text}=", "\n\n")


@pytest.mark.parametrize("text, needle", [
    ("=== query ===\n{text}\n", "demonstration"),
    ("=== demonstration ===\n{text} {label}\n", "query"),
    ('{"demonstration": 3}', "JSON"),
    ("{not json", "JSON"),
])
def test_template_errors(text: str, needle: str) -> None:
    with pytest.raises(ExplorerError, match=needle):
        fs.parse_template(text)


# --------------------------------------------------------------------------- demonstrations


def test_choice_is_reproducible_mixed_and_nested() -> None:
    for seed in range(5):
        a = fs.choose_demonstrations(POOL, 4, seed, LABELS)
        assert a == fs.choose_demonstrations(POOL, 4, seed, LABELS)
        assert Counter(d.label for d in a) == {"Positive": 2, "Negative": 2}
        three = fs.choose_demonstrations(POOL, 3, seed, LABELS)
        assert set(three) <= set(a)  # adding demonstrations, not swapping them
        assert {d.label for d in fs.choose_demonstrations(POOL, 2, seed, LABELS)} == set(LABELS)
        assert len(set(fs.choose_demonstrations(POOL, 12, seed, LABELS))) == 12
    choices = {fs.choose_demonstrations(POOL, 4, seed, LABELS) for seed in range(10)}
    assert len(choices) > 1  # the seed matters
    assert fs.choose_demonstrations(POOL, 0, 1, LABELS) == ()


def test_choice_last_label_varies_with_seed() -> None:
    last = {fs.choose_demonstrations(POOL, 4, seed, LABELS)[-1].label for seed in range(20)}
    assert last == set(LABELS)


def test_choice_larger_than_pool_is_an_error() -> None:
    with pytest.raises(ExplorerError, match="only 12"):
        fs.choose_demonstrations(POOL, 13, 0, LABELS)


# --------------------------------------------------------------------------- token spans


def test_token_spans_simple_and_special_tokens() -> None:
    # text "ab|cd|ef": segments [0,2) [2,4) [4,6); BOS special token first
    offsets = np.array([[-1, -1], [0, 1], [1, 2], [2, 4], [4, 5], [5, 6]])
    bounds = [(0, 2), (2, 4), (4, 6)]
    assert fs.token_segment_ids(offsets, bounds).tolist() == [-1, 0, 0, 1, 2, 2]
    assert fs.segment_token_spans(offsets, bounds) == [(1, 3), (3, 4), (4, 6)]


def test_token_straddling_a_boundary_belongs_to_its_first_character() -> None:
    # "Sentiment:Pos" where a segment ends after "Sentim" and a token "iment:" crosses it
    offsets = np.array([[0, 4], [4, 10], [10, 13]])
    bounds = [(0, 6), (6, 13)]
    assert fs.token_segment_ids(offsets, bounds).tolist() == [0, 0, 1]
    assert fs.segment_token_spans(offsets, bounds) == [(0, 2), (2, 3)]
    # a segment swallowed entirely by a straddling token gets an empty span where it would be
    bounds3 = [(0, 5), (5, 7), (7, 13)]
    assert fs.segment_token_spans(offsets, bounds3) == [(0, 2), (2, 2), (2, 3)]


def test_trimmed_whitespace_token_counts_from_the_character_before() -> None:
    # byte-level tokenizers with trim_offsets report a lone "Ġ" token as an empty span (s, s)
    # just after the space: "a b" -> "a" (0,1), "Ġ" (2,2), "b" (2,3); boundary after the space
    offsets = np.array([[0, 1], [2, 2], [2, 3]])
    assert fs.token_segment_ids(offsets, [(0, 2), (2, 3)]).tolist() == [0, 0, 1]


def test_spans_feed_segment_sums() -> None:
    from explorer.core.analysis import segment_sums

    offsets = np.array([[0, 2], [2, 4], [4, 6], [6, 8]])
    spans = fs.segment_token_spans(offsets, [(0, 4), (4, 8)])
    row = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    np.testing.assert_allclose(segment_sums(row, spans), [0.3, 0.7], rtol=1e-6)


# --------------------------------------------------------------------------- CSV


def test_shipped_sets_are_balanced_and_disjoint() -> None:
    reviews = fs.read_labelled_csv(fs.shipped("reviews.csv"), LABELS)
    demos = fs.read_labelled_csv(fs.shipped("demos.csv"), LABELS)
    assert len(reviews) >= 60 and len(demos) >= 16
    for rows in (reviews, demos):
        counts = Counter(r.label for r in rows)
        assert counts["Positive"] == counts["Negative"]
    assert not {r.text for r in reviews} & {d.text for d in demos}
    assert len({r.text for r in reviews}) == len(reviews)


def test_csv_reads_quotes_case_and_extra_columns(tmp_path) -> None:
    path = tmp_path / "x.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label"])
        writer.writerow(["1", 'Said "fine",\nthen left', " positive "])
        writer.writerow(["", "", ""])
        writer.writerow(["2", "Awful", "NEGATIVE"])
    rows = fs.read_labelled_csv(path, LABELS)
    assert [(r.text, r.label) for r in rows] == [('Said "fine",\nthen left', "Positive"),
                                                 ("Awful", "Negative")]


@pytest.mark.parametrize("content, needle", [
    ("", "empty"),
    ("   \n", "empty"),
    ("review,sentiment\nok,Positive\n", "no column 'text' or 'label'"),
    ("text\nok\n", "no column 'label'"),
    ("text,label\n", "no rows"),
    ("text,label\nok,Positive\nmeh,Neutral\n", "row 3: unknown label 'Neutral'"),
    ("text,label\n,Positive\n", "row 2: the text is empty"),
])
def test_csv_errors(tmp_path, content: str, needle: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ExplorerError, match=needle):
        fs.read_labelled_csv(path, LABELS)


def test_csv_missing_file(tmp_path) -> None:
    with pytest.raises(ExplorerError, match="Cannot read"):
        fs.read_labelled_csv(tmp_path / "nope.csv", LABELS)


def test_parse_labels_and_shots() -> None:
    assert fs.parse_labels(" Positive, Negative ") == LABELS
    assert fs.parse_shots("4,0,2,2") == (0, 2, 4)
    for bad in ("Positive", "Positive,,Negative", "Yes,yes"):
        with pytest.raises(ExplorerError):
            fs.parse_labels(bad)
    for bad in ("1,x", "-1", ""):
        with pytest.raises(ExplorerError):
            fs.parse_shots(bad)


# --------------------------------------------------------------------------- metrics


def test_summary_metrics_by_hand() -> None:
    # 4 items; raw probabilities over (Positive, Negative), not normalised
    probs = np.array([[0.6, 0.2], [0.3, 0.1], [0.4, 0.3], [0.1, 0.3]])
    truth = ["Positive", "Negative", "Negative", "Negative"]
    prior = fs.content_free_prior(np.array([[0.3, 0.1]]))  # model leans Positive 3:1
    np.testing.assert_allclose(prior, [0.75, 0.25])
    row = fs.summarise(2, LABELS, truth, probs, prior)
    assert row.n == 4 and row.shots == 2
    assert row.accuracy == pytest.approx(2 / 4)  # items 0 and 3 right
    # calibrated: p / prior -> item1 (0.75,0.25)/(0.75,0.25) tie -> Positive (first label);
    # item2 (4/7,3/7)/(.75,.25) -> Negative; item 0 (.75,.25)-> tie -> Positive; item3 Negative
    assert row.calibrated_accuracy == pytest.approx(3 / 4)
    assert row.mean_label_prob == pytest.approx(np.mean([0.75, 0.25, 3 / 7, 0.75]))
    assert row.label_mass == pytest.approx(np.mean([0.8, 0.4, 0.7, 0.4]))
    assert row.prior == pytest.approx((0.75, 0.25))


def test_calibrate_divides_by_prior_and_renormalises() -> None:
    q = fs.calibrate(np.array([[0.2, 0.6]]), np.array([0.2, 0.8]))
    # (0.25, 0.75) / (0.2, 0.8) = (1.25, 0.9375) -> normalised
    np.testing.assert_allclose(q, [[1.25 / 2.1875, 0.9375 / 2.1875]])
    # averaging several content-free inputs normalises each first
    np.testing.assert_allclose(fs.content_free_prior(np.array([[0.1, 0.1], [0.9, 0.0]])),
                               [0.75, 0.25])


def test_summary_without_calibration_is_nan_and_csv_cell_empty(tmp_path) -> None:
    row = fs.summarise(0, LABELS, ["Positive"], np.array([[0.2, 0.1]]))
    assert np.isnan(row.calibrated_accuracy)
    path = tmp_path / "out.csv"
    fs.write_summary_csv(path, [row])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ("shots,n,accuracy,calibrated_accuracy,mean_label_prob,"
                        "label_mode,order,accuracy_ci_low,accuracy_ci_high")
    assert lines[1].split(",")[3] == ""
    assert lines[1].split(",")[5:] == ["gold", "0", "1", "1"]  # one right item: CI [1, 1]


def test_items_csv_columns(tmp_path) -> None:
    item = fs.ItemPrediction(1, 0, "Positive", "Negative", "a,\nb", (0.1, 0.25))
    path = tmp_path / "items.csv"
    fs.write_items_csv(path, LABELS, [item])
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["shots", "index", "label", "predicted", "prompt", "p_Positive", "p_Negative",
                       "label_mode", "order"]
    assert rows[1] == ["1", "0", "Positive", "Negative", "a,\nb", "0.1", "0.25", "gold", "0"]


# --------------------------------------------------------------------------- label noise and orders


def test_flip_and_label_modes() -> None:
    assert fs.flip_label("Positive", LABELS) == "Negative"
    assert fs.flip_label("Negative", LABELS) == "Positive"
    assert [fs.flip_label(x, "abc") for x in "abc"] == ["b", "c", "a"]  # cyclic with 3 labels
    with pytest.raises(ExplorerError, match="not one of"):
        fs.flip_label("Neutral", LABELS)
    assert fs.parse_label_modes("gold") == ("gold",)
    assert fs.parse_label_modes(" Random, gold ,random") == ("random", "gold")
    for bad in ("golden", "", "gold,noise"):
        with pytest.raises(ExplorerError):
            fs.parse_label_modes(bad)


def test_relabel_gold_flipped_and_seeded_random() -> None:
    demos = fs.choose_demonstrations(POOL, 8, 0, LABELS)
    assert fs.relabel(demos, LABELS, "gold", 0) == demos
    flipped = fs.relabel(demos, LABELS, "flipped", 0)
    assert [d.text for d in flipped] == [d.text for d in demos]
    assert all(f.label != d.label for f, d in zip(flipped, demos, strict=True))
    random_a = fs.relabel(demos, LABELS, "random", 5)
    assert random_a == fs.relabel(demos, LABELS, "random", 5)  # reproducible
    assert [d.text for d in random_a] == [d.text for d in demos]
    draws = [tuple(d.label for d in fs.relabel(demos, LABELS, "random", s)) for s in range(40)]
    assert len(set(draws)) > 20  # the labels really vary with the seed
    agree = np.mean([a == d.label for draw in draws for a, d in zip(draw, demos, strict=True)])
    assert 0.35 < agree < 0.65  # independent of the true label: about half stay right


@pytest.mark.parametrize("k, count, expected", [(0, 5, 1), (1, 5, 1), (2, 5, 2), (3, 5, 5),
                                                (3, 6, 6), (3, 9, 6), (4, 5, 5), (6, 30, 30)])
def test_orders_are_distinct_permutations_starting_with_the_identity(k, count, expected) -> None:
    orders = fs.demonstration_orders(k, count, seed=3)
    assert len(orders) == expected == len(set(orders))
    assert orders[0] == tuple(range(k))
    assert all(sorted(o) == list(range(k)) for o in orders)
    assert orders == fs.demonstration_orders(k, count, seed=3)
    if expected == count < math.factorial(k):  # drawn, not enumerated
        assert fs.demonstration_orders(k, count, seed=4) != orders
    with pytest.raises(ExplorerError, match="at least 1"):
        fs.demonstration_orders(k, 0, seed=3)


def test_plan_order_zero_is_the_chosen_order_and_modes_relabel() -> None:
    plan = fs.evaluation_plan(POOL, LABELS, (0, 2, 4), seed=7, orders=3,
                              label_modes=("gold", "flipped"))
    assert [(b.shots, b.label_mode, b.order) for b in plan] == [
        (0, "gold", 0), (0, "flipped", 0),
        (2, "gold", 0), (2, "gold", 1), (2, "flipped", 0), (2, "flipped", 1),
        (4, "gold", 0), (4, "gold", 1), (4, "gold", 2),
        (4, "flipped", 0), (4, "flipped", 1), (4, "flipped", 2)]
    for block in plan:
        chosen = fs.choose_demonstrations(POOL, block.shots, 7, LABELS)
        order = fs.demonstration_orders(block.shots, 3, 7)[block.order]
        assert [d.text for d in block.demos] == [chosen[i].text for i in order]
        truth = {d.text: d.label for d in POOL}
        flips = [d.label != truth[d.text] for d in block.demos]
        assert all(flips) if block.label_mode == "flipped" else not any(flips)
    assert plan[0].key == plan[1].key == ()  # zero-shot prompts do not depend on the mode
    assert plan[-1].describe() == "4-shot, flipped labels, order 3/3"
    assert plan[2].describe() == "2-shot, order 1/2"


# --------------------------------------------------------------------------- bootstrap


def _binomial_quantile(n: int, p: float, q: float) -> float:
    """The q-quantile of Binomial(n, p) / n, exactly (the bootstrap distribution of a mean
    of n right/wrong items with p right)."""
    from math import comb

    total = 0.0
    for k in range(n + 1):
        total += comb(n, k) * p**k * (1 - p) ** (n - k)
        if total >= q - 1e-12:
            return k / n
    return 1.0


@pytest.mark.parametrize("right, n", [(52, 64), (44, 64), (3, 10), (10, 10), (0, 7)])
def test_bootstrap_interval_matches_the_binomial_and_is_seeded(right: int, n: int) -> None:
    correct = np.zeros(n)
    correct[:right] = 1
    np.random.default_rng(1).shuffle(correct)
    low, high = fs.bootstrap_ci(correct, seed=11)
    assert (low, high) == fs.bootstrap_ci(correct, seed=11)
    assert low <= right / n <= high
    # 1,000 resamples: within two grid steps of the exact binomial percentiles
    assert abs(low - _binomial_quantile(n, right / n, 0.025)) <= 2 / n + 1e-9
    assert abs(high - _binomial_quantile(n, right / n, 0.975)) <= 2 / n + 1e-9
    if 0 < right < n:
        assert fs.bootstrap_ci(correct, seed=12) != (low, high) or n < 20


def test_bootstrap_of_orders_resamples_items_with_all_their_orders() -> None:
    # two orders: item i is right in both or in neither -> same interval as one order
    one = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], dtype=float)
    assert fs.bootstrap_ci(np.stack([one, one]), seed=2) == fs.bootstrap_ci(one, seed=2)
    # complementary orders: every item is right exactly once -> no spread at all
    assert fs.bootstrap_ci(np.stack([one, 1 - one]), seed=2) == (0.5, 0.5)
    assert np.isnan(fs.bootstrap_ci(np.zeros(0), seed=2)[0])


def test_summary_rows_carry_mode_order_and_interval() -> None:
    rng = np.random.default_rng(0)
    truth = ["Positive", "Negative"] * 10
    probs = rng.random((3, 20, 2))
    priors = np.array([[0.7, 0.3], [0.5, 0.5], [0.2, 0.8]])
    pooled = fs.summarise_orders(4, LABELS, truth, probs, priors, label_mode="random", seed=5)
    index = np.array([0, 1] * 10)
    right = np.argmax(probs, -1) == index
    assert pooled.order == "all" and pooled.orders == 3 and pooled.label_mode == "random"
    assert pooled.accuracy == pytest.approx(right.mean())
    calibrated = [np.argmax(probs[o] / probs[o].sum(-1, keepdims=True) / priors[o], -1) == index
                  for o in range(3)]
    assert pooled.calibrated_accuracy == pytest.approx(np.mean(calibrated))
    assert (pooled.accuracy_ci_low, pooled.accuracy_ci_high) == fs.bootstrap_ci(right, 5)
    single = fs.summarise(4, LABELS, truth, probs[1], priors[1], label_mode="random", order=1, seed=5)
    assert single.order == "1" and single.accuracy == pytest.approx(right[1].mean())
    assert single.prior == (0.5, 0.5)
    assert single.accuracy_ci_low <= single.accuracy <= single.accuracy_ci_high


def test_summary_csv_keeps_pooled_rows_only_when_some_k_has_several_orders(tmp_path) -> None:
    truth = ["Positive", "Negative"]
    one = np.array([[[0.6, 0.2], [0.1, 0.7]]])  # [order, item, label]
    two = np.array([[[0.6, 0.2], [0.1, 0.7]], [[0.2, 0.6], [0.1, 0.7]]])
    single = [fs.summarise_orders(0, LABELS, truth, one, order="0"),
              fs.summarise_orders(0, LABELS, truth, one)]
    path = tmp_path / "single.csv"
    fs.write_summary_csv(path, single)
    assert [line.split(",")[6] for line in path.read_text().splitlines()[1:]] == ["0"]
    several = [*single, fs.summarise_orders(2, LABELS, truth, two[:1], order="0"),
               fs.summarise_orders(2, LABELS, truth, two[1:], order="1"),
               fs.summarise_orders(2, LABELS, truth, two)]
    fs.write_summary_csv(path, several)
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    assert [(r[0], r[6]) for r in rows] == [("0", "0"), ("0", "all"), ("2", "0"), ("2", "1"), ("2", "all")]
    assert float(rows[-1][2]) == 0.75  # pooled: 3 of the 4 (order, item) pairs right

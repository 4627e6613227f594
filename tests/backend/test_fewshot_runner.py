"""Few-shot evaluation on tiny random models: label probabilities, token spans, cancel, CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from explorer.backend.engine import analyze, tokenize
from explorer.backend.fewshot_runner import (
    PrefixCache,
    evaluate,
    label_probabilities,
    label_variants,
    next_token_probs,
)
from explorer.backend.loader import LoadedModel
from explorer.core import fewshot as fs
from explorer.core.errors import Cancelled, ExplorerError
from explorer.core.progress import TaskState
from tests.support.tiny_models import byte_level_tokenizer, tiny_gpt2, tiny_llama

LABELS = ("Positive", "Negative")


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request) -> LoadedModel:
    built = tiny_gpt2(512) if request.param == "gpt2" else tiny_llama(512)
    return LoadedModel.from_objects(built, byte_level_tokenizer(), f"tiny-{request.param}")


def pool(n: int = 6) -> list[fs.LabelledExample]:
    return [fs.LabelledExample(f"the cat {i}", LABELS[i % 2]) for i in range(n)]


EXAMPLES = [fs.LabelledExample("I loved this movie!", "Positive"),
            fs.LabelledExample("I don't like this chair.", "Negative"),
            fs.LabelledExample("The dog sat on the log.", "Positive")]


# --------------------------------------------------------------------------- label variants


def test_variants_are_first_tokens_of_label_and_spaced_label(model) -> None:
    tok = model.tokenizer
    variants = label_variants(model, ["cat", "dog"])
    for v, word in zip(variants, ["cat", "dog"], strict=True):
        expected = {tok.encode(word)[0], tok.encode(" " + word)[0]}
        assert set(v.ids) == expected and len(expected) == 2
        assert [text for text, _, _ in v.variants] == [word, " " + word]


def test_shared_first_token_is_dropped(model) -> None:
    # this tokenizer has no "ĠPositive": " Positive" and " Negative" both start with "Ġ"
    space = model.tokenizer.encode(" ")[0]
    variants = label_variants(model, LABELS)
    assert all(space not in v.ids for v in variants)
    assert variants[0].ids == (model.tokenizer.encode("Positive")[0],)
    with pytest.raises(ExplorerError, match="no first token of its own"):
        label_variants(model, ["cat", "cats"])


def test_label_probabilities_equal_engine_last_probs_summed(model) -> None:
    prompt = fs.build_prompt(fs.COURSE_TEMPLATE, pool(2), EXAMPLES[0]).text
    variants = label_variants(model, ["cat", "dog"])
    got = label_probabilities(model, prompt, variants)
    last = analyze(model, prompt).last_probs
    expected = [last[list(v.ids)].sum() for v in variants]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)
    assert got[0] != pytest.approx(last[variants[0].ids[0]], rel=1e-3)  # really a sum of two


def test_prefix_cache_gives_the_full_forward(model) -> None:
    built = fs.build_prompt(fs.COURSE_TEMPLATE, pool(3), EXAMPLES[1])
    prefix = PrefixCache(model, built.segments[-1].start)
    cached = next_token_probs(model, built.text, prefix)
    assert prefix.ids  # the cache is in use
    again = next_token_probs(model, built.text, prefix)  # the cache is not consumed
    full = analyze(model, built.text).last_probs
    np.testing.assert_allclose(cached, full, atol=1e-6)
    np.testing.assert_array_equal(cached, again)


def test_evaluate_runs_only_the_query_on_top_of_the_cache(model) -> None:
    lengths: list[int] = []
    handle = model.model.register_forward_hook(
        lambda _m, args, kwargs, _o: lengths.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    try:
        result = evaluate(model, EXAMPLES, pool(4), LABELS, [4], calibrate=False)
    finally:
        handle.remove()
    full = [len(tokenize(model, item.prompt)[0]) for item in result.items]
    prefix = lengths[0]
    assert len(lengths) == 1 + len(EXAMPLES)
    assert lengths[1:] == [n - prefix for n in full]


def test_evaluate_items_match_engine_and_metrics(model) -> None:
    result = evaluate(model, EXAMPLES, pool(6), LABELS, [0, 2], seed=3)
    assert [r.shots for r in result.pooled_rows()] == [0, 2] and len(result.items) == 6
    for item in result.items:
        last = analyze(model, item.prompt).last_probs
        expected = [last[list(v.ids)].sum() for v in result.variants]
        np.testing.assert_allclose(item.label_probs, expected, rtol=1e-5, atol=1e-9)
        assert item.predicted == LABELS[int(np.argmax(item.label_probs))]
    two = [i for i in result.items if i.shots == 2]
    assert two[0].prompt.count("Sentiment: ") == 2
    assert [(r.shots, r.order) for r in result.rows] == [(0, "0"), (0, "all"), (2, "0"), (2, "all")]
    row = result.rows[2]
    assert row.accuracy == pytest.approx(np.mean([i.predicted == i.label for i in two]))
    # calibration prior measured on "N/A" with the same two demonstrations
    cf_prompt = fs.build_prompt(fs.COURSE_TEMPLATE, row.demos, "N/A").text
    assert two[0].prompt.startswith(cf_prompt[: cf_prompt.index("N/A")])
    cf = label_probabilities(model, cf_prompt, result.variants)
    np.testing.assert_allclose(row.prior, cf / cf.sum(), rtol=1e-5)


# --------------------------------------------------------------------------- token spans


MERGING = fs.FewShotTemplate(instruction="Classify th", demonstration="is review: {text} {label}. Classify th",
                             query="is review: {text}", separator="")


def test_segments_map_to_token_spans_across_merged_boundaries(model) -> None:
    built = fs.build_prompt(MERGING, pool(2), "I loved this movie!")
    result = analyze(model, built.text)
    bounds = built.char_bounds
    # the tokenisation really merges across every boundary: "th" + "is" -> one token "Ġthis"
    straddling = [t for t, (s, e) in enumerate(result.offsets.tolist())
                  if any(s < b < e for _, b in bounds[:-1])]
    assert len(straddling) == len(bounds) - 1
    assert all(result.tokens[t] == "Ġthis" for t in straddling)
    ids = fs.token_segment_ids(result.offsets, bounds)
    spans = fs.segment_token_spans(result.offsets, bounds)
    for number, t in enumerate(straddling):  # the merged token counts for the earlier segment
        assert ids[t] == number
        assert spans[number][1] == t + 1 and spans[number + 1][0] == t + 1
    # spans tile the tokens and each one's text lies where its segment is
    assert spans[0][0] == 0 and spans[-1][1] == result.num_tokens
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    for (first, last), (start, end) in zip(spans, bounds, strict=True):
        assert start <= result.offsets[first, 0] < end
        assert start <= result.offsets[last - 1, 0] < end


def test_spans_with_special_tokens_from_a_bert_tokenizer() -> None:
    from tests.support.tiny_models import loaded

    bert = loaded("bert")
    built = fs.build_prompt(fs.COURSE_TEMPLATE, pool(1), "the cat sat")
    _, pieces, offsets = tokenize(bert, built.text)
    ids = fs.token_segment_ids(offsets, built.char_bounds)
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
    assert ids[0] == -1 and ids[-1] == -1 and set(ids[1:-1].tolist()) == {0, 1}


# --------------------------------------------------------------------------- cancel and progress


class CountingForwards:
    def __init__(self, model: LoadedModel) -> None:
        self.calls = 0
        self.handle = model.model.register_forward_hook(self.hook)

    def hook(self, *_) -> None:
        self.calls += 1


@pytest.mark.parametrize("shots, calibrate, forwards", [
    ([0, 1], False, 2),       # the query format's prefix, then one item
    ([2], False, 2),          # the demonstrations' prefix, then one item
    ([2], True, 2),           # the prefix, then the content-free input (one step)
])
def test_cancel_stops_within_one_step(model, shots, calibrate, forwards) -> None:
    reports: list[tuple[float, str]] = []
    task = TaskState(report=lambda f, m: reports.append((f, m)),
                     is_cancel_requested=lambda: len(reports) >= 1)
    counter = CountingForwards(model)
    try:
        with pytest.raises(Cancelled):
            evaluate(model, EXAMPLES, pool(4), LABELS, shots, seed=0, calibrate=calibrate,
                     task=task)
    finally:
        counter.handle.remove()
    assert len(reports) == 1 and counter.calls == forwards


def test_progress_reaches_one_with_a_report_per_query(model) -> None:
    reports: list[float] = []
    evaluate(model, EXAMPLES, pool(4), LABELS, [0, 1], task=TaskState(report=lambda f, m: reports.append(f)))
    assert len(reports) == 2 * (len(EXAMPLES) + 1)
    assert reports == sorted(reports) and reports[-1] == pytest.approx(1.0)


def test_encoder_is_refused() -> None:
    from tests.support.tiny_models import loaded

    with pytest.raises(ExplorerError, match="encoder"):
        evaluate(loaded("bert"), EXAMPLES, pool(2), ["cat", "dog"], [0], calibrate=False)


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tiny_gpt2(512).save_pretrained(folder)
    byte_level_tokenizer().save_pretrained(folder)
    return folder


def write_csv(path, rows, header=("text", "label")):
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path):
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle)), path.read_text(encoding="utf-8").splitlines()[0]


def test_cli_writes_exact_columns(model_folder, tmp_path, capsys) -> None:
    from explorer.cli import main

    examples = write_csv(tmp_path / "ex.csv", [(e.text, e.label) for e in EXAMPLES])
    demos = write_csv(tmp_path / "demos.csv", [(e.text, e.label) for e in pool(4)])
    template = tmp_path / "t.template"
    template.write_text("=== demonstration ===\nReview: {text}\nSentiment: {label}\n"
                        "=== query ===\nReview: {text}\nSentiment:\n", encoding="utf-8")
    out, items = tmp_path / "result.csv", tmp_path / "items.csv"
    code = main(["fewshot", "--model", str(model_folder), "--examples", str(examples),
                 "--demos", str(demos), "--labels", "Positive,Negative", "--shots", "0,1,2",
                 "--template", str(template), "--seed", "7", "--out", str(out),
                 "--items-out", str(items)])
    assert code == 0
    rows, header = read_csv(out)
    assert header == ("shots,n,accuracy,calibrated_accuracy,mean_label_prob,"
                      "label_mode,order,accuracy_ci_low,accuracy_ci_high")
    # one order per k: one row per k, as the first release wrote (no pooled rows)
    assert [(r["shots"], r["order"]) for r in rows] == [("0", "0"), ("1", "0"), ("2", "0")]
    assert {r["n"] for r in rows} == {"3"} and {r["label_mode"] for r in rows} == {"gold"}
    item_rows, item_header = read_csv(items)
    assert item_header == "shots,index,label,predicted,prompt,p_Positive,p_Negative,label_mode,order"
    assert len(item_rows) == 9
    assert all(r["prompt"].startswith("Review: ") for r in item_rows)
    for row in rows:
        assert float(row["accuracy_ci_low"]) <= float(row["accuracy"]) <= float(row["accuracy_ci_high"])
        mine = [r for r in item_rows if r["shots"] == row["shots"]]
        assert [r["index"] for r in mine] == ["0", "1", "2"]
        assert float(row["accuracy"]) == pytest.approx(
            np.mean([r["label"] == r["predicted"] for r in mine]))
        assert 0.0 <= float(row["calibrated_accuracy"]) <= 1.0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "summed over" in printed


@pytest.mark.parametrize("extra, needle", [
    (["--labels", "Good,Bad"], "unknown label 'Positive'"),
    (["--shots", "0,9"], "pool has only 4"),
    (["--shots", "1,x"], "whole numbers"),
    (["--examples", "/nonexistent/x.csv"], "Cannot read"),
])
def test_cli_bad_input_exits_2(model_folder, tmp_path, capsys, extra, needle) -> None:
    from explorer.cli import main

    examples = write_csv(tmp_path / "ex.csv", [(e.text, e.label) for e in EXAMPLES])
    demos = write_csv(tmp_path / "demos.csv", [(e.text, e.label) for e in pool(4)])
    args = ["fewshot", "--model", str(model_folder), "--examples", str(examples), "--demos",
            str(demos), "--out", str(tmp_path / "r.csv"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and "Traceback" not in err
    assert not (tmp_path / "r.csv").exists()


# --------------------------------------------------------------------------- the real model


@pytest.mark.embedded
def test_smollm2_label_variants_and_probabilities(smollm2) -> None:
    smol = smollm2
    variants = label_variants(smol, LABELS)
    assert [[piece for _, _, piece in v.variants] for v in variants] == [
        ["Positive", "ĠPositive"], ["Negative", "ĠNegative"]]
    built = fs.build_prompt(fs.COURSE_TEMPLATE, pool(2), EXAMPLES[0])
    last = analyze(smol, built.text).last_probs
    expected = [last[list(v.ids)].sum() for v in variants]
    np.testing.assert_allclose(label_probabilities(smol, built.text, variants), expected, rtol=1e-4)
    # the demonstrations' cache is used although "\n\n" tokenises differently at a text's end
    prefix = PrefixCache(smol, built.segments[-1].start)
    cached = label_probabilities(smol, built.text, variants, prefix)
    assert prefix.ids and len(prefix.ids) < len(tokenize(smol, built.text)[0])
    np.testing.assert_allclose(cached, expected, rtol=1e-3)


# --------------------------------------------------------------------------- orders, label modes, partial results


def from_scratch(model, examples, demos, k, seed, variants, order=None, relabel=None):
    """One block computed the way the single-order evaluation always did: no cache, the
    seed's demonstrations (optionally reordered / relabelled), "N/A" for the prior."""
    chosen = list(fs.choose_demonstrations(demos, k, seed, LABELS))
    if relabel is not None:
        chosen = [fs.LabelledExample(d.text, relabel(d.label)) for d in chosen]
    if order is not None:
        chosen = [chosen[i] for i in order]
    probs = np.array([label_probabilities(model, fs.build_prompt(fs.COURSE_TEMPLATE, chosen, e).text, variants)
                      for e in examples])
    cf = label_probabilities(model, fs.build_prompt(fs.COURSE_TEMPLATE, chosen, "N/A").text, variants)
    truth = np.array([LABELS.index(e.label) for e in examples])
    prior = cf / cf.sum()
    share = probs / probs.sum(1, keepdims=True)
    calibrated = np.argmax(share / prior, 1) == truth
    return probs, np.argmax(probs, 1) == truth, calibrated


def test_one_order_reproduces_the_single_order_numbers(model) -> None:
    result = evaluate(model, EXAMPLES, pool(6), LABELS, [0, 1, 3], seed=2, orders=1)
    for k in (0, 1, 3):
        probs, right, calibrated = from_scratch(model, EXAMPLES, pool(6), k, 2, result.variants)
        rows = [r for r in result.rows if r.shots == k]
        assert [r.order for r in rows] == ["0", "all"]
        for row in rows:
            assert row.accuracy == pytest.approx(right.mean())
            assert row.calibrated_accuracy == pytest.approx(calibrated.mean())
        items = [i for i in result.items if i.shots == k]
        np.testing.assert_allclose([i.label_probs for i in items], probs, rtol=1e-4)


def test_orders_are_distinct_permutations_of_the_same_demonstrations(model) -> None:
    result = evaluate(model, EXAMPLES, pool(6), LABELS, [2, 3], seed=1, orders=3, calibrate=False)
    assert [(r.shots, r.order) for r in result.rows] == [
        (2, "0"), (2, "1"), (2, "all"), (3, "0"), (3, "1"), (3, "2"), (3, "all")]
    for k, count in ((2, 2), (3, 3)):
        prompts = [i.prompt for i in result.items if i.shots == k and i.index == 0]
        assert len(prompts) == len(set(prompts)) == count
        blocks = [sorted(p.split("\n\n")[:-1]) for p in prompts]
        assert all(b == blocks[0] for b in blocks)  # the same demonstrations, reordered
        orders = fs.demonstration_orders(k, 3, 1)
        rows = [r for r in result.rows if r.shots == k]
        for order, row in zip(orders, rows, strict=False):
            _, right, _ = from_scratch(model, EXAMPLES, pool(6), k, 1, result.variants, order=order)
            assert row.accuracy == pytest.approx(right.mean())
        pooled = rows[-1]
        assert pooled.orders == count
        assert pooled.accuracy == pytest.approx(np.mean([r.accuracy for r in rows[:-1]]))
        assert pooled.accuracy_ci_low <= pooled.accuracy <= pooled.accuracy_ci_high


def test_label_modes_and_zero_shot_measured_once(model) -> None:
    counter = CountingForwards(model)
    try:
        result = evaluate(model, EXAMPLES, pool(6), LABELS, [0, 2], seed=0,
                          label_modes=("gold", "flipped", "random"))
    finally:
        counter.handle.remove()
    distinct = {tuple((d.text, d.label) for d in b.demos)
                for b in fs.evaluation_plan(pool(6), LABELS, [0, 2], 0, 1, ("gold", "flipped", "random"))}
    # each distinct demonstration sequence: a prefix forward, the items and the "N/A" input
    assert counter.calls == len(distinct) * (1 + len(EXAMPLES) + 1)
    zero = [r for r in result.rows if r.shots == 0 and r.order == "0"]
    assert [r.label_mode for r in zero] == ["gold", "flipped", "random"]
    assert len({(r.accuracy, r.mean_label_prob) for r in zero}) == 1
    flip = {"Positive": "Negative", "Negative": "Positive"}
    _, right, _ = from_scratch(model, EXAMPLES, pool(6), 2, 0, result.variants, relabel=flip.get)
    flipped = next(r for r in result.rows if (r.shots, r.label_mode, r.order) == (2, "flipped", "0"))
    assert flipped.accuracy == pytest.approx(right.mean())
    gold_prompt = next(i.prompt for i in result.items if i.shots == 2 and i.label_mode == "gold")
    flipped_prompt = next(i.prompt for i in result.items if i.shots == 2 and i.label_mode == "flipped")
    assert flipped_prompt == gold_prompt.replace("Positive", "@").replace("Negative", "Positive").replace("@", "Negative")


def test_partial_results_arrive_block_by_block(model) -> None:
    snapshots = []
    final = evaluate(model, EXAMPLES, pool(4), LABELS, [0, 1, 2], orders=2, on_partial=snapshots.append)
    assert [len(s.rows) for s in snapshots] == [2, 4, 5, 7]  # k=0: one order; k=2: two
    assert all(not s.complete for s in snapshots) and final.complete
    assert snapshots[-1].rows == final.rows and len(snapshots[0].items) == len(EXAMPLES)


def test_case_insensitive_variants_add_one_token_case_forms() -> None:
    from tests.support.tiny_models import loaded

    model = loaded("gpt2")
    tok = model.tokenizer
    strict = label_variants(model, ["THE", "SAT"])
    loose = label_variants(model, ["THE", "SAT"], case_insensitive=True)
    assert [v.ids for v in strict] == [(tok.encode("THE")[0],), (tok.encode("SAT")[0],)]
    # "The", " the" and " sat" are single tokens; "the", " The" and "Sat" are not
    assert tok.convert_ids_to_tokens(list(loose[0].ids)) == ["T", "Ġthe", "The"]
    assert tok.convert_ids_to_tokens(list(loose[1].ids)) == ["S", "Ġsat"]
    assert [t for t, _, _ in loose[0].variants] == ["THE", " the", "The"]
    examples = [fs.LabelledExample("the cat", "THE"), fs.LabelledExample("the dog sat", "SAT")]
    demos = [fs.LabelledExample("a", "THE"), fs.LabelledExample("b", "SAT")]
    result = evaluate(model, examples, demos, ["THE", "SAT"], [0], calibrate=False)
    assert [v.ids for v in result.variants] == [v.ids for v in loose]
    probs = model.model(input_ids=__import__("torch").tensor([tok.encode(result.items[0].prompt)])
                        ).logits[0, -1].softmax(-1).detach().numpy()
    assert result.items[0].label_probs[0] == pytest.approx(probs[list(loose[0].ids)].sum(), rel=1e-4)
    assert [v.ids for v in evaluate(model, examples, demos, ["THE", "SAT"], [0], calibrate=False,
                                    case_insensitive=False).variants] == [v.ids for v in strict]


def test_cli_orders_label_modes_and_case_flag(model_folder, tmp_path, capsys) -> None:
    from explorer.cli import main

    examples = write_csv(tmp_path / "ex.csv", [(e.text, e.label) for e in EXAMPLES])
    demos = write_csv(tmp_path / "demos.csv", [(e.text, e.label) for e in pool(4)])
    out = tmp_path / "result.csv"
    code = main(["fewshot", "--model", str(model_folder), "--examples", str(examples),
                 "--demos", str(demos), "--shots", "0,3", "--orders", "4", "--label-mode",
                 "flipped,random", "--case-sensitive", "--seed", "5", "--out", str(out)])
    assert code == 0
    rows, _ = read_csv(out)
    assert [(r["shots"], r["label_mode"], r["order"]) for r in rows] == [
        ("0", "flipped", "0"), ("0", "flipped", "all"), ("0", "random", "0"), ("0", "random", "all"),
        *[("3", mode, o) for mode in ("flipped", "random") for o in ("0", "1", "2", "3", "all")]]
    pooled = [r for r in rows if r["shots"] == "3" and r["label_mode"] == "random"]
    assert float(pooled[-1]["accuracy"]) == pytest.approx(
        np.mean([float(r["accuracy"]) for r in pooled[:-1]]), abs=1e-5)
    assert "order" in capsys.readouterr().out


@pytest.mark.parametrize("extra, needle", [
    (["--orders", "0"], "--orders must be at least 1"),
    (["--orders", "two"], "--orders takes a whole number"),
    (["--label-mode", "noisy"], "Unknown label mode 'noisy'"),
])
def test_cli_bad_orders_and_label_mode_exit_2(model_folder, tmp_path, capsys, extra, needle) -> None:
    from explorer.cli import main

    args = ["fewshot", "--model", str(model_folder), "--out", str(tmp_path / "r.csv"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and "Traceback" not in err
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.embedded
def test_smollm2_case_insensitive_variants_count_the_lowercase_words(smollm2) -> None:
    variants = label_variants(smollm2, LABELS, case_insensitive=True)
    assert [[piece for _, _, piece in v.variants] for v in variants] == [
        ["Positive", "ĠPositive", "positive", "Ġpositive"],
        ["Negative", "ĠNegative", "negative", "Ġnegative"]]
    # every summed form is one token of SmolLM2's vocabulary
    for v in variants:
        for text, token_id, _ in v.variants:
            assert smollm2.tokenizer.encode(text, add_special_tokens=False) == [token_id]

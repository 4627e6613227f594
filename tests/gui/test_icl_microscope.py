"""The in-context-learning microscope in the comparison window, on tiny models: what is
drawn is checked against plain transformers runs of prompts written out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor

from explorer.core import fewshot as fs
from explorer.gui.compare.column import format_delta, label_color
from tests.gui.conftest import load_and_run
from tests.gui.test_compare import build_and_run

LABELS = ("Positive", "Negative")
DEMOS = "text,label\nthe cat,Positive\nthe log,Negative\nthe movie,Positive\n" \
        "the chair,Negative\nI loved,Positive\nthe dog,Negative\n"
QUERY = "I don't like this chair."


@pytest.fixture(scope="module", autouse=True)
def warm_imports():
    """Import transformers and train the tiny tokenizer before the first window loads a
    model, so a busy machine does not push the first load past the fixture's timeout."""
    from tests.support import tiny_models

    tiny_models.loaded("llama")


@pytest.fixture
def compare(qtbot, window, tmp_path):
    (tmp_path / "demos.csv").write_text(DEMOS, encoding="utf-8")
    win = window.features["explorer.gui.compare"].open()
    qtbot.addWidget(win)
    win.builder.demos_path.setText(str(tmp_path / "demos.csv"))
    win.builder.query.setText(QUERY)
    win.builder.seed.setValue(3)
    win.builder.shots.setText("0,2,3")
    return win


def written(pairs) -> str:
    return "".join(f"Classify this review:\n{t}\nSentiment: {lab}\n\n" for t, lab in pairs) + \
        f"Classify this review:\n{QUERY}\nSentiment:"


def fresh(model, text: str, ids) -> np.ndarray:
    """Label probabilities from one plain transformers forward (float64 softmax)."""
    import torch

    tokens = model.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(model.model(input_ids=tokens).logits[0, -1].double(), -1).numpy()
    return np.array([probs[list(i)].sum() for i in ids])


def chosen(tmp_path, k: int) -> list[tuple[str, str]]:
    pool = fs.read_labelled_csv(tmp_path / "demos.csv", LABELS)
    return [(d.text, d.label) for d in fs.choose_demonstrations(pool, k, 3, LABELS)]


def test_demonstration_effects_table_equals_fresh_runs(qtbot, window, compare, tmp_path):
    load_and_run(qtbot, window, "tiny-llama", "The cat")
    analyses = build_and_run(qtbot, compare)
    model = window.controller.worker.model
    column = compare.columns[2]  # 3-shot
    ids = [s.ids for s in analyses[2].label_sums]
    pairs = chosen(tmp_path, 3)
    base = fresh(model, written(pairs), ids)
    target = int(np.argmax(base))
    assert column.effects_table.rowCount() == 3
    expected = []
    for number, (_text, label) in enumerate(pairs):
        left = fresh(model, written([p for i, p in enumerate(pairs) if i != number]), ids)
        other = "Negative" if label == "Positive" else "Positive"
        flip = fresh(model, written([(t, other if i == number else lab) for i, (t, lab) in enumerate(pairs)]), ids)
        expected.append([left[target] - base[target], flip[target] - base[target]])
        cell = column.effects_table.item(number, 1)
        assert cell.text() == label
        assert cell.background().color() == QColor(label_color(label, LABELS))
        assert column.effects_table.item(number, 2).text() == format_delta(left[target] - base[target])
    np.testing.assert_allclose(column.shown_effects, expected, atol=2e-6)
    assert LABELS[target] in column.effects_caption.text()
    assert compare.columns[0].effects_table.rowCount() == 0  # zero-shot: nothing to leave out
    assert QColor(label_color("Positive", LABELS)) != QColor(label_color("Negative", LABELS))


def test_clicking_a_demonstration_highlights_its_tokens(qtbot, window, compare):
    load_and_run(qtbot, window, "tiny-llama", "The cat")
    analyses = build_and_run(qtbot, compare)
    column, analysis = compare.columns[1], analyses[1]
    result = analysis.result
    # demonstration 2's tokens found independently: first character inside its characters
    segment = analysis.prompt.segments[1]
    assert segment.name == "demo 2"
    inside = [t for t, (s, e) in enumerate(result.offsets.tolist()) if segment.start <= s < segment.end]
    start, end = inside[0], inside[-1] + 1
    with qtbot.waitSignal(window.run_displayed, timeout=10000,
                          check_params_cb=lambda v: v.result is result):
        column.select_demonstration(1)
    qtbot.waitUntil(lambda: len(window.attention_panel.map._span_items) == 1)
    rect = window.attention_panel.map._span_items[0].rect()
    assert (rect.x(), rect.width(), rect.height()) == (start, end - start, result.num_tokens)
    assert window.controller.selection.token == result.num_tokens - 1  # the final position's row
    outline = column.segment_highlight
    assert outline.isVisible() and outline.rect().x() == 1 and outline.rect().width() == 1
    assert "d2" in compare.status.text()
    # another column's demonstration moves the highlight; a new run elsewhere clears it
    compare.columns[2].select_demonstration(0)
    qtbot.waitUntil(lambda: window.controller.result is analyses[2].result)
    assert not outline.isVisible() and column.effects_table.selectionModel().selectedRows() == []
    with qtbot.waitSignal(window.run_displayed, timeout=10000):
        window.prompt_panel.set_text("the dog")
        window.prompt_panel.run_now()
    assert window.attention_panel.map._span_items == [] and compare.highlight is None


def test_shuffle_shows_each_order_with_best_and_worst(qtbot, window, compare, tmp_path):
    load_and_run(qtbot, window, "tiny-llama", "The cat")
    analyses = build_and_run(qtbot, compare)
    compare.shuffle_box.setValue(4)
    assert compare.columns[2].shuffle_button.text() == "Shuffle ×4"
    assert not compare.columns[0].shuffle_button.isEnabled()  # zero-shot has no order
    with qtbot.waitSignal(window.controller.worker.job_finished, timeout=60000):
        assert compare.shuffle_column(compare.columns[2]) is not None
    qtbot.waitUntil(lambda: compare.orders.spread is not None)
    spread = compare.orders.spread
    assert compare.below.currentWidget() is compare.orders
    assert len(spread.orders) == len(set(spread.orders)) == 4 and spread.orders[0] == (0, 1, 2)
    model = window.controller.worker.model
    ids = [s.ids for s in analyses[2].label_sums]
    pairs = chosen(tmp_path, 3)
    for row, order in enumerate(spread.orders):
        probs = fresh(model, written([pairs[i] for i in order]), ids)
        np.testing.assert_allclose(spread.probs[row], probs, rtol=1e-4)
        assert compare.orders.table.item(row, 2).text() == f"{probs[0]:.4f}"
    shares = spread.probs / spread.probs.sum(1, keepdims=True)
    target = compare.orders.target_box.currentIndex()
    assert LABELS[target] == LABELS[int(np.argmax(spread.probs[0]))]
    best, worst = int(np.argmax(shares[:, target])), int(np.argmin(shares[:, target]))
    assert compare.orders.table.item(best, 0).background().color() == QColor("#d8f0d8")
    assert compare.orders.table.item(worst, 0).background().color() == QColor("#f6d5d3")
    x, y = compare.orders.points.getData()
    np.testing.assert_allclose(np.sort(y), np.sort(shares.ravel()))
    assert f"best order {best + 1}" in compare.orders.caption.text()


def test_label_anchor_tab_draws_the_three_flows(qtbot, window, compare, tmp_path):
    load_and_run(qtbot, window, "tiny-llama", "The cat")
    analyses = build_and_run(qtbot, compare)
    compare.anchors.set_column(2)
    with qtbot.waitSignal(window.controller.worker.job_finished, timeout=60000):
        compare.below.setCurrentWidget(compare.anchors)
    qtbot.waitUntil(lambda: compare.anchors.flow is not None)
    import torch

    from tests.backend.test_anchor_saliency import pair_means

    model = window.controller.worker.model
    text = analyses[2].prompt.text
    ids = model.tokenizer(text, return_tensors="pt", return_offsets_mapping=True)
    with torch.enable_grad():
        out = model.model(input_ids=ids["input_ids"], output_attentions=True, use_cache=False)
        probs = torch.softmax(out.logits[0, -1].double(), -1)
        sums = torch.stack([probs[list(s.ids)].sum() for s in analyses[2].label_sums])
        grads = torch.autograd.grad(-torch.log(sums.max()), out.attentions)
    saliency = np.stack([(a * g).sum(1)[0].abs().detach().double().numpy()
                         for a, g in zip(out.attentions, grads, strict=True)])
    offsets = ids["offset_mapping"][0].tolist()
    starts, cursor = [], 0
    for _ in range(3):
        cursor = text.index("Sentiment: ", cursor) + len("Sentiment: ")
        starts.append(next(t for t, (s, e) in enumerate(offsets) if s <= cursor < e))
    expected = pair_means(saliency, starts, len(offsets) - 1)
    compare.anchors.relative.setChecked(False)
    drawn = compare.anchors.shown()
    np.testing.assert_allclose([drawn["S_wp"], drawn["S_pq"], drawn["S_ww"]], expected, rtol=2e-3)
    compare.anchors.relative.setChecked(True)
    drawn = compare.anchors.shown()
    np.testing.assert_allclose(drawn["S_wp"] + drawn["S_pq"] + drawn["S_ww"], 1.0)
    np.testing.assert_allclose(drawn["S_pq"], expected[1] / expected.sum(0), rtol=2e-3)
    assert "Column C" in compare.anchors.caption.text()
    # zero-shot column A: no label words, so only S_ww; then C again comes from memory
    compare.anchors.set_column(0)
    qtbot.waitUntil(lambda: compare.side_job is None and compare.anchors.flow is not None, timeout=60000)
    assert "no demonstrations with a label word" in compare.anchors.caption.text()
    compare.anchors.set_column(2)
    assert compare.side_job is None and compare.anchors.flow is compare.flows[id(analyses[2])]


def test_a_column_on_its_own_model_with_memory_shown(qtbot, window, compare):
    load_and_run(qtbot, window, "tiny-llama", "The cat")
    compare.builder.shots.setText("0,1")  # tiny-gpt2 has a 64-token context
    compare.build_columns()  # runs on the main model once
    qtbot.waitUntil(lambda: compare.job is None, timeout=60000)
    compare.columns[1].set_model_spec("tiny-gpt2")
    assert compare.columns[1].model_spec() == "tiny-gpt2"
    assert compare.run_all() is not None, compare.status.text()
    qtbot.waitUntil(lambda: compare.job is None, timeout=60000)
    a, b = compare.columns[0].analysis, compare.columns[1].analysis
    assert a.result.model_info.name == "tiny-llama" and b.result.model_info.name == "tiny-gpt2"
    assert window.controller.model_info.name == "tiny-llama"  # the main model is unchanged
    assert compare.extra.cache.specs() == ["tiny-gpt2"]
    extra = compare.extra.cache.get("tiny-gpt2")
    main = window.controller.worker.model
    sizes = {}
    for name, model in (("tiny-llama", main), ("tiny-gpt2", extra)):
        tensors = {t.data_ptr(): t for t in [*model.model.parameters(), *model.model.buffers()]}
        sizes[name] = sum(t.numel() * t.element_size() for t in tensors.values())
    run = compare.run
    assert [(m.name, m.main, m.bytes) for m in run.models] == [
        ("tiny-llama", True, sizes["tiny-llama"]), ("tiny-gpt2", False, sizes["tiny-gpt2"])]
    text = compare.memory_label.text()
    assert "tiny-llama (main)" in text and "tiny-gpt2" in text and "MB" in text
    # each column's numbers come from its own model
    expected = fresh(extra, b.prompt.text, [s.ids for s in b.label_sums])
    np.testing.assert_allclose(b.label_probs, expected, rtol=1e-4)
    assert "tiny-gpt2" in compare.columns[1].title.text()
    assert "different models" in compare.difference.caption.text() or compare.difference.choice() != (0, 1)
    compare.difference.set_choice(0, 1)
    assert "different models" in compare.difference.caption.text()
    compare.set_head(2, 3)  # tiny-gpt2 has 2 layers: its column clamps, nothing breaks
    assert compare.columns[1].layer_highlight.rect().y() == 1
    extras = window.session_extras()["comparison"]
    assert extras["column_models"] == ["", "tiny-gpt2"]
    # other column features (e.g. the ablation label scan) run on the column's model
    names: list[str] = []
    for column in compare.columns:
        window.controller.submit(compare.column_job(column, lambda m, t, e: m.info.name),
                                 on_done=names.append, on_error=lambda msg, _c: names.append(msg))
    qtbot.waitUntil(lambda: len(names) == 2, timeout=30000)
    assert names == ["tiny-llama", "tiny-gpt2"]


def test_case_setting_reaches_columns_and_is_saved(qtbot, window, compare, tmp_path):
    load_and_run(qtbot, window, "tiny-gpt2", "The cat")
    (tmp_path / "demos2.csv").write_text("text,label\nthe cat,THE\nthe dog,SAT\n", encoding="utf-8")
    compare.builder.demos_path.setText(str(tmp_path / "demos2.csv"))
    compare.builder.labels.setText("THE,SAT")
    compare.builder.shots.setText("0,1")
    tok = window.controller.worker.model.tokenizer
    analyses = build_and_run(qtbot, compare)
    loose = [set(tok.convert_ids_to_tokens(list(s.ids))) for s in analyses[0].label_sums]
    assert loose == [{"T", "Ġthe", "The"}, {"S", "Ġsat"}]
    assert "'The'" in compare.columns[0].summary.text()
    compare.builder.case_box.setChecked(False)
    analyses = build_and_run(qtbot, compare)
    strict = [set(tok.convert_ids_to_tokens(list(s.ids))) for s in analyses[0].label_sums]
    assert strict == [{"T"}, {"S"}]
    assert window.session_extras()["comparison"]["case_insensitive"] is False

"""The few-shot comparison window on tiny models: builder, columns, alignment, explorer
link, evaluation equal to the headless one, cancel, session."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from explorer.core import fewshot as fs
from tests.gui.conftest import load_and_run

LABELS = ("Positive", "Negative")
DEMOS = "text,label\nthe cat,Positive\nthe log,Negative\nthe movie,Positive\n" \
        "the chair,Negative\nI loved,Positive\nthe dog,Negative\n"
EXAMPLES = "text,label\nI loved this movie!,Positive\nI don't like this chair.,Negative\n" \
           "The cat sat.,Positive\nThe dog sat on the log.,Negative\n"


@pytest.fixture
def compare(qtbot, window, tmp_path):
    """The comparison window with a short demonstration pool (tiny models have short contexts)."""
    (tmp_path / "demos.csv").write_text(DEMOS, encoding="utf-8")
    (tmp_path / "examples.csv").write_text(EXAMPLES, encoding="utf-8")
    feature = window.features["explorer.gui.compare"]
    win = feature.open()
    qtbot.addWidget(win)
    win.builder.demos_path.setText(str(tmp_path / "demos.csv"))
    win.builder.query.setText("I don't like this chair.")
    win.builder.seed.setValue(3)
    return win


def build_and_run(qtbot, win):
    win.build_columns()
    assert win.job is not None
    qtbot.waitUntil(lambda: win.job is None, timeout=60000)
    assert all(c.analysis for c in win.columns), win.status.text()
    return [c.analysis for c in win.columns]


def pool(tmp_path):
    return fs.read_labelled_csv(tmp_path / "demos.csv", LABELS)


def test_builder_makes_zero_one_few_shot_columns_reproducibly(qtbot, window, compare, tmp_path):
    compare.build_columns()  # no model yet: columns only
    texts = [c.text() for c in compare.columns]
    demos = [[s for s in c.built.segments if s.kind == "demonstration"] for c in compare.columns]
    assert [len(d) for d in demos] == [0, 1, 2, 4]
    assert sorted(s.label for s in demos[3]) == ["Negative", "Negative", "Positive", "Positive"]
    for k, text in zip((0, 1, 2, 4), texts, strict=True):
        chosen = fs.choose_demonstrations(pool(tmp_path), k, 3, LABELS)
        assert text == fs.build_prompt(fs.COURSE_TEMPLATE, chosen, "I don't like this chair.").text
    compare.build_columns()
    assert [c.text() for c in compare.columns] == texts
    compare.builder.seed.setValue(4)
    compare.build_columns()
    assert [c.text() for c in compare.columns][0] == texts[0]
    # add / remove within 2..6
    assert compare.add_column() is not None and compare.add_column() is not None
    assert compare.add_column() is None and len(compare.columns) == 6
    for column in list(compare.columns):
        compare.remove_column(column)
    assert len(compare.columns) == 2


def test_columns_label_probabilities_and_segment_heatmap(qtbot, window, compare):
    load_and_run(qtbot, window, "tiny-llama", "The cat")
    analyses = build_and_run(qtbot, compare)
    from explorer.backend.fewshot_runner import label_variants

    declared = label_variants(window.controller.worker.model, LABELS)
    compare.set_head(1, 2)
    for column, analysis in zip(compare.columns, analyses, strict=True):
        result = analysis.result
        assert result.prompt == column.text()
        assert [s.ids for s in analysis.label_sums] == [v.ids for v in declared]
        expected = [float(result.last_probs[list(v.ids)].astype(np.float64).sum()) for v in declared]
        np.testing.assert_allclose(analysis.label_probs, expected, rtol=1e-12)
        assert analysis.predicted == LABELS[int(np.argmax(expected))]
        assert f"{result.num_tokens}</b> tokens" in column.summary.text()
        assert "Positive = '" in column.summary.text()
        # segment heatmap: the final row of layer l, head 2 summed over each segment's tokens
        owner = []
        for start, end in result.offsets:
            first = start - 1 if end <= start and start > 0 else start
            owner.append(next((i for i, s in enumerate(analysis.prompt.segments)
                               if start >= 0 and s.start <= first < s.end), -1))
        for seg in range(len(analysis.prompt.segments)):
            keys = [t for t, o in enumerate(owner) if o == seg]
            want = result.attentions[:, 2, -1, keys].astype(np.float32).sum(-1)
            np.testing.assert_allclose(column.shown_heat[:, seg], want, rtol=1e-5, atol=1e-6)
        assert column.shown_heat.shape == (3, len(analysis.prompt.segments))


def test_query_tokens_align_and_difference_is_b_minus_a(qtbot, window, compare):
    load_and_run(qtbot, window, "tiny-llama", "The cat")
    analyses = build_and_run(qtbot, compare)
    compare.set_head(2, 1)
    compare.difference.set_choice(1, 3)
    compare.columns[0].chips.setCurrentRow(2)
    assert compare.query_index == 2
    assert [c.chips.currentRow() for c in compare.columns] == [2, 2, 2, 2]
    queries = []
    for analysis in analyses:
        start = analysis.prompt.segments[-1].start
        queries.append([t for t, (s, _) in enumerate(analysis.result.offsets) if s >= start])
    assert len({len(q) for q in queries}) == 1  # the same query in every column
    a, b = analyses[1].result.attentions[2, 1], analyses[3].result.attentions[2, 1]
    expected = (b.astype(np.float32)[np.ix_(queries[3], queries[3])]
                - a.astype(np.float32)[np.ix_(queries[1], queries[1])])
    np.testing.assert_allclose(compare.difference.shown, expected)
    assert compare.difference.row_highlight.rect().y() == 2
    compare.set_head(0, 0, head_mean=True)
    mean = (analyses[3].result.attentions[0].astype(np.float32).mean(0)[np.ix_(queries[3], queries[3])]
            - analyses[1].result.attentions[0].astype(np.float32).mean(0)[np.ix_(queries[1], queries[1])])
    np.testing.assert_allclose(compare.difference.shown, mean, atol=1e-6)


def test_open_in_explorer_selects_the_absolute_query_token(qtbot, window, compare):
    load_and_run(qtbot, window, "tiny-llama", "The cat")
    analyses = build_and_run(qtbot, compare)
    compare.set_head(1, 3)
    compare.columns[2].chips.setCurrentRow(1)
    target = analyses[2].result
    absolute = int(analyses[2].query_positions[1])
    assert target.offsets[absolute, 0] >= analyses[2].prompt.segments[-1].start
    with qtbot.waitSignal(window.run_displayed, timeout=10000,
                          check_params_cb=lambda v: v.result is target):
        compare.columns[2].open_button.click()
    s = window.controller.selection
    assert (s.token, s.layer, s.head) == (absolute, 1, 3)
    assert window.attention_panel.row_highlight.rect().y() == absolute
    np.testing.assert_allclose(window.attention_panel.shown_map, target.attentions[1, 3].astype(np.float32))


@pytest.fixture
def folder_window(qtbot, tmp_path):
    """A main window whose worker loads models with the real loader (no test double), and a
    tiny Llama saved as a transformers folder that the CLI can load too."""
    from PySide6.QtCore import QSettings

    from explorer.gui.controller import Controller
    from explorer.gui.main_window import MainWindow
    from explorer.gui.plotting import configure_pyqtgraph
    from explorer.gui.worker import EngineWorker
    from tests.support.tiny_models import byte_level_tokenizer, tiny_llama

    folder = tmp_path / "tiny-llama"
    model = tiny_llama()
    model.config.architectures = ["LlamaForCausalLM"]
    model.save_pretrained(folder)
    byte_level_tokenizer().save_pretrained(folder)
    configure_pyqtgraph()
    controller = Controller(EngineWorker())
    win = MainWindow(controller, QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    qtbot.addWidget(win)
    win.show()
    yield win, folder
    controller.shutdown()


def read_rows(path):
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_gui_evaluation_equals_the_cli_run_as_a_subprocess(qtbot, folder_window, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    window, folder = folder_window
    (tmp_path / "demos.csv").write_text(DEMOS, encoding="utf-8")
    (tmp_path / "examples.csv").write_text(EXAMPLES, encoding="utf-8")
    with qtbot.waitSignal(window.controller.model_changed, timeout=60000):
        window.load_model(str(folder))
    compare = window.features["explorer.gui.compare"].open()
    qtbot.addWidget(compare)
    compare.builder.demos_path.setText(str(tmp_path / "demos.csv"))
    compare.builder.seed.setValue(3)
    panel = compare.evaluation
    panel.examples_path.setText(str(tmp_path / "examples.csv"))
    panel.shots.setText("0,1,2")
    panel.orders.setValue(2)
    panel.mode_boxes["flipped"].setChecked(True)
    with qtbot.waitSignal(window.controller.worker.job_finished, timeout=120000):
        assert panel.run() is not None, panel.status.text()
    qtbot.waitUntil(lambda: panel.job is None and panel.evaluation is not None)
    assert panel.evaluation.complete
    panel.export_csv(tmp_path / "gui.csv", tmp_path / "gui-items.csv")

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "explorer", "fewshot", "--model", str(folder), "--examples",
         str(tmp_path / "examples.csv"), "--demos", str(tmp_path / "demos.csv"), "--shots", "0,1,2",
         "--orders", "2", "--label-mode", "gold,flipped", "--seed", "3",
         "--out", str(tmp_path / "cli.csv"), "--items-out", str(tmp_path / "cli-items.csv")],
        cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    cli, gui = read_rows(tmp_path / "cli.csv"), read_rows(tmp_path / "gui.csv")
    keys = ("shots", "n", "label_mode", "order")
    assert [tuple(r[k] for k in keys) for r in gui] == [tuple(r[k] for k in keys) for r in cli]
    assert len(cli) == 2 * (2 + 2 + 3)  # per mode: k=0 one order, k=1 one, k=2 two; + pooled rows
    for mine, theirs in zip(gui, cli, strict=True):
        for column in ("accuracy", "calibrated_accuracy", "mean_label_prob", "accuracy_ci_low",
                       "accuracy_ci_high"):
            assert float(mine[column]) == pytest.approx(float(theirs[column]), abs=2e-6), column
    cli_items, gui_items = read_rows(tmp_path / "cli-items.csv"), read_rows(tmp_path / "gui-items.csv")
    assert [r["prompt"] for r in gui_items] == [r["prompt"] for r in cli_items]
    assert [r["predicted"] for r in gui_items] == [r["predicted"] for r in cli_items]
    for mine, theirs in zip(gui_items, cli_items, strict=True):
        assert float(mine["p_Positive"]) == pytest.approx(float(theirs["p_Positive"]), rel=1e-4)
    # what is drawn: the pooled CLI rows in the table, one curve and its intervals per mode
    pooled = [r for r in cli if r["order"] == "all"]
    assert panel.table.rowCount() == len(pooled) == 6
    for i, row in enumerate(pooled):
        assert panel.table.item(i, 0).text() == row["shots"]
        assert panel.table.item(i, 1).text() == row["label_mode"]
        assert panel.table.item(i, 4).text() == f"{float(row['accuracy']):.3f}"
        assert panel.table.item(i, 5).text() == (f"{float(row['accuracy_ci_low']):.3f}–"
                                                 f"{float(row['accuracy_ci_high']):.3f}")
    for mode in ("gold", "flipped"):
        mine = [r for r in pooled if r["label_mode"] == mode]
        x, y = panel.curves[(mode, "raw")].getData()
        np.testing.assert_allclose(x, np.array([0, 1, 2]) + (0.08 if mode == "flipped" else 0.0))
        np.testing.assert_allclose(y, [float(r["accuracy"]) for r in mine], atol=2e-6)
        bars = panel.error_bars[mode].opts
        np.testing.assert_allclose(np.asarray(bars["y"]) - np.asarray(bars["bottom"]),
                                   [float(r["accuracy_ci_low"]) for r in mine], atol=2e-6)
        np.testing.assert_allclose(np.asarray(bars["y"]) + np.asarray(bars["top"]),
                                   [float(r["accuracy_ci_high"]) for r in mine], atol=2e-6)
    assert panel.curves[("random", "raw")].getData()[0] is None or \
        len(panel.curves[("random", "raw")].getData()[0]) == 0
    assert [e[1] for e in panel.progress_events][-1].startswith("2-shot, flipped labels, order 2/2 (item 4/4)")
    assert panel.eta.text().startswith("took ")


def test_partial_results_are_drawn_and_kept_on_cancel(qtbot, window, compare, tmp_path):
    load_and_run(qtbot, window, "tiny-llama", "The cat")
    panel = compare.evaluation
    panel.examples_path.setText(str(tmp_path / "examples.csv"))
    panel.shots.setText("0,1,2")
    calls, gate, held = [], threading.Event(), threading.Event()

    def hold(_module, _args):
        calls.append(1)
        if len(calls) == 7:  # k=0 took 6 forwards (prefix, "N/A", 4 items): hold k=1's first
            held.set()
            gate.wait(10)

    handle = window.controller.worker.model.model.register_forward_pre_hook(hold)
    try:
        assert panel.run() is not None
        assert held.wait(20)
        qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=10000)
        assert panel.eta.text().startswith("ETA ")
        assert "Partial results" in panel.status.text() and panel.export_button.isEnabled()
        x, y = panel.raw_curve.getData()
        assert list(x) == [0.0] and y[0] == pytest.approx(panel.evaluation.rows[0].accuracy)
        panel.cancel()
        gate.set()
        qtbot.waitUntil(lambda: panel.job is None, timeout=10000)
    finally:
        handle.remove()
    assert "Kept the partial results" in panel.status.text() and panel.run_button.isEnabled()
    assert panel.table.rowCount() == 1 and panel.table.item(0, 0).text() == "0"
    panel.export_csv(tmp_path / "partial.csv")
    rows = read_rows(tmp_path / "partial.csv")
    assert [(r["shots"], r["order"]) for r in rows] == [("0", "0")]  # one order: no pooled row
    # the kept row is the zero-shot accuracy of the four items, recomputed from the items
    items = panel.evaluation.items
    assert len(items) == 4
    assert float(rows[0]["accuracy"]) == pytest.approx(np.mean([i.predicted == i.label for i in items]))


def test_evaluation_cancel_stops_within_one_item(qtbot, window, compare, tmp_path):
    load_and_run(qtbot, window, "tiny-llama", "The cat")
    panel = compare.evaluation
    panel.examples_path.setText(str(tmp_path / "examples.csv"))
    panel.shots.setText("0,1,2")
    entered, gate, calls = threading.Event(), threading.Event(), []

    def hold(_module, _args):
        calls.append(1)
        entered.set()
        gate.wait(10)

    handle = window.controller.worker.model.model.register_forward_pre_hook(hold)
    try:
        assert panel.run() is not None, panel.status.text()
        assert entered.wait(10)  # the first item is running in the worker
        panel.cancel()
        gate.set()
        qtbot.waitUntil(lambda: panel.job is None, timeout=10000)
    finally:
        handle.remove()
    # the held forward built the shared prefix; the query it serves (one step) completes
    assert len(calls) == 2 and panel.progress_events == []
    assert panel.status.text() == "Cancelled." and panel.run_button.isEnabled()
    assert panel.evaluation is None


def test_encoder_says_it_has_no_next_token(qtbot, window, compare):
    load_and_run(qtbot, window, "tiny-bert", "the cat")
    compare.builder.shots.setText("0,1")
    analyses = build_and_run(qtbot, compare)
    assert all(a.label_probs.size == 0 for a in analyses)
    assert "encoder" in compare.columns[0].summary.text()
    assert compare.columns[0].bars_widget.isHidden()
    assert compare.columns[0].shown_heat.shape == (2, len(analyses[0].prompt.segments))


def test_session_extras_round_trip(qtbot, window, compare):
    compare.build_columns()
    compare.columns[1].editor.setPlainText("edited prompt")
    compare.select_query_token(1)
    extras = window.session_extras()["comparison"]
    assert extras["columns"][1] == "edited prompt" and extras["seed"] == 3
    compare.builder.query.setText("something else")
    compare.set_texts(["a", "b"])
    window.apply_session_extras({"comparison": extras, "generation": {}})
    assert compare.builder.query.text() == "I don't like this chair."
    assert [c.text() for c in compare.columns] == extras["columns"]
    assert compare.query_index == 1


def test_switching_to_a_model_with_fewer_layers_keeps_working(qtbot, window, compare):
    load_and_run(qtbot, window, "tiny-llama", "the cat")  # 3 layers
    compare.builder.shots.setText("0,1")
    build_and_run(qtbot, compare)
    compare.set_head(2, 3)
    load_and_run(qtbot, window, "tiny-gpt2", "the cat")  # 2 layers: layer 2 no longer exists
    analyses = build_and_run(qtbot, compare)
    assert (compare.layer, compare.head) == (1, 3)
    assert analyses[0].result.model_info.layers == 2
    assert "Ran 2 columns" in compare.status.text()

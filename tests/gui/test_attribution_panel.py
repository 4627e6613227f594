"""The attribution panel: what it draws for a run, target and method, and how it behaves."""

import json

import numpy as np
import pytest
from PySide6.QtGui import QColor

from explorer.backend.attribution import attribute
from explorer.gui.panels.tokens_panel import HEAT_ROLE
from tests.gui.conftest import load_and_run

PROMPT = "The cat sat on the mat. The dog"


def panel_of(window):
    return window.features["explorer.gui.attribution"]


def computed(qtbot, panel, action):
    """Run ``action`` and return the finished Attribution the panel drew."""
    with qtbot.waitSignal(panel.finished, timeout=120000) as blocker:
        action()
    return blocker.args[0]


def open_panel(qtbot, window, panel):
    return computed(qtbot, panel, lambda: (panel.dock.show(), panel.dock.raise_()))


def cell_texts(table, column):
    return [table.item(row, column).text() for row in range(table.rowCount())]


@pytest.mark.parametrize("attention_mode", ["full", "lazy"])
def test_panel_draws_the_record_of_the_selected_token(qtbot, window, attention_mode):
    view = load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    panel = panel_of(window)
    position = view.result.num_tokens - 3
    window.controller.select_token(position)
    record = open_panel(qtbot, window, panel)
    assert record.position == position and record.target.id == int(view.result.topk_ids[position, 0])
    # the same numbers as the backend function the CLI calls
    model = window.controller.worker.model
    expected = attribute(model, PROMPT, position=position, run=view.result)
    for method in ("grad_x_input", "integrated_gradients", "rollout", "attention"):
        np.testing.assert_allclose(record.scores[method], expected.scores[method], rtol=1e-4, atol=1e-7)
    for method in ("grad_x_input", "integrated_gradients", "rollout", "attention"):
        panel.set_method(method)
        heat = window.tokens_panel.model.heat
        np.testing.assert_array_equal(heat, record.scores[method])
        ranked = record.ranked(method)
        assert cell_texts(panel.ranked, 1)[:3] == [str(i) for i, _ in ranked[:3]]
        assert panel.ranked.item(0, 3).text() == f"{ranked[0][1]:+.4f}"
        assert panel.ranked.rowCount() == position + 1
        # the chip of the highest-scoring token is red, a token after the position stays white
        top = window.tokens_panel.model.index(ranked[0][0])
        colour = top.data(HEAT_ROLE)
        assert isinstance(colour, QColor) and colour.red() == 255 and colour.green() < 255
        after = window.tokens_panel.model.index(position + 1).data(HEAT_ROLE)
        assert after == QColor("white")
        assert "tokens 0–" + str(position) in window.tokens_panel.heat_label.text()
    names = cell_texts(panel.table, 0)
    assert names[-1] == "random ordering" and len(names) == 5
    for row, curve in enumerate(record.faithfulness.values()):
        assert float(panel.table.item(row, 1).text()) == pytest.approx(curve.comprehensiveness, rel=1e-3)
        assert float(panel.table.item(row, 2).text()) == pytest.approx(curve.sufficiency, rel=1e-3)
    for name, curve in record.faithfulness.items():
        x, y = panel.plot.curves[name].getData()
        np.testing.assert_array_equal(x, curve.ks)
        np.testing.assert_allclose(y, curve.deletion, rtol=1e-6)
        assert y[0] == pytest.approx(record.target.prob, rel=1e-5)
    assert f"{record.ig.completeness_gap:.4f} nats" in panel.gap.text()
    assert "32 steps" in panel.gap.text()


def test_switching_the_method_redraws_without_recomputing(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    panel = panel_of(window)
    record = open_panel(qtbot, window, panel)
    panel.set_method("rollout")
    assert panel.job is None and panel.record is record
    np.testing.assert_array_equal(window.tokens_panel.model.heat, record.scores["rollout"])
    assert "attention rollout" in panel.quantity.text()


def test_typed_and_actual_targets(qtbot, window):
    view = load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    panel = panel_of(window)
    open_panel(qtbot, window, panel)
    sat = window.controller.worker.model.tokenizer.encode(" sat")
    record = computed(qtbot, panel, lambda: panel.set_target("typed", " sat"))
    assert record.target.id == sat[0] and "“␣sat”" in panel.quantity.text()
    window.controller.select_token(2)
    record = computed(qtbot, panel, lambda: panel.set_target("actual"))
    assert record.position == 2 and record.target.id == int(view.result.token_ids[3])
    # the last token has no actual next token: a message, no job
    window.controller.select_token(view.result.num_tokens - 1)
    panel.compute()
    assert panel.job is None and "no actual next token" in panel.status.text()
    panel.set_target("typed", "The cat sat")
    with qtbot.waitSignal(panel.controller.worker.job_failed, timeout=60000):
        panel.compute()
    qtbot.waitUntil(lambda: "not one" in panel.status.text(), timeout=10000)
    assert panel.status.isVisible() and panel.record is None


def test_raising_the_steps_recomputes_and_reports_the_new_gap(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = panel_of(window)
    first = open_panel(qtbot, window, panel)
    more = computed(qtbot, panel, panel.more_steps.click)
    assert (first.ig.steps, more.ig.steps) == (32, 128)
    assert "128 steps" in panel.gap.text()
    assert f"{more.ig.completeness_gap:.4f} nats" in panel.gap.text()


def test_cancel_stops_a_long_computation(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    panel = panel_of(window)
    panel.auto.setChecked(False)
    panel.dock.show()
    panel.dock.raise_()
    panel.steps.setValue(4000)
    with qtbot.waitSignal(window.controller.worker.job_progress, timeout=60000):
        panel.compute()
    assert panel.cancel_button.isVisible()
    with qtbot.waitSignal(window.controller.worker.job_failed, timeout=60000) as blocker:
        panel.cancel_button.click()
    assert blocker.args[2] is True  # cancelled, not failed
    assert panel.job is None and panel.record is None and not panel.progress.isVisible()
    assert "Cancelled" in panel.status.text() and "Computing" not in panel.quantity.text()


def test_encoder_gets_rollout_only(qtbot, window):
    load_and_run(qtbot, window, "tiny-bert", "the cat sat on the mat")
    panel = panel_of(window)
    record = open_panel(qtbot, window, panel)
    assert record.methods == ("rollout",) and record.target is None
    assert [panel.method_box.itemData(i) for i in range(panel.method_box.count())] == ["rollout"]
    assert not panel.target_box.isEnabled() and not panel.steps.isEnabled()
    assert panel.table.rowCount() == 0 and "Encoder" in panel.quantity.text()
    assert panel.ranked.rowCount() == len(record.tokens)  # bidirectional: every token ranked
    np.testing.assert_array_equal(window.tokens_panel.model.heat, record.scores["rollout"])


def test_saved_json_is_the_command_line_format(qtbot, window, tmp_path):
    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    panel = panel_of(window)
    record = open_panel(qtbot, window, panel)
    path = tmp_path / "a.json"
    assert panel.save(str(path))
    data = json.loads(path.read_text(encoding="utf-8"))
    assert list(data) == ["tokens", "position", "target", "scores", "ig", "aopc"]
    assert data["scores"]["integrated_gradients"] == pytest.approx(
        record.scores["integrated_gradients"].tolist())
    assert data["aopc"]["random"]["comprehensiveness"] == pytest.approx(
        record.faithfulness["random"].comprehensiveness)


def test_a_new_run_clears_the_old_heat_and_recomputes(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    panel = panel_of(window)
    open_panel(qtbot, window, panel)
    with qtbot.waitSignal(panel.finished, timeout=120000) as blocker:
        load_and_run(qtbot, window, "tiny-gpt2", "The cat sat")
    record = blocker.args[0]
    assert record.tokens == window.controller.result.tokens
    np.testing.assert_array_equal(window.tokens_panel.model.heat, record.scores[panel.method])


def test_an_ablated_run_is_explained_with_the_same_heads_ablated(qtbot, window):
    from explorer.backend.ablation import ablating
    from explorer.core.ablation import Ablation

    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    panel = panel_of(window)
    plain = open_panel(qtbot, window, panel)
    ablation = Ablation(frozenset({(1, 0), (1, 2)}), "zero")
    record = computed(qtbot, panel, lambda: window.controller.set_ablation(ablation))
    assert window.controller.shown_ablation == ablation
    model = window.controller.worker.model
    with ablating(model, ablation):
        expected = attribute(model, PROMPT, methods=["grad_x_input"], faithfulness=False)
    assert record.target.id == expected.target.id
    np.testing.assert_allclose(record.scores["grad_x_input"], expected.scores["grad_x_input"],
                               rtol=1e-4, atol=1e-7)
    assert not np.allclose(record.scores["grad_x_input"], plain.scores["grad_x_input"], atol=1e-6)
    assert "2 head(s) ablated" in panel.quantity.text()

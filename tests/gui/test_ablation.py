"""Ablation in the window: Ctrl+click heads, the ablated run everywhere, both distributions
in the probability panel, the scan heatmap with Cancel, and the few-shot label scan."""

import threading

import numpy as np
import pytest

from explorer.backend.engine import analyze
from explorer.core.ablation import Ablation
from explorer.core.thumbnails import tile_origin
from explorer.gui.run_view import GROUP_GAP, THUMBNAIL_GAP
from tests.gui.conftest import drain_worker, load_and_run
from tests.gui.test_compare import build_and_run, compare  # noqa: F401 - fixture

PROMPT = "The cat sat on the mat. The dog sat on the"


@pytest.fixture(scope="module", autouse=True)
def warm_imports():
    """Import torch and transformers before the first window (a cold import in the worker
    can outlast the load timeout on a busy machine)."""
    from tests.support import tiny_models

    tiny_models.loaded("llama")


@pytest.fixture(params=["full", "lazy"])
def attention_mode(request):
    return request.param


def ctrl_click(window, layer, head):
    """A Ctrl+click in the middle of a head's tile of the attention grid."""
    grid = window.attention_panel.grid
    view = grid.view
    y, x = tile_origin(layer, head, view.cell, THUMBNAIL_GAP, GROUP_GAP, view.group_size)
    with_run = window.run_displayed
    return grid._on_ctrl_clicked(x + view.cell / 2, y + view.cell / 2), with_run


def toggle_and_wait(qtbot, window, layer, head, expected):
    """Ctrl+click a head and wait for the rerun, its next-token rows included (a lazy
    run shows the bars after the last token first)."""
    with qtbot.waitSignal(window.run_displayed, timeout=30000,
                          check_params_cb=lambda v: window.controller.shown_ablation == expected):
        ctrl_click(window, layer, head)
    drain_worker(qtbot, window)


def plain_model(window):
    """A fresh copy of the loaded tiny model (same seed, same weights) for reference runs:
    the window's own model belongs to the worker thread."""
    from tests.support import tiny_models

    name = window.controller.model_info.name
    return tiny_models.loaded({"tiny-gpt2": "gpt2", "tiny-llama": "llama"}[name])


def wait_for_shift(qtbot, window):
    panel = window.probability_panel
    qtbot.waitUntil(lambda: panel.shift is not None and panel._active_shift() is not None,
                    timeout=30000)
    return panel


def test_ctrl_click_ablates_heads_and_every_panel_shows_the_ablated_model(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    loaded = plain_model(window)
    toggle_and_wait(qtbot, window, 1, 2, Ablation(frozenset({(1, 2)})))
    toggle_and_wait(qtbot, window, 0, 0, Ablation(frozenset({(1, 2), (0, 0)})))
    heads = frozenset({(1, 2), (0, 0)})
    result = window.controller.result
    expected = analyze(loaded, PROMPT, attention="none", ablation=Ablation(heads))
    plain = analyze(loaded, PROMPT, attention="none")
    np.testing.assert_allclose(result.last_probs, expected.last_probs, atol=1e-6)
    assert np.abs(result.last_probs - plain.last_probs).max() > 1e-5
    assert window.attention_panel.grid.marked == set(heads)
    assert window.docks["Ablation"].isVisible()
    assert "0.0, 1.2" in window.features["explorer.gui.ablation"].dock.heads_label.text()
    # the probability panel: ablated bars and the plain model's bars beside them
    panel = wait_for_shift(qtbot, window)
    last = result.num_tokens - 1
    window.controller.select_token(last)
    ids = result.topk_ids[last, : len(panel.shown_probs)]
    np.testing.assert_allclose(panel.bars.opts["width"], expected.last_probs[ids], atol=1e-6)
    np.testing.assert_allclose(panel.base_bars.opts["width"], plain.last_probs[ids], atol=1e-6)
    p, q = plain.last_probs.astype(np.float64), expected.last_probs.astype(np.float64)
    kl = float(np.sum(p * (np.log(p) - np.log(q))))
    assert f"KL(base‖ablated) = {kl:.4f} nats" in panel.actual.text()
    top = int(np.argmax(p))
    assert f"Δp {100 * (q[top] - p[top]):+.2f} points" in panel.actual.text()
    # Ctrl+click again removes a head; Clear restores the plain model
    toggle_and_wait(qtbot, window, 0, 0, Ablation(frozenset({(1, 2)})))
    feature = window.features["explorer.gui.ablation"]
    with qtbot.waitSignal(window.run_displayed, timeout=30000,
                          check_params_cb=lambda v: window.controller.shown_ablation is None):
        feature.dock.clear_button.click()
    np.testing.assert_allclose(window.controller.result.last_probs, plain.last_probs, atol=1e-6)
    assert window.attention_panel.grid.marked == set()
    assert len(panel.base_bars.opts["width"]) == 0 and "Ablated" not in panel.actual.text()


def test_mean_mode_reruns_with_the_mean_ablation(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    toggle_and_wait(qtbot, window, 1, 3, Ablation(frozenset({(1, 3)})))
    dock = window.features["explorer.gui.ablation"].dock
    mean = Ablation(frozenset({(1, 3)}), "mean")
    with qtbot.waitSignal(window.run_displayed, timeout=30000,
                          check_params_cb=lambda v: window.controller.shown_ablation == mean):
        dock.mode_box.setCurrentIndex(dock.mode_box.findData("mean"))
    drain_worker(qtbot, window)
    expected = analyze(plain_model(window), PROMPT, attention="none", ablation=mean)
    np.testing.assert_allclose(window.controller.result.last_probs, expected.last_probs, atol=1e-6)
    # the shift of a middle token: the actual next token's Δp
    panel = wait_for_shift(qtbot, window)
    window.controller.select_token(2)
    plain = analyze(plain_model(window), PROMPT, attention="none")
    before, after = plain.actual_next_probs[2], expected.actual_next_probs[2]
    assert f"{before:.2%} → {after:.2%}" in panel.actual.text()


def run_scan(qtbot, feature):
    job = feature.start_scan()
    assert job is not None
    qtbot.waitUntil(lambda: feature.scan_job is None, timeout=60000)
    return feature.scan


def test_scan_heatmap_equals_single_ablations_and_colours_the_grid(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    feature = window.features["explorer.gui.ablation"]
    window.controller.select_token(4)
    scan = run_scan(qtbot, feature)
    assert scan is not None, feature.dock.status.text()
    loaded = plain_model(window)
    plain = analyze(loaded, PROMPT, attention="none")
    target = int(plain.token_ids[5])
    assert scan.position == 4 and scan.target_id == target
    image = feature.dock.heatmap.image.image
    assert image.shape == (loaded.info.layers, loaded.info.heads)
    for layer, head in [(0, 1), (2, 3)]:
        single = analyze(loaded, PROMPT, attention="none",
                         ablation=Ablation(frozenset({(layer, head)})))
        expected = np.log(single.actual_next_probs[4]) - np.log(plain.actual_next_probs[4])
        assert image[layer, head] == pytest.approx(expected, abs=1e-5)
    assert np.abs(image).max() > 1e-3
    feature.dock.grid_box.setChecked(True)
    np.testing.assert_array_equal(window.attention_panel.grid.scores, scan.delta_logprob)
    # a click on a heatmap cell selects that head
    feature.dock.heatmap._clicked(3.5, 2.5)
    assert (window.controller.selection.layer, window.controller.selection.head) == (2, 3)


def test_cancelled_scan_leaves_the_panels_as_they_were(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    feature = window.features["explorer.gui.ablation"]
    first = run_scan(qtbot, feature)
    feature.dock.grid_box.setChecked(True)
    before_image = feature.dock.heatmap.image.image.copy()
    before_label = feature.dock.scan_label.text()
    entered, gate = threading.Event(), threading.Event()

    def hold(_module, _args):
        entered.set()
        gate.wait(10)

    handle = window.controller.worker.model.model.register_forward_pre_hook(hold)
    try:
        window.controller.select_token(3)
        assert feature.start_scan() is not None
        assert entered.wait(10)
        feature.cancel_scan()
        gate.set()
        qtbot.waitUntil(lambda: feature.scan_job is None, timeout=10000)
    finally:
        handle.remove()
    assert feature.scan is first
    np.testing.assert_array_equal(feature.dock.heatmap.image.image, before_image)
    assert feature.dock.scan_label.text() == before_label
    np.testing.assert_array_equal(window.attention_panel.grid.scores, first.delta_logprob)
    assert "cancelled" in feature.dock.status.text() and feature.dock.scan_button.isEnabled()


def test_a_target_of_several_tokens_is_refused_in_the_dock(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    feature = window.features["explorer.gui.ablation"]
    feature.dock.target_edit.setText(" naïve café")
    run_scan(qtbot, feature)
    assert feature.scan is None
    assert "not one" in feature.dock.status.text() and feature.dock.scan_button.isEnabled()
    assert window.banner.isHidden()


def test_encoder_cannot_be_scanned(qtbot, window):
    load_and_run(qtbot, window, "tiny-bert", "the cat sat on the mat")
    feature = window.features["explorer.gui.ablation"]
    assert feature.start_scan() is None
    assert "encoder" in feature.dock.status.text()


def test_few_shot_window_scans_heads_for_a_label_word(qtbot, window, compare):  # noqa: F811
    from explorer.gui.ablation.fewshot import attach

    load_and_run(qtbot, window, "tiny-llama", "The cat")
    analyses = build_and_run(qtbot, compare)
    scan_panel = attach(compare)
    assert attach(compare) is scan_panel
    scan_panel.refresh()
    scan_panel.column_box.setCurrentIndex(1)
    scan_panel.label_box.setCurrentIndex(scan_panel.label_box.findText("Negative"))
    assert scan_panel.start() is not None
    qtbot.waitUntil(lambda: scan_panel.job is None, timeout=60000)
    scan = scan_panel.scan
    assert scan is not None, scan_panel.status.text()
    result = analyses[1].result
    label = {s.label: s for s in analyses[1].label_sums}["Negative"]
    assert scan.target_id in label.ids and scan.position == result.num_tokens - 1
    loaded = plain_model(window)
    single = analyze(loaded, result.prompt, attention="none",
                     ablation=Ablation(frozenset({(1, 0)})))
    expected = np.log(single.last_probs[scan.target_id]) - np.log(result.last_probs[scan.target_id])
    assert scan_panel.heatmap.image.image[1, 0] == pytest.approx(expected, abs=1e-5)
    scan_panel.heatmap._clicked(2.5, 1.5)
    assert (compare.layer, compare.head) == (1, 2)


def test_switching_models_starts_with_no_heads_ablated(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    toggle_and_wait(qtbot, window, 2, 3, Ablation(frozenset({(2, 3)})))
    with qtbot.waitSignal(window.run_displayed, timeout=30000,
                          check_params_cb=lambda v: v.result.model_info.name == "tiny-gpt2"):
        window.load_model("tiny-gpt2")
    feature = window.features["explorer.gui.ablation"]
    assert window.controller.shown_ablation is None and window.controller.ablation is None
    assert feature.ablation.empty and window.attention_panel.grid.marked == set()
    expected = analyze(plain_model(window), PROMPT, attention="none")
    np.testing.assert_allclose(window.controller.result.last_probs, expected.last_probs, atol=1e-6)

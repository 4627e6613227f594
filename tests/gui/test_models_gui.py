"""The Model menu (check marks, Recent models, Device, Precision), hub downloads with
progress and Cancel in the status bar, the encoder-decoder stack selector and the
positional panel's two RoPE bases."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from explorer.core import positional as pos
from explorer.core.attention import head_map
from explorer.core.errors import ModelLoadError
from tests.support import tiny_models

PROMPT = "The cat sat on the mat. The dog sat on the log."
KINDS = {"smollm2": "llama", "gemma3": "gemma3", "tiny-gpt2": "gpt2", "tiny-t5": "t5",
         "tiny-bart": "bart"}


class RecordingLoad:
    """A load function for the worker: tiny models by spec, every call's options kept."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, spec, task, **options):
        self.calls.append((spec, dict(options)))
        task.progress(0.5, "Loading tiny model")
        if spec not in KINDS:
            raise ModelLoadError(f"Could not load '{spec}': unknown on purpose")
        loaded = tiny_models.loaded(KINDS[spec])
        loaded.info = replace(loaded.info, dtype=options.get("dtype", "float32"))
        return loaded


def make_window(qtbot, tmp_path, load_fn=None, settings_name="settings.ini"):
    from explorer.gui.controller import Controller
    from explorer.gui.main_window import MainWindow
    from explorer.gui.plotting import configure_pyqtgraph
    from explorer.gui.worker import EngineWorker

    configure_pyqtgraph()
    settings = QSettings(str(tmp_path / settings_name), QSettings.IniFormat)
    worker = EngineWorker(load_fn=load_fn) if load_fn else EngineWorker()
    win = MainWindow(Controller(worker), settings)
    qtbot.addWidget(win)
    win.show()
    return win


@pytest.fixture
def recorder():
    return RecordingLoad()


@pytest.fixture
def window(qtbot, tmp_path, recorder):
    win = make_window(qtbot, tmp_path, recorder)
    yield win
    win.controller.shutdown()


def load(qtbot, win, spec):
    with qtbot.waitSignal(win.controller.model_changed, timeout=30000):
        win.load_model(spec)


def run(qtbot, win, prompt=PROMPT, check=None):
    with qtbot.waitSignal(win.run_displayed, timeout=120000,
                          check_params_cb=check or (lambda v: v.result.prompt == prompt)) as blocker:
        win.prompt_panel.set_text(prompt)
        win.prompt_panel.run_now()
    return blocker.args[0]


def menu(win):
    return win.features["explorer.gui.model_menu"]


def test_the_current_model_has_the_check_mark_and_is_remembered(qtbot, window, tmp_path):
    items = menu(window)
    load(qtbot, window, "smollm2")
    window.model_menu.aboutToShow.emit()
    checked = [alias for alias, action in items.model_actions.items() if action.isChecked()]
    assert checked == ["smollm2"]
    load(qtbot, window, "gemma3")
    load(qtbot, window, "tiny-gpt2")
    window.model_menu.aboutToShow.emit()
    assert not any(action.isChecked() for action in items.model_actions.values())
    items.fill_recent()
    recent = {a.text(): a.isChecked() for a in items.recent_menu.actions()}
    assert list(recent) == ["tiny-gpt2", "gemma3", "smollm2"]  # newest first
    assert recent == {"tiny-gpt2": True, "gemma3": False, "smollm2": False}
    with qtbot.waitSignal(window.controller.model_changed, timeout=30000):
        items.recent_menu.actions()[1].trigger()  # reopen gemma3 from Recent models
    assert window.controller.model_spec == "gemma3"
    window.model_menu.aboutToShow.emit()
    assert items.model_actions["gemma3"].isChecked()
    window.settings.sync()
    again = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    assert again.value("model/recent")[:3] == ["gemma3", "tiny-gpt2", "smollm2"]


def test_device_and_precision_reload_the_model_and_show_in_the_status_bar(qtbot, window, recorder):
    load(qtbot, window, "tiny-gpt2")
    assert recorder.calls[-1][1] == {"device": "auto", "dtype": "float32", "device_fallback": True}
    assert window.model_label.text().endswith("· cpu float32")
    with qtbot.waitSignal(window.controller.model_changed, timeout=30000):
        menu(window).dtype_actions["bfloat16"].trigger()
    assert recorder.calls[-1] == ("tiny-gpt2", {"device": "auto", "dtype": "bfloat16",
                                                "device_fallback": True})
    assert window.model_label.text().endswith("· cpu bfloat16")
    assert menu(window).dtype_actions["bfloat16"].isChecked()
    with qtbot.waitSignal(window.controller.model_changed, timeout=30000):
        menu(window).device_actions["cuda"].trigger()  # no CUDA here: the CPU, and a note
    assert recorder.calls[-1][1]["device"] == "cuda"
    note = "CUDA GPU is not available on this machine; the model runs on the CPU instead."
    assert window.statusBar().currentMessage() == note and window.model_label.toolTip() == note
    assert window.settings.value("model/device") == "cuda"


def test_stack_selector_switches_encoder_decoder_and_cross(qtbot, window):
    selector = window.features["explorer.gui.seq2seq_stacks"]
    load(qtbot, window, "tiny-gpt2")
    assert selector.toolbar.isHidden()
    load(qtbot, window, "tiny-t5")
    assert not selector.toolbar.isHidden()
    view = run(qtbot, window, "The cat sat on the mat.")
    source = view.result.key_tokens
    assert source is not None and view.result.tokens[0] == "<|endoftext|>"  # cross by default
    with qtbot.waitSignal(window.run_displayed, timeout=120000,
                          check_params_cb=lambda v: v.result.key_tokens is None
                          and not v.result.has_next_token) as blocker:
        selector.stack_box.setCurrentIndex(0)  # encoder self-attention
    encoder = blocker.args[0].result
    assert encoder.tokens == source and encoder.model_info.layers == 2
    assert window.tokens_panel.chips.model().rowCount() == len(source)
    s = window.controller.selection
    np.testing.assert_allclose(window.attention_panel.shown_map, head_map(encoder, s.layer, s.head))
    record = selector.record
    np.testing.assert_array_equal(encoder.attentions, record.encoder_attentions)
    with qtbot.waitSignal(window.run_displayed, timeout=120000,
                          check_params_cb=lambda v: v.result.has_next_token
                          and v.result.key_tokens is None) as blocker:
        selector.target_edit.setText("The dog sat")
        selector.stack_box.setCurrentIndex(1)  # decoder self-attention, with bars
    decoder = blocker.args[0].result
    assert selector.record.target == "The dog sat" and decoder.tokens == selector.record.decoder_tokens
    assert decoder.model_info.layers == 3
    position = window.controller.selection.token
    probs = window.probability_panel.shown_probs
    np.testing.assert_array_equal(probs, selector.record.topk_probs[position, : len(probs)])


def test_positional_panel_shows_local_and_global_rope_bases(qtbot, window):
    load(qtbot, window, "tiny-gpt2")
    run(qtbot, window)
    panel = window.positional_panel
    assert panel.rope_box.isHidden()
    load(qtbot, window, "gemma3")
    view = run(qtbot, window, PROMPT + " ")
    info = view.result.model_info
    assert not panel.rope_box.isHidden() and panel.rope_box.count() == 2
    assert "base 10,000" in panel.rope_box.itemText(0) and "base 1,000,000" in panel.rope_box.itemText(1)
    n = view.result.num_tokens
    local, global_ = info.rope_groups
    np.testing.assert_allclose(panel.table, np.cos(pos.rope_angles(n, np.asarray(local.inv_freq))),
                               rtol=1e-6)
    assert "<b>local (sliding window): base 10,000" in panel.formula.text()
    panel.rope_box.setCurrentIndex(1)
    np.testing.assert_allclose(panel.table, np.cos(pos.rope_angles(n, np.asarray(global_.inv_freq))),
                               rtol=1e-6)
    assert "base = 1,000,000" in panel.formula.text()
    assert "<b>global (full attention): base 1,000,000, layers 5</b>" in panel.formula.text()
    # the two bases draw different tables: the global layers rotate slower
    assert not np.allclose(panel.table, np.cos(pos.rope_angles(n, np.asarray(local.inv_freq))))


def test_a_long_table_of_each_rope_group_draws_its_own_rows(qtbot, window, monkeypatch):
    from explorer.gui.panels import positional_panel

    monkeypatch.setattr(positional_panel, "HEAT_ROWS", 8)
    load(qtbot, window, "gemma3")
    view = run(qtbot, window, PROMPT + " ")
    panel, n = window.positional_panel, view.result.num_tokens
    middles = ((np.arange(8) + 0.5) * n / 8).astype(int)
    window.controller.select_token(int(middles[2]) + 1)  # a position no row shows
    for index, group in enumerate(view.result.model_info.rope_groups):  # local, then global
        panel.rope_box.setCurrentIndex(index)
        angles = pos.rope_angles(n, np.asarray(group.inv_freq))
        np.testing.assert_allclose(panel.heat.image, np.cos(angles[middles]), rtol=1e-6)
        np.testing.assert_allclose(panel.shown_vector(), np.cos(angles[middles[2] + 1]), rtol=1e-6)


def test_hub_download_shows_bytes_and_cancel_keeps_the_previous_model(qtbot, tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    from explorer.backend import hub
    from tests.support.fake_hub import FakeHub

    repo = tmp_path / "repo"
    model = tiny_models.tiny_gpt2()
    model.config.architectures = ["GPT2LMHeadModel"]
    model.save_pretrained(repo)
    tiny_models.byte_level_tokenizer().save_pretrained(repo)
    server = FakeHub().start()
    server.add_repo("tester/tiny-gpt2", repo)
    server.chunk = 1024
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("ATTENTION_EXPLORER_CACHE", str(tmp_path / "ae-cache"))
    monkeypatch.setattr(hub, "CHUNK_BYTES", 1024)
    win = make_window(qtbot, tmp_path)  # the real loader
    try:
        stages: list[str] = []
        win.controller.load_state.connect(lambda loading, f, stage: stages.append(stage))

        def cancel_when_downloading(loading, fraction, stage):
            if stage.startswith("Downloading model.safetensors") and win.cancel_button.isVisible():
                assert win.progress.isVisible() and "Downloading" in win.progress.format()
                win.cancel_button.click()

        win.controller.load_state.connect(cancel_when_downloading)
        with qtbot.waitSignal(win.controller.load_state, timeout=60000,
                              check_params_cb=lambda loading, f, s: not loading):
            win.load_model("tester/tiny-gpt2")
        assert stages[-1] == "Load cancelled" and win.controller.model_info is None
        assert any(" kB / " in s for s in stages)
        assert hub.downloaded("tester/tiny-gpt2") is None
        win.controller.load_state.disconnect(cancel_when_downloading)
        with qtbot.waitSignal(win.controller.model_changed, timeout=60000):
            win.load_model("tester/tiny-gpt2")
        assert win.model_label.text().startswith("tester/tiny-gpt2: 2 layers")
        assert hub.downloaded("tester/tiny-gpt2") is not None
        assert menu(win).recent()[0] == "tester/tiny-gpt2"
    finally:
        win.controller.shutdown()
        server.stop()

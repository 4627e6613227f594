"""Sessions, autosave, exports and consent in the window."""

import json

from PySide6.QtCore import QSettings

from explorer.core.session import read_session
from explorer.gui.controller import Controller
from explorer.gui.main_window import MainWindow
from explorer.gui.worker import EngineWorker
from tests.gui.conftest import fake_load, load_and_run

PROMPT = "The cat sat on the mat."


def test_save_and_open_restores_prompt_model_and_selection(qtbot, window, tmp_path):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    window.controller.select_head(2, 1)
    window.controller.select_token(3)
    window.controller.set_options(hide_first=True)
    path = window.sessions.save(tmp_path / "s.json")
    saved = read_session(path)
    assert saved.model.spec == "tiny-llama" and saved.prompt == PROMPT
    assert (saved.selection.layer, saved.selection.head, saved.selection.token) == (2, 1, 3)

    load_and_run(qtbot, window, "tiny-gpt2", "Something else entirely")
    window.controller.set_options(hide_first=False)  # differs from the session's options
    with qtbot.waitSignal(window.run_displayed, timeout=30000,
                          check_params_cb=lambda v: v.result.prompt == PROMPT):
        assert window.open_session(str(path))
    qtbot.waitUntil(lambda: window.controller.selection.token == 3)
    s = window.controller.selection
    assert (s.layer, s.head, s.hide_first) == (2, 1, True)
    assert window.controller.model_info.name == "tiny-llama"
    assert window.prompt_panel.text() == PROMPT
    assert str(path.resolve()) in window.sessions.recent()


def test_bad_session_changes_nothing(qtbot, window, tmp_path):
    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    before = (window.prompt_panel.text(), window.controller.selection, window.controller.model_info)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "attention-explorer-session", "version": 1, "model": {"spec": "tiny-ll')
    future = tmp_path / "future.json"
    future.write_text(json.dumps({"format": "attention-explorer-session", "version": 7,
                                  "model": {"spec": "tiny-llama"}}))
    for path, reason in ((bad, "not complete JSON"), (future, "newer"), (tmp_path / "gone.json", "No such")):
        assert not window.open_session(str(path))
        assert reason in window.banner.label.text()
        assert (window.prompt_panel.text(), window.controller.selection, window.controller.model_info) == before


def test_session_with_bad_view_settings_is_refused_and_changes_nothing(qtbot, window, tmp_path):
    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    before = (window.prompt_panel.text(), window.controller.selection, window.controller.model_info)
    base = {"format": "attention-explorer-session", "version": 1, "model": {"spec": "tiny-llama"},
            "prompt": "CHANGED PROMPT"}
    cases = {
        "huge.json": json.dumps({**base, "generation": {"max_new_tokens": 1e20}}),
        "negative.json": json.dumps({**base, "comparison": {"layer": -50, "head": 0, "query_token": 0}}),
        "nan.json": json.dumps(base)[:-1] + ', "generation": {"temperature": NaN}}',
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        assert not window.open_session(str(path)), name
        assert window.banner.isVisible()
        now = (window.prompt_panel.text(), window.controller.selection, window.controller.model_info)
        assert now == before, name
    assert "out-of-range number" in window.banner.label.text() or "not a number" in window.banner.label.text()


def test_a_session_cannot_load_a_pickle_model_without_consent(qtbot, window, tmp_path):
    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    path = tmp_path / "pickled.json"
    path.write_text(json.dumps({"format": "attention-explorer-session", "version": 1,
                                "model": {"spec": "pickled-gpt2", "allow_pickle": True,
                                          "trust_remote_code": True},
                                "prompt": "The dog"}))
    asked = []
    window.ask_consent = lambda spec, option, text: asked.append((spec, option)) or False
    with qtbot.waitSignal(window.controller.consent_needed, timeout=30000):
        assert window.open_session(str(path))
    assert asked == [("pickled-gpt2", "allow_pickle")]
    assert window.controller.model_info.name == "tiny-gpt2"
    assert window.controller.model_spec == "tiny-gpt2"


def test_prompt_autosave_survives_without_close(qtbot, window, tmp_path):
    window.prompt_panel.set_text("unsaved words")
    saved = tmp_path / "settings.prompt.txt"
    qtbot.waitUntil(lambda: saved.exists() and saved.read_text() == "unsaved words", timeout=5000)
    # the next window on the same settings (as after a crash) starts from it
    again = MainWindow(Controller(EngineWorker(load_fn=fake_load)),
                       QSettings(window.settings.fileName(), QSettings.IniFormat))
    qtbot.addWidget(again)
    assert again.last_prompt() == "unsaved words"
    again.close()


def test_pickle_model_needs_consent(qtbot, window):
    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    asked = []
    window.ask_consent = lambda spec, option, text: asked.append(option) or False
    with qtbot.waitSignal(window.controller.consent_needed):
        window.load_model("pickled-gpt2")
    assert asked == ["allow_pickle"]
    assert window.controller.model_info.name == "tiny-gpt2" and window.banner.isVisible()
    window.ask_consent = lambda spec, option, text: True
    with qtbot.waitSignal(window.controller.model_changed, timeout=30000):
        window.load_model("pickled-gpt2")
    assert window.controller.model_spec == "pickled-gpt2"

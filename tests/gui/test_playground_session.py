"""A saved session brings the Playground's generated text back (regenerated from the saved
seeds, see explorer.core.replay), and the seed box stays usable with "random" ticked."""

from __future__ import annotations

import json

import pytest

from explorer.core.session import SessionError
from tests.gui.conftest import WAIT_MS, load_and_run


def open_playground(window):
    panel = window.features["explorer.gui.playground"]
    if not panel.dock.isVisible():
        panel.dock.toggleViewAction().trigger()
    return panel


def generate(qtbot, window, panel):
    before = len(panel.branches)
    with qtbot.waitSignal(window.run_displayed, timeout=WAIT_MS,
                          check_params_cb=lambda v: len(panel.branches) > before):
        panel.generate()
    return panel.branch


def two_branches(qtbot, window):
    """A sampled run with a random seed, and a branch continued with another token."""
    load_and_run(qtbot, window, "tiny-llama", "The cat sat")
    panel = open_playground(window)
    panel.editor.setPlainText("Once upon a time")
    panel.controls.max_new_tokens.setValue(12)
    panel.controls.temperature.setValue(1.2)
    panel.controls.random_seed.setChecked(True)
    first = generate(qtbot, window, panel).result
    step = first.steps[4]
    alternative = next(int(t) for t in step.raw_top_ids if int(t) != step.token_id)
    before = len(panel.branches)
    with qtbot.waitSignal(window.run_displayed, timeout=WAIT_MS,
                          check_params_cb=lambda v: len(panel.branches) > before):
        assert panel.continue_with(4, alternative)
    return panel, [b.result for b in panel.branches]


def test_a_session_restores_the_generated_branches(qtbot, window, tmp_path):
    panel, results = two_branches(qtbot, window)
    texts = [r.completion for r in results]
    shown = panel.view.toPlainText()
    assert texts[0] != texts[1] and results[1].steps[4].forced
    path = tmp_path / "session.json"
    window.sessions.save(path)
    saved = json.loads(path.read_text())["generation"]
    assert [b["parent"] for b in saved["branches"]] == [None, 0]
    assert saved["branches"][0]["settings"]["seed"] == results[0].settings.seed
    assert saved["current_branch"] == 1

    load_and_run(qtbot, window, "tiny-gpt2", "Something else")  # a new model clears the Playground
    assert panel.branches == [] and panel.view.toPlainText() == ""
    with qtbot.waitSignal(window.controller.model_changed, timeout=WAIT_MS):
        assert window.open_session(str(path))
    qtbot.waitUntil(lambda: len(panel.branches) == 2 and panel.job is None, timeout=WAIT_MS)
    restored = [b.result for b in panel.branches]
    assert [r.completion for r in restored] == texts
    assert [r.generated_ids for r in restored] == [r.generated_ids for r in results]
    for old, new in zip(results, restored, strict=True):  # every probability comes back too
        assert [s.raw_prob for s in new.steps] == pytest.approx([s.raw_prob for s in old.steps], rel=1e-6)
    assert panel.current == 1 and panel.branch_box.count() == 2
    assert panel.view.toPlainText() == shown  # the completion view draws branch 2 again
    assert "same text as when the session was saved" in panel.status.text()


def test_a_replay_that_comes_out_differently_says_so(qtbot, window, tmp_path):
    panel, results = two_branches(qtbot, window)
    path = tmp_path / "session.json"
    window.sessions.save(path)
    data = json.loads(path.read_text())
    data["generation"]["branches"][0]["generated_ids"][0] += 1  # as if another model made it
    path.write_text(json.dumps(data))
    load_and_run(qtbot, window, "tiny-gpt2", "Something else")
    with qtbot.waitSignal(window.controller.model_changed, timeout=WAIT_MS):
        assert window.open_session(str(path))
    qtbot.waitUntil(lambda: len(panel.branches) == 2 and panel.job is None, timeout=WAIT_MS)
    assert "Branch 1 came out differently" in panel.status.text()


def test_a_malformed_branch_refuses_the_session_before_anything_changes(qtbot, window, tmp_path):
    panel, _ = two_branches(qtbot, window)
    path = tmp_path / "session.json"
    window.sessions.save(path)
    data = json.loads(path.read_text())
    data["generation"]["branches"][1]["parent"] = 5  # no such earlier branch
    path.write_text(json.dumps(data))
    prompt = window.prompt_panel.text()
    assert not window.open_session(str(path))
    assert "parent must be an earlier branch" in window.banner.message
    assert window.prompt_panel.text() == prompt and len(panel.branches) == 2
    with pytest.raises(SessionError):
        window.sessions.open(path)


def test_with_random_ticked_the_seed_stays_editable_and_shows_the_last_one(qtbot, window):
    load_and_run(qtbot, window, "tiny-llama", "The cat sat")
    panel = open_playground(window)
    controls = panel.controls
    controls.random_seed.setChecked(True)
    assert controls.seed.isEnabled()  # not greyed out
    panel.controls.max_new_tokens.setValue(3)
    result = generate(qtbot, window, panel).result
    assert controls.seed.value() == result.settings.seed and controls.random_seed.isChecked()
    controls.seed.setValue(1234)  # typing a seed means "use this one"
    assert not controls.random_seed.isChecked() and controls.settings().seed == 1234

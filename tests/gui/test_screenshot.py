"""The headless capture mode: open, run, select, save PNG, exit 0 (2 on bad input)."""

import os
import subprocess
import sys

import pytest
from PySide6.QtGui import QImage


def capture(*args, timeout=300, config_home=None, temp=None):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1")
    if config_home is not None:
        env["XDG_CONFIG_HOME"] = str(config_home)
    if temp is not None:  # the folder of the capture's own settings
        temp.mkdir(exist_ok=True)
        env["TMPDIR"] = str(temp)
    return subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_screenshot_of_a_local_folder(tiny_gpt2_folder, tmp_path):
    out = tmp_path / "shots" / "window.png"
    config, temp = tmp_path / "config", tmp_path / "temp"
    proc = capture("--model", str(tiny_gpt2_folder), "--prompt", "The cat sat on the mat",
                   "--select-token", "2", "--layer", "1", "--head", "3", "--screenshot", str(out),
                   config_home=config, temp=temp)
    assert proc.returncode == 0, proc.stderr
    assert not any(config.rglob("*")), "a capture must not change the user's saved settings"
    assert not any(temp.iterdir()), f"the capture left {list(temp.iterdir())} behind"
    image = QImage(str(out))
    assert not image.isNull() and image.width() >= 800 and image.height() >= 600


def test_screenshot_with_out_of_range_selection_fails_cleanly(tiny_gpt2_folder, tmp_path):
    out = tmp_path / "bad.png"
    proc = capture("--model", str(tiny_gpt2_folder), "--prompt", "The cat", "--layer", "99",
                   "--screenshot", str(out))
    assert proc.returncode == 2
    assert "--layer 99 is out of range" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_screenshot_with_a_missing_model_fails_cleanly(tmp_path):
    temp = tmp_path / "temp"
    proc = capture("--model", str(tmp_path / "missing"), "--prompt", "x", "--screenshot",
                   str(tmp_path / "x.png"), temp=temp)
    assert proc.returncode == 2 and "No such file" in proc.stderr
    assert not any(temp.iterdir()), f"the capture left {list(temp.iterdir())} behind"


@pytest.mark.embedded
def test_screenshot_on_smollm2(tmp_path):
    out = tmp_path / "smollm2.png"
    proc = capture("--prompt", "Classify this review: I loved this movie! Sentiment:",
                   "--select-token", "3", "--layer", "5", "--head", "4", "--screenshot", str(out))
    assert proc.returncode == 0, proc.stderr
    assert not QImage(str(out)).isNull()


def test_session_with_screenshot(tiny_gpt2_folder, tmp_path):
    from explorer.core.selection import Selection
    from explorer.core.session import ModelRef, Session, write_session

    session = write_session(Session(ModelRef(str(tiny_gpt2_folder)), "The dog sat on the log",
                                    Selection(token=2, layer=1, head=2)), tmp_path / "s.json")
    out = tmp_path / "from-session.png"
    proc = capture("--session", str(session), "--screenshot", str(out))
    assert proc.returncode == 0, proc.stderr
    assert not QImage(str(out)).isNull()
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    proc = capture("--session", str(broken), "--screenshot", str(tmp_path / "no.png"))
    assert proc.returncode == 2 and "not complete JSON" in proc.stderr


def test_capture_applies_token_layer_and_head_in_the_scene_and_the_pixels(qtbot, window, tmp_path):
    """The capture mode's own code path, in this process: the saved PNG shows the selected
    row outlined in red at --select-token, and the panels draw --layer/--head."""
    import argparse

    import numpy as np
    from PySide6.QtCore import QPointF, QRectF
    from PySide6.QtGui import QColor

    from explorer.gui.app import ScreenshotRun
    from tests.gui.conftest import load_and_run

    out = tmp_path / "capture.png"
    finished = []
    capture = ScreenshotRun(window, argparse.Namespace(select_token=5, layer=2, head=1), out,
                            finish=lambda: finished.append(True))
    view = load_and_run(qtbot, window, "tiny-llama", "The cat sat on the mat today.")
    qtbot.waitUntil(lambda: bool(finished), timeout=30000)
    assert capture.exit_code == 0 and out.is_file()
    s = window.controller.selection
    assert (s.token, s.layer, s.head) == (5, 2, 1)
    panel = window.attention_panel
    n = view.result.num_tokens
    assert panel.row_highlight.rect() == QRectF(0, 5, n, 1)
    assert "layer 2, head 1" in panel.title.text()
    assert window.probability_panel.shown_position == 5

    # pixels: along the top edge of the selected row (row 5 of the map), the red outline
    image = QImage(str(out))
    assert (image.width(), image.height()) == (window.width(), window.height())
    box = panel.map_image.getViewBox()

    def window_point(x: float, y: float):
        scene = box.mapViewToScene(QPointF(x, y))
        return panel.map_widget.mapTo(window, panel.map_widget.mapFromScene(scene))

    def red_near(x: float, y: float) -> bool:
        p = window_point(x, y)
        for dy in range(-2, 3):
            c = QColor(image.pixel(p.x(), p.y() + dy))
            if c.red() > 200 and c.green() < 110 and c.blue() < 110:
                return True
        return False

    columns = np.linspace(0.5, n - 0.5, 7)
    assert all(red_near(x, 5.0) for x in columns)  # the outline's top edge is at row 5
    assert not any(red_near(x, 2.0) for x in columns)  # and not at another row


def test_the_app_hands_the_gil_back_to_the_window_quickly():
    """A waiting thread gets the GIL after 0.5 ms, not Python's 5 ms: the window waits for
    it at every call into Qt while the worker runs Python (docs/long-prompts.md has the
    blocks measured both ways)."""
    code = ("import sys; from explorer.gui.app import application; before = sys.getswitchinterval(); "
            "application(); print(before, sys.getswitchinterval())")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    before, after = (float(v) for v in done.stdout.split())
    assert before == pytest.approx(0.005) and after <= 0.001


def test_an_open_window_applies_token_layer_and_head_from_the_command_line(qtbot, window):
    """Without --screenshot the flags select too; the panels draw that head and row."""
    import argparse

    from PySide6.QtCore import QRectF

    from explorer.gui.app import StartSelection
    from tests.gui.conftest import load_and_run

    start = StartSelection(window, argparse.Namespace(select_token=4, layer=1, head=2),
                           window.banner.show_message)
    view = load_and_run(qtbot, window, "tiny-llama", "The cat sat on the mat today.")
    qtbot.waitUntil(lambda: not window.stages.busy, timeout=30000)
    panel = window.attention_panel
    assert panel.row_highlight.rect() == QRectF(0, 4, view.result.num_tokens, 1)
    assert "layer 1, head 2" in panel.title.text()
    assert window.probability_panel.shown_position == 4 and start.done


def test_an_open_window_says_a_flag_is_out_of_range_and_keeps_its_selection(qtbot, window):
    import argparse

    from explorer.gui.app import StartSelection
    from tests.gui.conftest import load_and_run

    start = StartSelection(window, argparse.Namespace(select_token=None, layer=99, head=None),
                           window.banner.show_message)
    view = load_and_run(qtbot, window, "tiny-llama", "The cat sat on the mat today.")
    assert window.banner.isVisible()
    assert "--layer 99 is out of range" in window.banner.label.text()
    assert start.done
    shown = window.controller.selection  # the window's own: the last token, layer 0, head 0
    assert (shown.token, shown.layer, shown.head) == (view.result.num_tokens - 1, 0, 0)
    assert "layer 0, head 0" in window.attention_panel.title.text()


def test_opening_the_window_from_the_command_line_applies_the_flags(qtbot, window, monkeypatch):
    """``_open_window`` (no --screenshot) makes and holds the selection until its run."""
    import argparse

    from explorer.gui import app as app_module

    monkeypatch.setattr(app_module, "MainWindow", lambda settings=None: window)
    args = argparse.Namespace(screenshot=None, session=None, device=None, dtype=None,
                              model="tiny-llama", trust_remote_code=False, allow_pickle=False,
                              select_token=3, layer=2, head=1)

    class EventLoop:  # app.exec(): until the run is shown and selected
        def exec(self) -> int:
            import gc

            gc.collect()  # an object nothing holds would go now
            qtbot.waitUntil(lambda: window.controller.view is not None
                            and window.controller.selection.token == 3
                            and not window.stages.busy, timeout=30000)
            return 0

    assert app_module._open_window(EventLoop(), args, "The cat sat on the mat today.", None) == 0
    s = window.controller.selection
    assert (s.token, s.layer, s.head) == (3, 2, 1)
    assert "layer 2, head 1" in window.attention_panel.title.text()


def test_flags_are_dropped_when_the_first_load_or_run_fails(qtbot, window):
    """An error before the first run (here: the model does not load) drops the flags: the
    run shown later, perhaps of another model, keeps the window's own selection."""
    import argparse

    from explorer.gui.app import StartSelection
    from tests.gui.conftest import load_and_run

    start = StartSelection(window, argparse.Namespace(select_token=2, layer=1, head=3),
                           window.banner.show_message)
    window.controller.error.emit("The model could not be loaded.")
    view = load_and_run(qtbot, window, "tiny-llama", "The cat sat on the mat today.")
    s = window.controller.selection
    assert start.done and (s.token, s.layer, s.head) == (view.result.num_tokens - 1, 0, 0)

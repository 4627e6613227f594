"""GUI fixtures: a main window whose worker loads tiny in-memory models."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from explorer.core.errors import ModelLoadError, UnsafeModelError
from tests.support import tiny_models

TINY = {"tiny-gpt2": "gpt2", "tiny-llama": "llama", "tiny-bert": "bert",
        "tiny-llama-long": "llama-long"}


def fake_load(spec: str, task, **options):
    task.progress(0.5, "Loading tiny model")
    if spec == "pickled-gpt2":
        if not options.get("allow_pickle"):
            raise UnsafeModelError("only pickle weights", option="allow_pickle")
        spec = "tiny-gpt2"
    if spec not in TINY:
        raise ModelLoadError(f"Could not load '{spec}': broken on purpose")
    return tiny_models.loaded(TINY[spec])


@pytest.fixture
def attention_mode():
    """How runs keep attention; test modules parametrise it over "full" and "lazy"."""
    return "auto"


@pytest.fixture
def window(qtbot, tmp_path, attention_mode):
    from explorer.gui.controller import Controller
    from explorer.gui.main_window import MainWindow
    from explorer.gui.plotting import configure_pyqtgraph
    from explorer.gui.worker import EngineWorker

    configure_pyqtgraph()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    controller = Controller(EngineWorker(load_fn=fake_load))
    controller.attention_mode = attention_mode
    win = MainWindow(controller, settings)
    qtbot.addWidget(win)
    win.show()
    yield win
    controller.shutdown()


def load_and_run(qtbot, win, spec: str, prompt: str):
    """Load ``spec``, run ``prompt`` and return the RunView once every panel drew it."""
    with qtbot.waitSignal(win.controller.model_changed, timeout=120000):
        win.load_model(spec)
    with qtbot.waitSignal(win.run_displayed, timeout=120000,
                          check_params_cb=lambda v: v.result.prompt == prompt) as blocker:
        win.prompt_panel.set_text(prompt)
        win.prompt_panel.run_now()
    return blocker.args[0]

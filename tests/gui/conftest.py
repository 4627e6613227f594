"""GUI fixtures: a main window whose worker loads tiny in-memory models."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QObject, QSettings

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


WAIT_MS = 120_000  # generous: the first load imports torch, ~30 s on a busy 2-core machine


def load_and_run(qtbot, win, spec: str, prompt: str):
    """Load ``spec``, run ``prompt`` and return the RunView once every panel drew it."""
    with qtbot.waitSignal(win.controller.model_changed, timeout=WAIT_MS):
        win.load_model(spec)
    with qtbot.waitSignal(win.run_displayed, timeout=WAIT_MS,
                          check_params_cb=lambda v: v.result.prompt == prompt) as blocker:
        win.prompt_panel.set_text(prompt)
        win.prompt_panel.run_now()
    drain_worker(qtbot, win)
    return blocker.args[0]


def drain_worker(qtbot, win) -> None:
    """Wait until the worker finished every job queued so far (the lens and atlas queue
    theirs when a run is shown). Tests then call the model on this thread without racing
    a job that switches its attention kernel."""
    done: list[bool] = []
    win.controller.submit(lambda model, task, emit: None, on_done=lambda _: done.append(True),
                          on_error=lambda *_: done.append(False))
    qtbot.waitUntil(lambda: bool(done), timeout=WAIT_MS)
    view = win.controller.view  # a long run's next-token rows come in steps after it is shown
    qtbot.waitUntil(lambda: view is None or not view.result.next_tokens_pending, timeout=WAIT_MS)


class PaintLog(QObject):
    """An event filter that appends ``paint <name>`` to ``log`` on every paint event."""

    def __init__(self, log: list[str], name: str) -> None:
        super().__init__()
        self.log, self.name = log, name

    def eventFilter(self, _watched, event) -> bool:  # noqa: N802
        if event.type() == QEvent.Paint:
            self.log.append(f"paint {self.name}")
        return False

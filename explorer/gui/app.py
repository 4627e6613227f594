"""QApplication bootstrap, and the headless capture mode (--screenshot)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from explorer.gui.main_window import DEFAULT_PROMPT, DEFAULT_SIZE, MainWindow
from explorer.gui.plotting import configure_pyqtgraph
from explorer.gui.run_view import RunView

SCREENSHOT_TIMEOUT_MS = 10 * 60 * 1000


GIL_SWITCH_SECONDS = 0.0005
"""How long a thread holding the GIL keeps it while another waits (Python's default is
5 ms). The GUI thread gives the GIL up at every call into Qt and waits up to this long to
get it back whenever the worker runs Python code (tokenizer loops, result assembly, the
glue between numpy calls). At 5 ms one paint waited for it dozens of times: the window
froze for 0.34–0.48 s when a long run's rows were finished, at 8,192 tokens; at 0.5 ms the
longest block of the same run was 0.11 s, and first panels came no later."""


def application() -> QApplication:
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Attention Explorer")
    app.setOrganizationName("AttentionExplorer")
    configure_pyqtgraph()
    return app  # type: ignore[return-value]


class StartSelection:
    """``--select-token``, ``--layer`` and ``--head``: applied to the first run the window
    shows. A value out of range goes to ``fail(message)`` (a capture exits 2 on it; an open
    window shows it in its error banner and keeps the selection it has); ``applied`` is
    called once the selection is made (also when none was asked for). An error before that
    run (the model or the run failed) drops them: they are not kept for a later run,
    perhaps of another model. The caller holds the object (Qt keeps no reference to it)."""

    def __init__(self, window: MainWindow, args: argparse.Namespace,
                 fail: Callable[[str], None], applied: Callable[[], None] | None = None) -> None:
        self.window, self.args, self.fail, self.applied = window, args, fail, applied
        self.done = False
        window.run_displayed.connect(self._on_displayed)
        window.controller.error.connect(self._drop)

    def _drop(self, _message: str) -> None:
        self.done = True

    def _on_displayed(self, view: RunView) -> None:
        if self.done:
            return
        self.done = True
        info, n = view.result.model_info, view.result.num_tokens
        a, c = self.args, self.window.controller
        token, layer, head = (getattr(a, name, None) for name in ("select_token", "layer", "head"))
        for name, value, limit in (("--select-token", token, n), ("--layer", layer, info.layers),
                                   ("--head", head, info.heads)):
            if value is not None and not 0 <= value < limit:
                self.fail(f"{name} {value} is out of range (0..{limit - 1}).")
                return
        if layer is not None or head is not None:
            c.select_head(layer if layer is not None else 0, head if head is not None else 0)
        if token is not None:
            c.select_token(token)
        if self.applied is not None:
            self.applied()


class ScreenshotRun:
    """Open, run, apply the selection, save the window as PNG, exit. Exit code 2 on failure.

    ``finish`` ends the capture (default: quit the application; tests pass their own)."""

    def __init__(self, window: MainWindow, args: argparse.Namespace, out: Path,
                 finish: Callable[[], None] | None = None) -> None:
        self.window, self.args, self.out = window, args, out
        self.finish = finish or (lambda: QApplication.instance().quit())
        self.exit_code = 2
        # saved 300 ms after the selection: the panels paint once
        self.selection = StartSelection(window, args, self._fail,
                                        lambda: QTimer.singleShot(300, self._save))
        window.controller.error.connect(self._fail)
        QTimer.singleShot(SCREENSHOT_TIMEOUT_MS, lambda: self._fail("timed out"))

    def _save(self) -> None:
        QApplication.processEvents()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.window.stages.flush()  # every panel painted with what it holds
        if self.window.grab().save(str(self.out), "PNG"):
            print(f"saved {self.out}", file=sys.stderr)
            self.exit_code = 0
        else:
            print(f"error: could not write {self.out}", file=sys.stderr)
        self.finish()

    def _fail(self, message: str) -> None:
        if self.exit_code == 0:
            return
        print(f"error: {message}", file=sys.stderr)
        self.exit_code = 2
        QTimer.singleShot(0, self.finish)  # leave the signal handler first


def choose_platform(screenshot: bool) -> str | None:
    """Pick Qt's platform when there is no screen; returns an error message or None."""
    if os.environ.get("QT_QPA_PLATFORM") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    if screenshot or sys.platform in ("win32", "darwin"):
        if screenshot:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        return None
    return ("no display found (DISPLAY is not set). Run under a desktop session or Xvfb "
            "(xvfb-run attention-explorer), or use --screenshot OUT.png for a headless capture.")


def run_gui(args: argparse.Namespace, prompt: str | None) -> int:
    problem = choose_platform(bool(args.screenshot))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    app = application()
    if not args.screenshot:
        return _open_window(app, args, prompt, None)
    # a capture must neither read nor change the user's saved state: a settings file of
    # its own, removed afterwards
    with tempfile.TemporaryDirectory(prefix="attention-explorer-capture-",
                                     ignore_cleanup_errors=True) as scratch:
        settings = QSettings(os.path.join(scratch, "settings.ini"), QSettings.IniFormat)
        code = _open_window(app, args, prompt, settings)
        settings.sync()  # now, not when the folder is gone (Qt would make it again)
    return code


def _open_window(app: QApplication, args: argparse.Namespace, prompt: str | None,
                 settings: QSettings | None) -> int:
    """Build the window (``settings``: None for the user's own), load the model, run the
    prompt, apply the command line's selection, and run ``app`` until it quits."""
    window = MainWindow(settings=settings)
    if args.screenshot:  # no physical screen to fit: captures keep the documented size
        window.resize(DEFAULT_SIZE)
    if prompt is None:
        prompt = DEFAULT_PROMPT if args.screenshot else window.last_prompt()
    window.prompt_panel.set_text(prompt)
    capture = ScreenshotRun(window, args, args.screenshot) if args.screenshot else None
    if capture is not None:  # no dialogs headless: consent only from the command line
        window.ask_consent = lambda spec, option, explanation: bool(getattr(args, option, False))
    # held by this frame while the window runs
    selection = None if capture is not None else StartSelection(window, args,
                                                                window.banner.show_message)
    window.show()
    if args.session is not None:
        from explorer.core.session import read_session

        try:
            session = read_session(args.session)
        except Exception as exc:  # SessionError: a clear message, nothing changed
            print(f"error: {exc}", file=sys.stderr)
            window.close()
            return 2
        window.sessions.apply(session)
    else:
        menu = window.features.get("explorer.gui.model_menu")
        if menu is not None and (args.device or args.dtype):
            menu.set_options(device=args.device, dtype=args.dtype, reload=False)
        window.load_model(args.model, trust_remote_code=args.trust_remote_code, allow_pickle=args.allow_pickle)
        window.controller.run_prompt(window.prompt_panel.text())
    code = app.exec()
    del selection  # (held until here: the run it waits for can come at any time)
    if capture is not None:
        window.close()
        return capture.exit_code
    return code

"""Session save/open for the main window, recent sessions, and the prompt autosave."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, QSettings, QTimer

from explorer.core.selection import Selection
from explorer.core.session import ModelRef, Session, SessionError, read_session, write_session
from explorer.gui.prompt_autosave import PromptAutosave, autosave_path

MAX_RECENT = 8
AUTOSAVE_MS = 1000


class SessionHost(Protocol):
    """What a session needs from the window (the main window provides it; this module never
    imports it, so the two do not import each other)."""

    prompt_panel: Any  # PromptPanel
    controller: Any  # Controller
    run_displayed: Any  # Signal(RunView)

    def session_extras(self) -> dict: ...
    def apply_session_extras(self, extras: dict) -> None: ...
    def load_model(self, spec: str, **options: bool) -> None: ...


class SessionManager(QObject):
    """Builds a Session from the window and applies one to it."""

    def __init__(self, window: SessionHost, settings: QSettings) -> None:
        super().__init__(window)  # type: ignore[arg-type]
        self.window = window
        self.settings = settings
        self.prompt_autosave = PromptAutosave(autosave_path(settings))
        self._pending_selection: Selection | None = None
        self._pending_prompt: str | None = None
        self._expected_fingerprint: str | None = None
        self._autosave = QTimer(self, singleShot=True, interval=AUTOSAVE_MS)
        self._autosave.timeout.connect(self._autosave_in_background)
        window.prompt_panel.editor.textChanged.connect(self._autosave.start)
        window.run_displayed.connect(self._apply_pending_selection)
        window.controller.model_changed.connect(self._check_fingerprint)

    # -- autosave ------------------------------------------------------------------------
    def _autosave_in_background(self) -> None:
        """A second after the last edit: the autosave's thread writes the prompt (a flush to
        disk can take seconds; the window does not wait for it)."""
        self.prompt_autosave.save(self.window.prompt_panel.text())

    def autosave_prompt(self) -> None:
        """Save the prompt now and wait until it is on disk, after any autosave still being
        written (the window's close)."""
        self._autosave.stop()
        self.prompt_autosave.save_now(self.window.prompt_panel.text())

    def last_prompt(self) -> str | None:
        """The prompt the last session left (None when there is none)."""
        return self.prompt_autosave.load(self.settings)

    # -- save / open ---------------------------------------------------------------------
    def current(self) -> Session:
        c = self.window.controller
        spec = c.model_spec or (c.model_info.name if c.model_info else "smollm2")
        extra = self.window.session_extras()
        # the hash was computed by the worker when the model was loaded (never here:
        # hashing a multi-GB file would freeze the window)
        return Session(
            model=ModelRef(spec, c.model_info.fingerprint if c.model_info else None),
            prompt=self.window.prompt_panel.text(),
            selection=c.selection,
            comparison=extra.get("comparison", {}),
            generation=extra.get("generation", {}),
        )

    def save(self, path: str | Path) -> Path:
        written = write_session(self.current(), path)
        self.remember(written)
        return written

    def open(self, path: str | Path) -> Session:
        """Read and apply a session. Raises SessionError before changing anything."""
        session = read_session(path)
        self.apply(session)
        self.remember(Path(path))
        return session

    def apply(self, session: Session) -> None:
        w, c = self.window, self.window.controller
        self._expected_fingerprint = session.model.fingerprint
        self._pending_selection = session.selection
        self._pending_prompt = session.prompt
        try:  # the part most likely to refuse a value goes first, before anything else changes
            w.apply_session_extras({"comparison": session.comparison, "generation": session.generation})
        except (ValueError, TypeError, OverflowError, KeyError) as exc:
            self._pending_selection = None
            raise SessionError(f"The session's view settings could not be applied: {exc}") from exc
        w.prompt_panel.editor.blockSignals(True)
        w.prompt_panel.set_text(session.prompt)
        w.prompt_panel.editor.blockSignals(False)
        c.set_options(**{k: v for k, v in asdict(session.selection).items() if isinstance(v, bool)})
        if c.model_spec != session.model.spec:
            c.set_pending_prompt(session.prompt)
            w.load_model(session.model.spec)  # never with consent: the user must confirm again
        else:
            self._check_fingerprint(c.model_info)
            c.run_prompt(session.prompt)

    def _check_fingerprint(self, info: object) -> None:
        expected, self._expected_fingerprint = self._expected_fingerprint, None
        actual = getattr(info, "fingerprint", None)
        if expected and actual and expected != actual:
            self.window.controller.status.emit(
                "Note: the model file changed since the session was saved (its hash differs).")

    def _apply_pending_selection(self, view: object) -> None:
        selection = self._pending_selection
        if selection is None or getattr(getattr(view, "result", None), "prompt", None) != self._pending_prompt:
            return  # not yet the session's own run (an earlier run may still be drawn)
        self._pending_selection = None
        c = self.window.controller
        c.select_head(selection.layer, selection.head)
        c.set_options(head_mean=selection.head_mean)
        c.select_token(selection.token)

    # -- recent ---------------------------------------------------------------------------
    def recent(self) -> list[str]:
        value = self.settings.value("sessions/recent", [])
        if isinstance(value, str):
            value = [value]
        return [v for v in (value or []) if isinstance(v, str)]

    def remember(self, path: Path) -> None:
        entry = str(Path(path).resolve())
        items = [entry] + [p for p in self.recent() if p != entry]
        self.settings.setValue("sessions/recent", items[:MAX_RECENT])

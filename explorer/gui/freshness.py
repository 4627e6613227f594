"""Do the panels show the editor's prompt? Says so in the notice bar and dims stale panels.

States (``Freshness.state``):
- "empty":  nothing drawn yet
- "editor": the panels show the prompt in the editor
- "source": they show another text (a comparison column, generated text); *Copy to editor*
- "stale":  they show an older text while a newer run of the editor's text is pending
            (typing pause, or a run in flight), or the editor changed with auto-run off
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from explorer.gui.notice_bar import NoticeBar
from explorer.gui.widgets import DimOverlay


class Freshness(QObject):
    changed = Signal(str)  # the new state

    def __init__(self, controller: Any, prompt_panel: Any, bar: NoticeBar,
                 panels: list[QWidget], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.prompt_panel = prompt_panel
        self.bar = bar
        self.overlays = [DimOverlay(panel) for panel in panels]
        self.state = "empty"
        prompt_panel.editor.textChanged.connect(self.update)
        prompt_panel.pending_changed.connect(self.update)
        controller.run_changed.connect(self.update)
        controller.running_changed.connect(self.update)
        bar.copy_requested.connect(self.copy_to_editor)
        self.update()

    def _describe(self) -> tuple[str, str]:
        c = self.controller
        result = c.result
        if result is None:
            if c.running or self.prompt_panel.run_pending():
                return "empty", "Running the prompt… the panels fill in when the result arrives."
            return "empty", ("The panels fill in after the first run: type a prompt "
                             "(it runs after a pause) or press Ctrl+Enter.")
        text = self.prompt_panel.text()
        pending = c.running or self.prompt_panel.run_pending()
        model = result.model_info.name
        if c.source is not None:
            if pending and text != result.prompt:
                return "stale", (f"Out of date: still showing {c.source}; the editor's prompt is "
                                 "running…")
            return "source", (f"Showing {c.source} ({result.num_tokens:,} tokens on {model}), not "
                              "the editor's prompt. Copy it to the editor to edit it.")
        if text != result.prompt:
            if pending:
                return "stale", ("Out of date: the panels still show the previous prompt; "
                                 "the edited prompt is running…")
            return "stale", ("Out of date: the editor changed since this run. Press Run "
                             "(Ctrl+Enter) to update the panels.")
        return "editor", f"Showing the prompt in the editor: {result.num_tokens:,} tokens on {model}."

    def update(self, *_: object) -> None:
        state, text = self._describe()
        self.bar.show_notice({"empty": "idle", "editor": "idle"}.get(state, state), text,
                             copy=state == "source")
        for overlay in self.overlays:
            overlay.set_dimmed(state == "stale")
        if state != self.state:
            self.state = state
            self.changed.emit(state)

    def copy_to_editor(self) -> None:
        """Put the shown text into the editor; the panels then show the editor's prompt
        (no new run: the drawn result stays)."""
        result = self.controller.result
        if result is None:
            return
        self.controller.adopt_shown_prompt()
        self.prompt_panel.set_text_without_run(result.prompt)
        self.update()

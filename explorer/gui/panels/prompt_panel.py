"""Prompt editor: runs on Ctrl+Enter and by itself after a pause in typing.

The token count below the editor always describes the editor's text: it is counted by the
loaded model's tokenizer (``count_requested`` → ``show_count``), or taken from a run of
that same text; "counting…" while neither is known.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from explorer.core.memory_estimate import describe_estimate
from explorer.core.types import ModelInfo, RunResult
from explorer.gui.widgets import ElidedLabel

DEBOUNCE_MS = 450
COUNT_DEBOUNCE_MS = 150


class PromptPanel(QWidget):
    run_requested = Signal(str)
    pending_changed = Signal(bool)  # a run is scheduled by the typing pause (or no longer)
    count_requested = Signal(str)  # please count the tokens of this text

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("prompt-editor")
        self.editor.setPlaceholderText("Type a prompt… (runs after a pause, or Ctrl+Enter)")
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Run the prompt now (Ctrl+Enter)")
        self.count_label = ElidedLabel("No model loaded yet: tokens are counted once one is.")
        self.count_label.setObjectName("token-count")
        self.auto_run = True
        self._context_length: int | None = None
        self._counts: dict[str, tuple[int, str]] = {}  # text -> (tokens, run note)
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self.run_now)
        self._count_timer = QTimer(self, singleShot=True, interval=COUNT_DEBOUNCE_MS)
        self._count_timer.timeout.connect(lambda: self.count_requested.emit(self.text()))
        self._has_model = False

        row = QHBoxLayout()
        row.addWidget(self.count_label, 1)
        row.addWidget(self.run_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.editor, 1)
        layout.addLayout(row)

        self.editor.textChanged.connect(self._on_text_changed)
        self.run_button.clicked.connect(self.run_now)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self.editor, context=Qt.WidgetWithChildrenShortcut)
            shortcut.activated.connect(self.run_now)

    def text(self) -> str:
        return self.editor.toPlainText()

    def set_text(self, text: str) -> None:
        self.editor.setPlainText(text)

    def set_text_without_run(self, text: str) -> None:
        """Replace the text without scheduling a run (the panels already show it)."""
        self.editor.setPlainText(text)
        self._set_pending(False)

    def run_pending(self) -> bool:
        """True while the typing pause will start a run."""
        return self._debounce.isActive()

    def run_now(self) -> None:
        self._set_pending(False)
        self.run_requested.emit(self.text())

    def _set_pending(self, on: bool) -> None:
        was = self._debounce.isActive()
        if on:
            self._debounce.start()
        else:
            self._debounce.stop()
        if was != on:
            self.pending_changed.emit(on)

    def _on_text_changed(self) -> None:
        if self.auto_run:
            self._set_pending(True)
        self._update_count()

    # -- token count ---------------------------------------------------------------------
    def show_model(self, info: ModelInfo) -> None:
        self._context_length = info.context_length
        self._has_model = True
        self._counts = {}
        self._update_count()

    def show_result(self, result: RunResult) -> None:
        mode = describe_estimate(result.model_info, result.num_tokens, result.attention_mode)
        self.show_count(result.prompt, result.num_tokens, mode)

    def show_count(self, text: str, tokens: int, mode: str = "") -> None:
        """``text`` is ``tokens`` tokens long for the loaded model (``mode``: the attention
        mode and memory of a run of it)."""
        self._counts = {text: (tokens, mode)}
        self._update_count()

    def _update_count(self) -> None:
        text = self.text()
        limit = f" / {self._context_length:,} context" if self._context_length else ""
        if not text:
            self.count_label.setText(f"0 tokens{limit}")
        elif text in self._counts:
            tokens, mode = self._counts[text]
            self.count_label.setText(f"{tokens:,} tokens{limit}" + (f" · {mode}" if mode else ""))
        elif self._has_model:
            self.count_label.setText(f"counting tokens…{limit}")
            self._count_timer.start()
        else:
            self.count_label.setText(f"{len(text):,} characters; tokens are counted once a model "
                                     "is loaded")
        self.count_label.setToolTip(
            f"{self.count_label.full_text()}\n\nCounted by the loaded model's tokenizer. After a "
            "run: its attention mode and the memory it needed (full keeps every map; lazy "
            "rebuilds maps from queries and keys; Run ▸ Attention).")

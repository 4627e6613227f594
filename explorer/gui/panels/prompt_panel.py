"""Prompt editor: runs on Ctrl+Enter and by itself after a pause in typing."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from explorer.core.memory_estimate import describe_estimate
from explorer.core.types import ModelInfo, RunResult

DEBOUNCE_MS = 450


class PromptPanel(QWidget):
    run_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("prompt-editor")
        self.editor.setPlaceholderText("Type a prompt… (runs after a pause, or Ctrl+Enter)")
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Run the prompt now (Ctrl+Enter)")
        self.count_label = QLabel("0 tokens")
        self.auto_run = True
        self._context_length: int | None = None
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self.run_now)

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

    def run_now(self) -> None:
        self._debounce.stop()
        self.run_requested.emit(self.text())

    def _on_text_changed(self) -> None:
        if self.auto_run:
            self._debounce.start()

    def show_model(self, info: ModelInfo) -> None:
        self._context_length = info.context_length
        self._update_count(None)

    def show_result(self, result: RunResult) -> None:
        mode = describe_estimate(result.model_info, result.num_tokens, result.attention_mode)
        self._update_count(result.num_tokens, mode)

    def _update_count(self, tokens: int | None, mode: str = "") -> None:
        count = "–" if tokens is None else f"{tokens:,}"
        limit = f" / {self._context_length:,} context" if self._context_length else ""
        self.count_label.setText(f"{count} tokens{limit}" + (f" · {mode}" if mode else ""))
        self.count_label.setToolTip("Attention mode of the last run and the memory it needed: full "
                                    "keeps every map; lazy rebuilds maps from queries and keys "
                                    "(Run ▸ Attention)")

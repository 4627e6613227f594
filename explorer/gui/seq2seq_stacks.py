"""Encoder-decoder models in the window: a *stack* selector and the decoder's target text.

Shown only while an encoder-decoder (T5, BART) is loaded. Each stack is drawn as its own
RunResult (``Seq2SeqResult.stack_result``): encoder self-attention over the source
tokens, decoder self-attention over the decoder tokens, or cross-attention with decoder
tokens as queries and source tokens as keys (``key_tokens``). Decoder stacks get
next-token bars. The record is computed in the worker (``backend.seq2seq``, remembered
per source and target, so switching stacks does not run the model again).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QToolBar

from explorer.core.seq2seq import STACK_LABELS, STACKS

DEFAULT_STACK = "cross"  # what a plain run of an encoder-decoder shows (engine.analyze)


def _compute(prompt: str, target: str, top_k: int):
    def job(loaded, task, emit):
        from explorer.backend.seq2seq import analyze_seq2seq

        return analyze_seq2seq(loaded, prompt, target or None, top_k=top_k, task=task)

    return job


class StackSelector:
    """The toolbar: Stack [encoder | decoder | cross], Target [text]."""

    def __init__(self, window) -> None:
        self.window = window
        self.controller = window.controller
        self.toolbar = QToolBar("Encoder–decoder", window)
        self.toolbar.setObjectName("toolbar-encoder-decoder")
        self.stack_box = QComboBox()
        for stack in STACKS:
            self.stack_box.addItem(STACK_LABELS[stack], stack)
        self.stack_box.setCurrentIndex(STACKS.index(DEFAULT_STACK))
        self.stack_box.setToolTip("Which attention the grid and map show; each stack has its "
                                  "own token labels on the axes")
        self.target_edit = QLineEdit()
        self.target_edit.setPlaceholderText("target text (empty: the decoder generates greedily)")
        self.target_edit.setMinimumWidth(280)
        self.status = QLabel("")
        self.toolbar.addWidget(QLabel(" Stack: "))
        self.toolbar.addWidget(self.stack_box)
        self.toolbar.addWidget(QLabel("  Target: "))
        self.toolbar.addWidget(self.target_edit)
        self.toolbar.addWidget(self.status)
        window.addToolBar(Qt.TopToolBarArea, self.toolbar)
        self.toolbar.hide()
        self.record = None  # the last Seq2SeqResult
        self.shown = None  # the RunResult we handed to the controller last
        self.job = None
        self.stack_box.currentIndexChanged.connect(lambda _: self.refresh())
        self.target_edit.returnPressed.connect(self.refresh)
        self.controller.model_changed.connect(self._on_model_changed)
        self.controller.run_changed.connect(self._on_run_changed)

    @property
    def stack(self) -> str:
        return self.stack_box.currentData()

    @property
    def target(self) -> str:
        return self.target_edit.text().strip()

    def _on_model_changed(self, info) -> None:
        self.toolbar.setVisible(bool(info.encoder_decoder))
        self.record = None

    def _on_run_changed(self, view) -> None:
        result = view.result
        if result is self.shown or not result.model_info.encoder_decoder:
            return
        # a plain run (cross-attention, greedy decoder): redo it for the chosen stack/target
        if self.stack != DEFAULT_STACK or self.target:
            self.refresh()

    def refresh(self) -> None:
        """Show the chosen stack for the current prompt and target (computing if needed)."""
        info = self.controller.model_info
        prompt = self.controller.prompt
        if info is None or not info.encoder_decoder or not prompt:
            return
        record = self.record
        if record is not None and record.prompt == prompt and (record.target or "") == self.target:
            self._show(record)
            return
        if self.job is not None:
            self.job.cancel()
        self.status.setText("  running…")
        self.job = self.controller.submit(_compute(prompt, self.target, self.controller.top_k),
                                          on_done=self._on_done, on_error=self._on_error)

    def _on_done(self, record) -> None:
        self.job = None
        self.status.setText("")
        self.record = record
        if record.prompt == self.controller.prompt and (record.target or "") == self.target:
            self._show(record)

    def _on_error(self, message: str, cancelled: bool) -> None:
        self.job = None
        self.status.setText("")
        if not cancelled:
            self.window.banner.show_message(message)

    def _show(self, record) -> None:
        self.shown = record.stack_result(self.stack)
        self.controller.show_result(self.shown)


def install(window) -> StackSelector:
    return StackSelector(window)

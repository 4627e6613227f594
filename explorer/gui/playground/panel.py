"""The playground panel: prompt, sampling controls, Generate / Stop, the streamed completion,
branches made by "continue from here with this alternative"."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from explorer.core.errors import ExplorerError
from explorer.core.generation_types import GenerationResult, GenerationStep
from explorer.core.replay import BranchRecipe, read_recipes
from explorer.core.selection import Selection
from explorer.core.tokens import display_piece
from explorer.core.types import ModelInfo
from explorer.gui.playground import jobs
from explorer.gui.playground.completion import CompletionView
from explorer.gui.playground.controls import SamplingControls
from explorer.gui.playground.formatting import legend_html

DEFAULT_PROMPT = "The best way to learn about transformers is"
ALTERNATIVES = 10
PREVIEW_DEBOUNCE_MS = 300
STOP_REASONS = {"length": "reached max new tokens", "eos": "end-of-sequence token",
                "stop_sequence": "stop sequence", "cancelled": "stopped"}


class Playground(QWidget):
    """Generation in the worker thread, streamed into a CompletionView.

    ``branches`` holds every finished run (``jobs.Generated``); ``current`` indexes the one
    shown; ``recipes[i]`` says how to regenerate ``branches[i]`` (what a session stores).
    ``step_hook`` (tests, instrumentation) is called in the worker after each step.
    """

    def __init__(self, window: Any) -> None:
        super().__init__()
        self.window = window
        self.controller = window.controller
        self.branches: list[jobs.Generated] = []
        self.recipes: list[BranchRecipe] = []
        self.current: int | None = None
        self._origin: tuple[int | None, int, int] = (None, 0, 0)  # parent, index, token of the run
        self._pending_replay: tuple[list[BranchRecipe], int | None] | None = None
        self.job: Any = None
        self.step_hook: jobs.StepHook | None = None
        self.model_info: ModelInfo | None = None
        self.has_chat_template = False
        self._streamed_new: list[GenerationStep] = []
        self._pending_click: int | None = None
        self._preview_request = 0
        self._started = 0.0
        self._build()
        self._wire()
        self._update_enabled()

    # -- construction ------------------------------------------------------------------------
    def _build(self) -> None:
        self.editor = QPlainTextEdit(DEFAULT_PROMPT)
        self.editor.setObjectName("playground-prompt")
        self.editor.setPlaceholderText("Prompt to continue… (Ctrl+Shift+Enter generates)")
        self.editor.setMinimumHeight(48)
        self.editor.setMaximumHeight(110)
        self.chat = QCheckBox("use chat template")
        self.chat.setToolTip("Wrap the prompt as a user message in the model's chat template")
        self.chat_preview = QPlainTextEdit()
        self.chat_preview.setReadOnly(True)
        self.chat_preview.setPlaceholderText("The exact text the model sees")
        self.chat_preview.setMaximumHeight(90)
        self.chat_preview.hide()
        self.controls = SamplingControls()
        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Generate (Ctrl+Shift+Enter)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current token")
        self.branch_box = QComboBox()
        self.branch_box.setToolTip("Runs and the branches made with 'continue with this alternative'")
        self.branch_box.setMinimumContentsLength(6)
        self.branch_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.status = QLabel("Load a decoder model to generate.")
        self.status.setWordWrap(True)
        self.colour_box = QComboBox()
        self.colour_box.addItem("model probability (raw)", "raw")
        self.colour_box.addItem("probability after the filters", "filtered")
        self.legend = QLabel(legend_html())
        self.legend.setWordWrap(True)  # the swatches wrap instead of widening the dock
        self.legend.setToolTip("Background colour = probability the model gave the token; "
                               "hover a token for its alternatives")
        self.view = CompletionView()

        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(QLabel("Branch"))
        buttons.addWidget(self.branch_box, 1)
        colour_row = QHBoxLayout()
        colour_row.addWidget(QLabel("Colour by"))
        colour_row.addWidget(self.colour_box, 1)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.editor)
        top_layout.addWidget(self.chat)
        top_layout.addWidget(self.chat_preview)
        top_layout.addWidget(self.controls)
        top_layout.addLayout(buttons)
        top_layout.addWidget(self.status)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addLayout(colour_row)
        bottom_layout.addWidget(self.legend)
        bottom_layout.addWidget(self.view, 1)
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(bottom)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([top.sizeHint().height(), 10_000])  # the completion gets the rest
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        self._preview_timer = QTimer(self, singleShot=True, interval=PREVIEW_DEBOUNCE_MS)

    def _wire(self) -> None:
        c = self.controller
        self.generate_button.clicked.connect(self.generate)
        self.stop_button.clicked.connect(self.stop)
        for keys in ("Ctrl+Shift+Return", "Ctrl+Shift+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self, context=Qt.WidgetWithChildrenShortcut)
            shortcut.activated.connect(self.generate)
        self.branch_box.activated.connect(self.switch_branch)
        self.colour_box.currentIndexChanged.connect(self._on_colour_changed)
        self.view.token_clicked.connect(self.select_position)
        self.view.context_requested.connect(self._show_alternatives_menu)
        self.chat.toggled.connect(self._on_chat_toggled)
        self.editor.textChanged.connect(self._schedule_preview)
        self._preview_timer.timeout.connect(self.refresh_chat_preview)
        c.model_changed.connect(self._on_model_changed)
        c.selection_changed.connect(lambda _s: self._sync_highlight())
        c.run_changed.connect(lambda _v: self._sync_highlight())

    # -- state ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job is not None

    @property
    def branch(self) -> jobs.Generated | None:
        return self.branches[self.current] if self.current is not None else None

    def _update_enabled(self) -> None:
        info = self.model_info
        can = info is not None and info.causal and not self.running
        self.generate_button.setEnabled(can)
        self.stop_button.setEnabled(self.running)
        self.branch_box.setEnabled(not self.running and bool(self.branches))
        self.chat.setEnabled(self.has_chat_template and not self.running)
        if info is None:
            self.generate_button.setToolTip("Load a decoder model first")
        elif not info.causal:
            self.generate_button.setToolTip(self.encoder_message(info))
        else:
            self.generate_button.setToolTip("Generate (Ctrl+Shift+Enter)")

    @staticmethod
    def encoder_message(info: ModelInfo) -> str:
        return (f"{info.name} is an encoder (it attends in both directions and has no "
                "next-token head): it cannot generate text. Load a decoder such as "
                "SmolLM2 from the Model menu.")

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color:#a61b1b" if error else "")
        self.status.setText(text)

    # -- model -----------------------------------------------------------------------------------
    def _on_model_changed(self, info: ModelInfo) -> None:
        self.model_info = info
        self.has_chat_template = info.causal and info.chat_template
        self.chat.setChecked(False)
        self.chat.setToolTip("Wrap the prompt as a user message in the model's chat template"
                             if self.has_chat_template
                             else "This model's tokenizer has no chat template")
        self.branches, self.recipes, self.current = [], [], None
        self.branch_box.clear()
        self.view.clear()
        if info.causal:
            chat = " It has a chat template." if self.has_chat_template else ""
            self._set_status(f"Ready: {info.name}.{chat}")
        else:
            self._set_status(self.encoder_message(info), error=True)
        self._update_enabled()
        self._start_replay()

    # -- chat preview ----------------------------------------------------------------------------
    def _on_chat_toggled(self, on: bool) -> None:
        self.chat_preview.setVisible(on)
        if on:
            self.refresh_chat_preview()

    def _schedule_preview(self) -> None:
        if self.chat.isChecked():
            self._preview_timer.start()

    def refresh_chat_preview(self) -> None:
        """Ask the worker for the exact templated text (shown read-only under the switch)."""
        if not (self.chat.isChecked() and self.has_chat_template):
            return
        self._preview_request += 1
        request = self._preview_request

        def done(text: str) -> None:
            if request == self._preview_request:
                self.chat_preview.setPlainText(text)

        def failed(message: str, cancelled: bool) -> None:
            if request == self._preview_request and not cancelled:
                self.chat_preview.setPlainText(message)

        self.controller.submit(jobs.chat_text_job(self.editor.toPlainText()), on_done=done,
                               on_error=failed)

    # -- generate / stop -----------------------------------------------------------------------
    def generate(self) -> None:
        """Start a new run from the editor's prompt and the controls."""
        info = self.model_info
        if info is None or not info.causal or self.running:
            if info is not None and not info.causal:
                self._set_status(self.encoder_message(info), error=True)
            return
        prompt = self.editor.toPlainText()
        if not prompt.strip():
            self._set_status("The prompt is empty: type some text to continue.", error=True)
            return
        try:
            settings = self.controls.settings().validate()
        except ExplorerError as exc:
            self._set_status(str(exc), error=True)
            return
        chat = self.chat.isChecked() and self.has_chat_template
        preview = self.chat_preview.toPlainText()
        shown = preview if chat and preview and not self._preview_timer.isActive() else prompt
        self.view.begin(shown, [], settings, info.piece_style)
        self._origin = (None, 0, 0)
        self._start(jobs.generate_job(prompt, settings, chat, ALTERNATIVES, self._hook),
                    settings.max_new_tokens)

    def continue_with(self, index: int, token_id: int) -> bool:
        """Regenerate the current branch from generated token ``index`` with ``token_id``;
        the earlier text is kept and the old branch stays in the branch list."""
        branch = self.branch
        if branch is None or self.running or not 0 <= index < branch.result.num_generated:
            return False
        previous = branch.result
        self.view.begin(previous.model_text, list(previous.steps[:index]), previous.settings,
                        previous.model_info.piece_style)
        self._origin = (self.current, index, token_id)
        self._start(jobs.continue_job(previous, index, token_id, self._hook),
                    previous.settings.max_new_tokens)
        return True

    def _hook(self, step: GenerationStep) -> None:
        hook = self.step_hook
        if hook is not None:
            hook(step)

    def _start(self, job_fn: jobs.Job, total: int) -> None:
        self._streamed_new = []
        self._pending_click = None
        self._total = total
        self._started = time.perf_counter()
        self._set_status("Reading the prompt…")
        self.job = self.controller.submit(job_fn, on_done=self._on_done, on_error=self._on_error,
                                          on_event=self._on_step)
        self._update_enabled()

    def stop(self) -> None:
        """Stop the running generation before its next token."""
        if self.job is not None:
            self.job.cancel()
            self._set_status("Stopping…")

    def _on_step(self, step: Any) -> None:
        if not isinstance(step, GenerationStep):
            return
        self._streamed_new.append(step)
        self.view.append_step(step)
        spent = sum(s.elapsed_s for s in self._streamed_new)
        rate = len(self._streamed_new) / spent if spent > 0 else 0.0
        self._set_status(f"Generating… {len(self.view.steps)} / {self._total} tokens, "
                         f"{rate:.1f} tokens/s")

    def _on_done(self, generated: jobs.Generated) -> None:
        self.job = None
        result = generated.result
        self.branches.append(generated)
        self.recipes.append(BranchRecipe.of(result, *self._origin))
        self.current = len(self.branches) - 1
        self.branch_box.addItem(self._branch_label(result))
        self.branch_box.setCurrentIndex(self.current)
        self.controls.show_used_seed(result.settings.seed)
        self.view.show_result(result)
        rate = result.timings.get("tokens_per_s", 0.0)
        reason = STOP_REASONS.get(result.stop_reason, result.stop_reason)
        self._set_status(f"{result.num_generated} tokens ({reason}), {rate:.1f} tokens/s, "
                         f"seed {result.settings.seed}. Click a token to inspect it; "
                         "right-click for alternatives.")
        self._update_enabled()
        position = self._pending_click if self._pending_click is not None else result.num_tokens - 1
        self._show_in_panels(generated, position)
        self._start_replay()  # a session opened while this run was going

    def _on_error(self, message: str, cancelled: bool) -> None:
        self.job = None
        if cancelled:
            self._set_status("Stopped before the first token.")
            self.view.clear()
        else:
            self._set_status(message, error=True)
        self._update_enabled()
        self._start_replay()

    def _branch_label(self, result: GenerationResult) -> str:
        number = len(self.branches)
        forced = next((s for s in result.steps if s.forced), None)
        how = (f"alt. '{display_piece(forced.token, result.model_info.piece_style)}' at "
               f"#{forced.position}") if forced else f"seed {result.settings.seed}"
        return f"Branch {number}: {how}"

    # -- branches and clicks -------------------------------------------------------------------------
    def switch_branch(self, index: int) -> None:
        if self.running or not 0 <= index < len(self.branches):
            return
        self.current = index
        self.branch_box.setCurrentIndex(index)
        branch = self.branches[index]
        self.view.show_result(branch.result)
        self._show_in_panels(branch, min(self.controller.selection.token,
                                         branch.result.num_tokens - 1))

    def select_position(self, position: int) -> None:
        """Select token ``position`` of the current run in every panel (no model run)."""
        branch = self.branch
        if self.running:
            self._pending_click = position
            self._set_status(f"Token #{position} will be selected when the run ends.")
            return
        if branch is None:
            return
        self._show_in_panels(branch, position)

    def _show_in_panels(self, branch: jobs.Generated, position: int) -> None:
        c = self.controller
        if c.result is branch.run and not c.running:
            c.select_token(position)
        else:
            number = next(i for i, b in enumerate(self.branches) if b is branch) + 1
            c.show_result(branch.run, c.selection.with_(token=position),
                          source=f"generated text, branch {number} of the Playground")
        self.view.highlight(position)

    def _sync_highlight(self) -> None:
        branch = self.branch
        shows_us = branch is not None and self.controller.result is branch.run
        self.view.highlight(self.controller.selection.token if shows_us else None)

    def current_selection(self) -> Selection:
        return self.controller.selection

    # -- alternatives ----------------------------------------------------------------------------
    def alternatives(self, position: int) -> list[tuple[int, str, float, float]]:
        """[(token id, label, p after filters, raw p)] for generated token ``position``: the
        filtered alternatives first, then raw ones the filters cut."""
        step = self.view.step_at(position)
        if step is None:
            return []
        style = self.model_info.piece_style if self.model_info else "byte_level"
        raw = {i: p for i, _t, p in step.raw_top()}
        out, seen = [], set()
        for token_id, token, p in step.top():
            out.append((token_id, display_piece(token, style), p, raw.get(token_id, float("nan"))))
            seen.add(token_id)
        for token_id, token, p in step.raw_top():
            if token_id not in seen:
                out.append((token_id, display_piece(token, style), 0.0, p))
        return out

    def _show_alternatives_menu(self, position: int, where: QPoint) -> None:
        step = self.view.step_at(position)
        if step is None or self.running or self.branch is None:
            return
        menu = QMenu(self)
        menu.setAttribute(Qt.WA_DeleteOnClose)
        title = menu.addAction(f"Continue from #{position} with…")
        title.setEnabled(False)
        for token_id, label, p, raw in self.alternatives(position):
            text = f"{label}    {p:.1%} (raw {raw:.1%})" if p > 0 else f"{label}    cut (raw {raw:.1%})"
            action = menu.addAction(text + ("   ← generated" if token_id == step.token_id else ""))
            action.triggered.connect(lambda _=False, i=step.index, t=token_id: self.continue_with(i, t))
        menu.popup(where)

    def _on_colour_changed(self) -> None:
        self.view.colour_by = self.colour_box.currentData()
        self.view.redraw_colours()

    # -- sessions -----------------------------------------------------------------------------
    def session_extras(self) -> dict[str, Any]:
        """The controls, and the branches as recipes: a session regenerates the text from
        the saved seeds (see explorer.core.replay) instead of storing every probability."""
        data = self.controls.to_dict()
        data.update(prompt=self.editor.toPlainText(), chat=self.chat.isChecked(),
                    branches=[r.to_dict() for r in self.recipes], current_branch=self.current)
        return {"generation": data}

    def apply_session_extras(self, extras: dict[str, Any]) -> None:
        data = extras.get("generation") or {}
        if not isinstance(data, dict) or not data:
            return
        recipes = read_recipes(data.get("branches", []))  # ValueError: the session is refused
        self.controls.apply_dict(data)
        if isinstance(data.get("prompt"), str):
            self.editor.setPlainText(data["prompt"])
        if isinstance(data.get("chat"), bool):
            self.chat.setChecked(data["chat"] and self.has_chat_template)
        if recipes:
            current = data.get("current_branch")
            self._pending_replay = (recipes, current if isinstance(current, int) else None)
            QTimer.singleShot(0, self._start_replay)  # after the session asked for its model

    # -- replay ---------------------------------------------------------------------------
    def _start_replay(self) -> None:
        """Regenerate a session's branches once its model is loaded (see session_extras)."""
        pending = self._pending_replay
        if pending is None or self.controller.loading or self.running:
            return  # model_changed / the running job's end comes back here
        info = self.model_info
        if info is None or not info.causal:
            self._pending_replay = None
            self._set_status("The session's generated text needs a decoder model to be "
                             "regenerated.", error=True)
            return
        self._pending_replay = None
        recipes, current = pending
        self._set_status(f"Regenerating the session's {len(recipes)} branch(es) from their "
                         "saved seeds…")
        self.job = self.controller.submit(
            jobs.replay_job(recipes, ALTERNATIVES),
            on_done=lambda runs: self._replayed(recipes, runs, current),
            on_error=self._on_error)
        self._update_enabled()

    def _replayed(self, recipes: list[BranchRecipe], runs: list[jobs.Generated],
                  current: int | None) -> None:
        self.job = None
        self.branches, self.recipes = [], []
        self.branch_box.clear()
        for recipe, generated in zip(recipes, runs, strict=True):
            self.branches.append(generated)
            self.recipes.append(recipe)
            self.branch_box.addItem(self._branch_label(generated.result))
        changed = [str(i + 1) for i, (recipe, generated) in enumerate(zip(recipes, runs, strict=True))
                   if tuple(generated.result.generated_ids) != recipe.generated_ids]
        self.current = min(current if current is not None else len(runs) - 1, len(runs) - 1)
        self.branch_box.setCurrentIndex(self.current)
        self.view.show_result(self.branches[self.current].result)
        self._update_enabled()
        if changed:
            self._set_status(f"Branch {', '.join(changed)} came out differently than when the "
                             "session was saved: the model is not the same.", error=True)
        else:
            self._set_status(f"Regenerated {len(runs)} branch(es) from their saved seeds: the "
                             "same text as when the session was saved.")
        self._start_replay()

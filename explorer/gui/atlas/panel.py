"""The head atlas panel: every head's scores in a sortable table, the attention grid
coloured by one score, and the induction probe."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QItemSelectionModel, QSortFilterProxyModel, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from explorer.core.head_scores import SCORE_NAMES, HeadScores
from explorer.core.selection import Selection
from explorer.core.types import ModelInfo
from explorer.gui.atlas import jobs
from explorer.gui.atlas.table import HEADERS, SORT_ROLE, HeadScoresModel
from explorer.gui.plotting import escape
from explorer.gui.progress_bar import ProgressBar
from explorer.gui.tool_dock import dock_showing

NO_COLOUR = "thumbnails"


class AtlasPanel(QWidget):
    """Scores come from the worker (``jobs``); the grid colouring goes to the attention panel."""

    def __init__(self, window: Any) -> None:
        super().__init__()
        self.window = window
        self.controller = window.controller
        self.dock: Any = None
        self.result: Any = None
        self.scores: HeadScores | None = None
        self.job: Any = None
        self.job_kind = ""  # "prompt" or "probe"
        self._build()
        self._wire()
        self._refresh_state()

    # -- construction ------------------------------------------------------------------------
    def _build(self) -> None:
        self.status = QLabel("Run a prompt, then score its heads.")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.RichText)
        self.score_button = QPushButton("Score this prompt")
        self.score_button.setToolTip("Score every head on the prompt shown in the window")
        self.probe_button = QPushButton("Induction probe")
        self.probe_button.setToolTip("Score every head on a fixed-seed sequence of random tokens "
                                     "repeated once: induction heads light up even when the "
                                     "prompt has no repeats")
        self.progress = ProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(200)
        self.cancel_button = QPushButton("Cancel")
        self.colour_box = QComboBox()
        self.colour_box.addItem("thumbnails (no colouring)", NO_COLOUR)
        for name in SCORE_NAMES:
            self.colour_box.addItem(HEADERS.get(name, name), name)
        self.colour_box.setToolTip("Colour the layer × head grid of the attention panel by a score")

        self.model = HeadScoresModel()
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setObjectName("head-atlas")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(0, Qt.AscendingOrder)  # layer 0 first
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.setToolTip("Click a column to sort by it, a row to select that head")

        buttons = QHBoxLayout()
        buttons.addWidget(self.score_button)
        buttons.addWidget(self.probe_button)
        buttons.addWidget(self.progress)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(QLabel("Colour the grid by"))
        buttons.addWidget(self.colour_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)

    def _wire(self) -> None:
        c = self.controller
        self.score_button.clicked.connect(self.score_prompt)
        self.probe_button.clicked.connect(self.run_probe)
        self.cancel_button.clicked.connect(self.cancel)
        self.colour_box.currentIndexChanged.connect(lambda _i: self._colour_grid())
        self.table.clicked.connect(self._on_row_clicked)
        c.run_changed.connect(self.show_run)
        c.selection_changed.connect(self.show_selection)
        c.model_changed.connect(self._on_model_changed)
        c.running_changed.connect(self._on_running_changed)

    # -- state ------------------------------------------------------------------------------
    def prompt_scores_current(self) -> bool:
        """The table holds the scores of the run the window shows."""
        scores, result = self.scores, self.result
        return (scores is not None and result is not None and scores.source == "prompt"
                and np.array_equal(scores.token_ids, result.token_ids)
                and scores.model_name == result.model_info.name)

    def _visible(self) -> bool:
        return dock_showing(self.dock)

    def _can_score(self) -> bool:
        result = self.result
        return result is not None and result.has_attention and result.key_tokens is None

    def _refresh_state(self) -> None:
        running = self.job is not None
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.score_button.setEnabled(not running and self._can_score()
                                     and not self.prompt_scores_current())
        self.probe_button.setEnabled(not running and self.controller.model_info is not None)
        if running:
            return
        scores = self.scores
        if scores is None:
            result = self.result
            if result is None:
                text = "Run a prompt, then score its heads (or run the induction probe)."
            elif not self._can_score():
                text = "This run kept no attention maps to score."
            else:
                mode = "lazy maps, rebuilt in chunks" if result.attention_mode == "lazy" else "full maps"
                text = (f"Press <b>Score this prompt</b> to score every head on its "
                        f"{result.num_tokens:,} tokens ({mode}).")
        elif scores.source == "prompt":
            stale = "" if self.prompt_scores_current() else " — <b>an earlier prompt</b>; score again"
            repeats = "" if not np.isnan(scores.score("induction")).all() else \
                " No token repeats, so duplicate and induction are empty: try the induction probe."
            text = f"Scores on the prompt ({len(scores.token_ids):,} tokens){stale}.{repeats}"
        else:
            text = f"Scores on the {escape(scores.source)} ({len(scores.token_ids)} tokens)."
        self.status.setText(text)

    # -- controller → panel ----------------------------------------------------------------------
    def show_run(self, view: Any) -> None:
        self.result = view.result
        if self.scores is not None and self.scores.source == "prompt" and not self.prompt_scores_current():
            self.cancel()
            self._set_scores(None)
        if self.scores is None and self._can_score() and self.result.attention_mode == "full" \
                and self._visible():
            self.score_prompt()  # full maps score in a blink; lazy ones wait for the button
        self._refresh_state()

    def show_selection(self, selection: Selection) -> None:
        self._select_row(selection.layer, selection.head)

    def _on_model_changed(self, _info: ModelInfo) -> None:
        self.cancel()
        self.result = None
        self._set_scores(None)

    def _on_running_changed(self, running: bool) -> None:
        if running and self.job is not None and self.job_kind == "prompt":
            self.cancel()  # the prompt is changing: its scores would be stale

    def on_visible(self, visible: bool) -> None:
        if visible and self.scores is None and self.job is None and self._can_score() \
                and self.result.attention_mode == "full":
            self.score_prompt()

    # -- work ------------------------------------------------------------------------------
    def score_prompt(self) -> None:
        if self.job is not None or not self._can_score():
            return
        self._submit(jobs.scores_job(self.result), "prompt", "Scoring every head…")

    def run_probe(self) -> None:
        if self.job is not None or self.controller.model_info is None:
            return
        self._submit(jobs.probe_job(), "probe", "Running the induction probe…")

    def _submit(self, fn: Any, kind: str, message: str) -> None:
        self.progress.setValue(0)
        self.status.setText(message)
        job = self.controller.submit(
            fn, on_done=lambda scores: self._on_done(job, scores),
            on_error=lambda text, cancelled: self._on_error(job, text, cancelled),
            on_progress=lambda f, _stage: self.progress.setValue(int(f * 1000)))
        self.job, self.job_kind = job, kind
        self._refresh_state()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.job = None
        self._refresh_state()

    def _on_done(self, job: Any, scores: HeadScores) -> None:
        if job is not self.job:
            return
        self.job = None
        self._set_scores(scores)

    def _on_error(self, job: Any, message: str, cancelled: bool) -> None:
        if job is not self.job:
            return
        self.job = None
        self._refresh_state()
        if not cancelled:
            self.status.setText(f"<span style='color:#8a1f11'>{escape(message)}</span>")

    # -- drawing ----------------------------------------------------------------------------
    def _set_scores(self, scores: HeadScores | None) -> None:
        self.scores = scores
        self.model.set_scores(scores)
        if scores is not None:
            self.table.sortByColumn(self.proxy.sortColumn() if self.proxy.sortColumn() >= 0 else 0,
                                    self.table.horizontalHeader().sortIndicatorOrder())
            selection = self.controller.selection
            self._select_row(selection.layer, selection.head)
        self._colour_grid()
        self._refresh_state()

    def selected_score(self) -> str | None:
        name = self.colour_box.currentData()
        return None if name == NO_COLOUR else name

    def _colour_grid(self) -> None:
        """Colour the attention panel's layer × head grid by the chosen score (NaN tiles,
        e.g. induction without repeats, stay blank), or restore its thumbnails."""
        panel = self.window.attention_panel
        name = self.selected_score()
        if name is None or self.scores is None or self.scores.shape != self._grid_shape():
            panel.set_grid_scores(None)
            return
        where = "prompt" if self.scores.source == "prompt" else "induction probe"
        panel.set_grid_scores(self.scores.score(name), f"{HEADERS.get(name, name)} ({where})")

    def _grid_shape(self) -> tuple[int, int] | None:
        info = self.controller.model_info
        return (info.layers, info.heads) if info is not None else None

    def _select_row(self, layer: int, head: int) -> None:
        row = self.model.row_of(layer, head)
        if row is None:
            return
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        self.table.selectionModel().select(
            index, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)
        self.table.scrollTo(index)

    # -- clicks → intents --------------------------------------------------------------------------
    def _on_row_clicked(self, index: Any) -> None:
        source = self.proxy.mapToSource(index)
        if source.isValid():
            self.controller.select_head(*self.model.head_at(source.row()))

"""The few-shot comparison window: builder, 2–6 prompt columns, difference view, evaluation."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from explorer.core.compare import MAX_COLUMNS, MIN_COLUMNS, ColumnAnalysis
from explorer.core.errors import ExplorerError
from explorer.core.fewshot import BuiltPrompt
from explorer.gui.compare.builder import BuilderPanel
from explorer.gui.compare.column import ColumnWidget
from explorer.gui.compare.difference import DifferenceView
from explorer.gui.compare.evaluation import EvaluationPanel
from explorer.gui.compare.jobs import ColumnsRun, columns_job
from explorer.gui.plotting import escape


class CompareWindow(QMainWindow):
    """Side-by-side few-shot prompts on the main window's loaded model."""

    def __init__(self, main_window: Any) -> None:
        super().__init__()
        self.setWindowTitle("Few-shot comparison — Attention Explorer")
        self.main_window = main_window
        self.controller = main_window.controller
        self.columns: list[ColumnWidget] = []
        self.layer, self.head, self.head_mean = 0, 0, False
        self.query_index = 0
        self.job: Any = None
        self.run: ColumnsRun | None = None

        self.builder = BuilderPanel()
        self.builder.build_requested.connect(self.build_columns)
        self.add_button = QPushButton("Add column")
        self.add_button.clicked.connect(lambda: self.add_column())
        self.layer_box, self.head_box = QSpinBox(), QSpinBox()
        self.layer_box.valueChanged.connect(lambda v: self.set_head(v, self.head, self.head_mean))
        self.head_box.valueChanged.connect(lambda v: self.set_head(self.layer, v, self.head_mean))
        self.mean_box = QCheckBox("Mean over heads")
        self.mean_box.toggled.connect(lambda on: self.set_head(self.layer, self.head, on))
        self.run_button = QPushButton("Run all columns")
        self.run_button.setToolTip("Run every column on the loaded model (F5)")
        self.run_button.clicked.connect(self.run_all)
        QShortcut(QKeySequence("F5"), self, self.run_all)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel("Build columns with the zero / one / few-shot button, or edit them.")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.RichText)

        controls = QHBoxLayout()
        controls.addWidget(self.add_button)
        controls.addSpacing(12)
        controls.addWidget(QLabel("Layer"))
        controls.addWidget(self.layer_box)
        controls.addWidget(QLabel("Head"))
        controls.addWidget(self.head_box)
        controls.addWidget(self.mean_box)
        controls.addSpacing(12)
        controls.addWidget(self.run_button)
        controls.addWidget(self.progress)
        controls.addWidget(self.cancel_button)
        controls.addWidget(self.status, 1)

        self.columns_host = QWidget()
        self.columns_layout = QHBoxLayout(self.columns_host)
        self.columns_layout.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.columns_host)
        self.difference = DifferenceView()
        self.difference.choice_changed.connect(self._draw_difference)
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(scroll)
        splitter.addWidget(self.difference)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([650, 260])

        compare_tab = QWidget()
        layout = QVBoxLayout(compare_tab)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.builder)
        layout.addLayout(controls)
        layout.addWidget(splitter, 1)
        self.evaluation = EvaluationPanel(self.controller, self.builder)
        self.tabs = QTabWidget()
        self.tabs.addTab(compare_tab, "Compare")
        self.tabs.addTab(self.evaluation, "Evaluate")
        self.setCentralWidget(self.tabs)
        self.controller.model_changed.connect(self._model_changed)
        try:
            self.set_prompts(self.builder.prompts())
        except ExplorerError as exc:
            self._say(exc.message, error=True)
            self.set_texts(["", ""])
        self.resize(1600, 1000)

    # -- columns -------------------------------------------------------------------------
    def set_prompts(self, prompts: list[BuiltPrompt]) -> None:
        self._replace_columns([ColumnWidget(p.text, p) for p in prompts])

    def set_texts(self, texts: list[str]) -> None:
        self._replace_columns([ColumnWidget(t) for t in texts[:MAX_COLUMNS]])

    def _replace_columns(self, columns: list[ColumnWidget]) -> None:
        for column in self.columns:
            self.columns_layout.removeWidget(column)
            column.deleteLater()
        self.columns = []
        for column in columns:
            self._append(column)
        self._columns_changed()

    def _append(self, column: ColumnWidget) -> None:
        column.remove_requested.connect(self.remove_column)
        column.open_requested.connect(self.open_in_explorer)
        column.query_token_selected.connect(self.select_query_token)
        column.layer_clicked.connect(lambda layer: self.set_head(layer, self.head, self.head_mean))
        self.columns.append(column)
        self.columns_layout.addWidget(column, 1)

    def add_column(self, text: str | None = None) -> ColumnWidget | None:
        if len(self.columns) >= MAX_COLUMNS:
            self._say(f"At most {MAX_COLUMNS} columns.")
            return None
        last = self.columns[-1] if self.columns else None
        column = ColumnWidget(text if text is not None else (last.text() if last else ""),
                              None if text is not None or last is None else last.built)
        self._append(column)
        self._columns_changed()
        return column

    def remove_column(self, column: ColumnWidget) -> None:
        if len(self.columns) <= MIN_COLUMNS or column not in self.columns:
            return
        self.columns.remove(column)
        self.columns_layout.removeWidget(column)
        column.deleteLater()
        self._columns_changed()

    def _columns_changed(self) -> None:
        for number, column in enumerate(self.columns):
            column.set_title(number)
            column.remove_button.setEnabled(len(self.columns) > MIN_COLUMNS)
        self.add_button.setEnabled(len(self.columns) < MAX_COLUMNS)
        self.difference.set_column_count(len(self.columns))
        self._draw_difference()

    def build_columns(self) -> None:
        """The builder's zero / one / few-shot prompts as columns, then run them."""
        try:
            prompts = self.builder.prompts()
        except ExplorerError as exc:
            self._say(exc.message, error=True)
            return
        self.set_prompts(prompts)
        if self.controller.model_info is not None or self.controller.loading:
            self.run_all()
        else:
            self._say("Columns built. Load a model in the main window, then Run.")

    # -- running -------------------------------------------------------------------------
    def run_all(self) -> Any:
        """Run every column in one worker job; returns the Job (None if nothing was sent)."""
        if self.job is not None:
            return None
        try:
            template = self.builder.template()
            labels = self.builder.label_words()
        except ExplorerError as exc:
            self._say(exc.message, error=True)
            return None
        empty = [chr(ord("A") + i) for i, c in enumerate(self.columns) if not c.text().strip()]
        if empty:
            self._say(f"Column {', '.join(empty)} is empty.", error=True)
            return None
        if self.controller.model_info is None and not self.controller.loading:
            self._say("No model is loaded. Choose one from the main window's Model menu.", error=True)
            return None
        columns = list(self.columns)
        prompts = [c.prompt(template) for c in columns]
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self._say(f"Running {len(prompts)} columns…")
        self.job = self.controller.submit(
            columns_job(prompts, labels, self.controller.top_k),
            on_done=lambda run: self._columns_done(columns, run),
            on_error=self._columns_failed,
            on_progress=lambda f, m: self.progress.setValue(int(f * 1000)))
        return self.job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _finish_job(self) -> None:
        self.job = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _columns_failed(self, message: str, cancelled: bool) -> None:
        self._finish_job()
        self._say("Cancelled." if cancelled else message, error=not cancelled)

    def _columns_done(self, columns: list[ColumnWidget], run: ColumnsRun) -> None:
        self._finish_job()
        self.progress.setValue(1000)
        self.run = run
        for column, analysis in zip(columns, run.columns, strict=True):
            if column in self.columns:
                column.show_analysis(analysis, run.label_note)
        info = run.columns[0].result.model_info
        for box, top in ((self.layer_box, info.layers), (self.head_box, info.heads)):
            box.blockSignals(True)
            box.setRange(0, top - 1)
            box.blockSignals(False)
        # clamp to this model before anything draws (a switch may leave fewer layers)
        self.layer = min(max(self.layer, 0), info.layers - 1)
        self.head = min(max(self.head, 0), info.heads - 1)
        self._columns_changed()
        self.set_head(self.layer, self.head, self.head_mean)
        self.select_query_token(self.query_index)
        note = f" {run.label_note}" if run.label_note else ""
        self._say(f"Ran {len(run.columns)} columns on {info.name}.{note}", error=bool(note))

    # -- selection -----------------------------------------------------------------------
    def analyses(self) -> list[ColumnAnalysis | None]:
        return [c.analysis for c in self.columns]

    def set_head(self, layer: int, head: int, head_mean: bool = False) -> None:
        """Show ``layer`` / ``head`` (or the layer's mean over heads) in every column."""
        self.layer, self.head, self.head_mean = layer, head, head_mean
        for box, value in ((self.layer_box, layer), (self.head_box, head)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self.mean_box.blockSignals(True)
        self.mean_box.setChecked(head_mean)
        self.mean_box.blockSignals(False)
        self.head_box.setEnabled(not head_mean)
        for column in self.columns:
            column.show_heads(layer, None if head_mean else head)
        self._draw_difference()

    def select_query_token(self, index: int) -> None:
        """Select the query token ``index`` (within the query segment) in every column."""
        self.query_index = max(0, index)
        for column in self.columns:
            column.select_query_token(self.query_index)
        self._draw_difference()

    def _draw_difference(self) -> None:
        self.difference.show_difference(self.analyses(), self.layer,
                                        None if self.head_mean else self.head, self.query_index)

    def open_in_explorer(self, column: ColumnWidget) -> None:
        """Show the column's run in the main window with the selected query token and head."""
        if column.analysis is None:
            return
        selection = self.controller.selection.with_(
            token=column.absolute_token(self.query_index), layer=self.layer, head=self.head,
            head_mean=self.head_mean)
        number = self.columns.index(column)
        self.controller.show_result(column.analysis.result, selection,
                                    source=f"column {chr(ord('A') + number)} of the few-shot comparison")
        self.main_window.raise_()
        self.main_window.activateWindow()

    def _model_changed(self, info: Any) -> None:
        if any(c.analysis is not None for c in self.columns):
            self._say(f"{info.name} is loaded now: Run again to update the columns.")

    def _say(self, text: str, error: bool = False) -> None:
        safe = escape(text)
        self.status.setText(f"<span style='color:#8a1f11'>{safe}</span>" if error else safe)

    # -- session -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        a, b = self.difference.choice()
        return {**self.builder.state(), **self.evaluation.state(),
                "columns": [c.text() for c in self.columns], "query_token": self.query_index,
                "layer": self.layer, "head": self.head, "head_mean": self.head_mean,
                "difference": [a, b]}

    def apply_state(self, state: dict[str, Any]) -> None:
        self.builder.apply_state(state)
        self.evaluation.apply_state(state)
        texts = state.get("columns")
        if isinstance(texts, list) and len(texts) >= MIN_COLUMNS and all(isinstance(t, str) for t in texts):
            self.set_texts(texts)
        ints = [state.get(k) for k in ("layer", "head", "query_token")]
        if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
            self.layer, self.head, self.query_index = ints  # type: ignore[assignment]
            self.head_mean = bool(state.get("head_mean", False))
        pair = state.get("difference")
        if isinstance(pair, list) and len(pair) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair):
            self.difference.set_choice(*pair)

"""The few-shot comparison window: builder, 2–6 prompt columns (each on the main model or
its own), and below them the difference view, the label-anchor flows and the order
sensitivity of a column; the Evaluate tab."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
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
from explorer.core.fewshot import BuiltPrompt, demonstration_orders
from explorer.gui.compare.anchors import AnchorView
from explorer.gui.compare.builder import BuilderPanel
from explorer.gui.compare.column import ColumnWidget
from explorer.gui.compare.difference import DifferenceView
from explorer.gui.compare.evaluation import EvaluationPanel
from explorer.gui.compare.jobs import (
    ColumnsRun,
    ExtraModels,
    anchors_job,
    columns_job,
    on_column_model,
    orders_job,
)
from explorer.gui.compare.orders import OrderView
from explorer.gui.plotting import escape
from explorer.gui.progress_bar import ProgressBar

DEFAULT_SHUFFLES = 5


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
        self.side_job: Any = None  # an anchor-flow or order job (queued behind any run)
        self.run: ColumnsRun | None = None
        self.extra = ExtraModels(getattr(self.controller.worker, "load_function", None))
        self.flows: dict[int, Any] = {}  # id(ColumnAnalysis) -> core.icl.AnchorFlow
        self.highlight: tuple[Any, list[tuple[int, int]]] | None = None  # (RunResult, key spans)

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
        self.progress = ProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.shuffle_box = QSpinBox()
        self.shuffle_box.setRange(2, 24)
        self.shuffle_box.setValue(DEFAULT_SHUFFLES)
        self.shuffle_box.setToolTip("How many orders a column's Shuffle button tries")
        self.shuffle_box.valueChanged.connect(self._shuffle_count_changed)
        self.memory_label = QLabel("")
        self.memory_label.setToolTip("Models loaded in the worker and the memory their weights use")
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
        controls.addWidget(QLabel("Shuffle ×"))
        controls.addWidget(self.shuffle_box)
        controls.addSpacing(12)
        controls.addWidget(self.run_button)
        controls.addWidget(self.progress)
        controls.addWidget(self.cancel_button)
        controls.addWidget(self.status, 1)
        controls.addWidget(self.memory_label)

        self.columns_host = QWidget()
        self.columns_layout = QHBoxLayout(self.columns_host)
        self.columns_layout.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.columns_host)
        self.difference = DifferenceView()
        self.difference.choice_changed.connect(self._draw_difference)
        self.anchors = AnchorView()
        self.anchors.column_changed.connect(lambda _i: self.request_anchor_flow())
        self.orders = OrderView()
        self.below = QTabWidget()
        self.below.addTab(self.difference, "Difference B − A")
        self.below.addTab(self.anchors, "Label anchors")
        self.below.addTab(self.orders, "Order sensitivity")
        self.below.currentChanged.connect(self._below_changed)
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(scroll)
        splitter.addWidget(self.below)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([700, 230])

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
        main_window.run_displayed.connect(self._main_run_displayed)
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
        column.demo_selected.connect(self.select_demonstration)
        column.shuffle_requested.connect(self.shuffle_column)
        column.set_shuffle_count(self.shuffle_box.value())
        self.columns.append(column)
        self.columns_layout.addWidget(column, 1)

    def add_column(self, text: str | None = None) -> ColumnWidget | None:
        if len(self.columns) >= MAX_COLUMNS:
            self._say(f"At most {MAX_COLUMNS} columns.")
            return None
        last = self.columns[-1] if self.columns else None
        column = ColumnWidget(text if text is not None else (last.text() if last else ""),
                              None if text is not None or last is None else last.built)
        if last is not None:
            column.set_model_spec(last.model_spec())
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
        self.anchors.set_column_count(len(self.columns))
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
        specs = [c.model_spec() for c in columns]
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self._say(f"Running {len(prompts)} columns…")
        self.job = self.controller.submit(
            columns_job(prompts, labels, self.controller.top_k, template, specs, self.extra,
                        self.builder.case_insensitive()),
            on_done=lambda run: self._columns_done(columns, run),
            on_error=self._columns_failed,
            on_progress=lambda f, m: self.progress.setValue(int(f * 1000)))
        return self.job

    def cancel(self) -> None:
        for job in (self.job, self.side_job):
            if job is not None:
                job.cancel()

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
        self.flows = {}
        effects = run.effects or (None,) * len(run.columns)
        notes = run.notes or (run.label_note,) * len(run.columns)
        for column, analysis, effect, note in zip(columns, run.columns, effects, notes, strict=True):
            if column in self.columns:
                column.show_analysis(analysis, note)
                column.show_effects(effect)
        infos = [a.result.model_info for a in run.columns]
        layers, heads = max(i.layers for i in infos), max(i.heads for i in infos)
        for box, top in ((self.layer_box, layers), (self.head_box, heads)):
            box.blockSignals(True)
            box.setRange(0, top - 1)
            box.blockSignals(False)
        # clamp to these models before anything draws (a switch may leave fewer layers)
        self.layer = min(max(self.layer, 0), layers - 1)
        self.head = min(max(self.head, 0), heads - 1)
        self._columns_changed()
        self.set_head(self.layer, self.head, self.head_mean)
        self.select_query_token(self.query_index)
        self.memory_label.setText("Models: " + " · ".join(m.describe() for m in run.models)
                                  if run.models else "")
        names = ", ".join(dict.fromkeys(i.name for i in infos))
        note = f" {run.label_note}" if run.label_note else ""
        self._say(f"Ran {len(run.columns)} columns on {names}.{note}", error=bool(note))
        if self.below.currentWidget() is self.anchors:
            self.request_anchor_flow()

    # -- demonstrations, orders, anchors ---------------------------------------------------
    def select_demonstration(self, column: ColumnWidget, number: int) -> None:
        """Highlight demonstration ``number`` of ``column``: its heatmap column here, and its
        tokens (key columns) in the main window's attention map, which shows this column's
        run with the final position selected. -1 clears."""
        for other in self.columns:
            if other is not column:
                other.highlight_segment(None)
                other.effects_table.blockSignals(True)
                other.effects_table.clearSelection()
                other.effects_table.blockSignals(False)
        if number < 0 or column.analysis is None:
            column.highlight_segment(None)
            self._set_highlight(None)
            return
        segment, start, end = column.demo_span(number)
        column.highlight_segment(segment)
        result = column.analysis.result
        self._set_highlight((result, [(start, end)]))
        name = chr(ord("A") + self.columns.index(column))
        self._say(f"{name} · d{number + 1}: tokens {start}–{end - 1} highlighted here and in "
                  "the main window's attention map")
        if self.controller.result is not result:
            selection = self.controller.selection.with_(
                token=result.num_tokens - 1, layer=min(self.layer, result.model_info.layers - 1),
                head=min(self.head, result.model_info.heads - 1), head_mean=self.head_mean)
            self.controller.show_result(result, selection)

    def _set_highlight(self, highlight: tuple[Any, list[tuple[int, int]]] | None) -> None:
        self.highlight = highlight
        panel = self.main_window.attention_panel
        if highlight is None:
            panel.highlight_keys([])
        elif self.controller.result is highlight[0]:
            panel.highlight_keys(highlight[1])

    def _main_run_displayed(self, view: Any) -> None:
        """Keep the main window's key highlight only while it shows the highlighted column."""
        if self.highlight is None:
            return
        if view.result is self.highlight[0]:
            self.main_window.attention_panel.highlight_keys(self.highlight[1])
        else:
            self.highlight = None
            self.main_window.attention_panel.highlight_keys([])

    def column_job(self, column: ColumnWidget, job: Any) -> Any:
        """``job`` (``fn(model, task, emit)``) made to run on ``column``'s model: the main
        one, or the column's own (loaded in the worker's extra-model cache)."""
        return on_column_model(job, column.model_spec(), self.extra)

    def _shuffle_count_changed(self, count: int) -> None:
        for column in self.columns:
            column.set_shuffle_count(count)

    def shuffle_column(self, column: ColumnWidget) -> Any:
        """Re-run ``column`` under Shuffle ×N orders of its demonstrations (the first is its
        own order, the others drawn with the builder's seed); returns the Job."""
        if column.analysis is None or column not in self.columns:
            return None
        prompt = column.analysis.prompt
        count = sum(s.kind == "demonstration" for s in prompt.segments)
        orders = demonstration_orders(count, self.shuffle_box.value(), self.builder.seed.value())
        name = chr(ord("A") + self.columns.index(column))
        self.below.setCurrentWidget(self.orders)
        self.orders.show_message(f"Running column {name} under {len(orders)} orders…")
        try:
            labels = self.builder.label_words()
        except ExplorerError as exc:
            self.orders.show_message(exc.message)
            return None
        self.side_job = self.controller.submit(
            orders_job(prompt, labels, orders, column.model_spec(), self.extra,
                       self.builder.case_insensitive()),
            on_done=lambda spread: self._orders_done(spread, name),
            on_error=lambda message, cancelled: self._side_failed(self.orders, message, cancelled),
            on_progress=lambda f, m: self.progress.setValue(int(f * 1000)))
        return self.side_job

    def _orders_done(self, spread: Any, name: str) -> None:
        self.side_job = None
        self.orders.show_spread(spread, name)

    def _side_failed(self, view: Any, message: str, cancelled: bool) -> None:
        self.side_job = None
        view.show_message("Cancelled." if cancelled else message)

    def _below_changed(self, _index: int) -> None:
        if self.below.currentWidget() is self.anchors:
            self.request_anchor_flow()

    def request_anchor_flow(self) -> Any:
        """Compute (once per run) and draw the anchor flows of the column chosen in the
        Label anchors tab; returns the Job, or None when it is drawn from memory."""
        index = self.anchors.column()
        if not 0 <= index < len(self.columns):
            return None
        column = self.columns[index]
        name = chr(ord("A") + index)
        analysis = column.analysis
        if analysis is None:
            self.anchors.show_message(f"Run the columns first (column {name} has no result).")
            return None
        if not len(analysis.label_probs):
            self.anchors.show_message(f"Column {name} has no label probabilities, so no loss to "
                                      "take the saliency of.")
            return None
        if id(analysis) in self.flows:
            self.anchors.show_flow(self.flows[id(analysis)], name)
            return None
        try:
            template = self.builder.template()
            labels = self.builder.label_words()
        except ExplorerError as exc:
            self.anchors.show_message(exc.message)
            return None
        self.anchors.show_message(f"Computing the flows of column {name} (a forward and a "
                                  "backward pass)…")
        self.side_job = self.controller.submit(
            anchors_job(analysis.prompt, template, labels, column.model_spec(), self.extra,
                        self.builder.case_insensitive()),
            on_done=lambda flow: self._anchors_done(analysis, flow),
            on_error=lambda message, cancelled: self._side_failed(self.anchors, message, cancelled),
            on_progress=lambda f, m: self.progress.setValue(int(f * 1000)))
        return self.side_job

    def _anchors_done(self, analysis: ColumnAnalysis, flow: Any) -> None:
        self.side_job = None
        self.flows[id(analysis)] = flow
        index = self.anchors.column()
        if 0 <= index < len(self.columns) and self.columns[index].analysis is analysis:
            self.anchors.show_flow(flow, chr(ord("A") + index))

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
                "columns": [c.text() for c in self.columns],
                "column_models": [c.model_spec() or "" for c in self.columns],
                "shuffles": self.shuffle_box.value(), "query_token": self.query_index,
                "layer": self.layer, "head": self.head, "head_mean": self.head_mean,
                "difference": [a, b]}

    def apply_state(self, state: dict[str, Any]) -> None:
        self.builder.apply_state(state)
        self.evaluation.apply_state(state)
        texts = state.get("columns")
        if isinstance(texts, list) and len(texts) >= MIN_COLUMNS and all(isinstance(t, str) for t in texts):
            self.set_texts(texts)
        models = state.get("column_models")
        if isinstance(models, list) and all(isinstance(m, str) for m in models):
            for column, spec in zip(self.columns, models, strict=False):
                column.set_model_spec(spec or None)
        shuffles = state.get("shuffles")
        if isinstance(shuffles, int) and not isinstance(shuffles, bool):
            self.shuffle_box.setValue(shuffles)
        ints = [state.get(k) for k in ("layer", "head", "query_token")]
        if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
            self.layer, self.head, self.query_index = ints  # type: ignore[assignment]
            self.head_mean = bool(state.get("head_mean", False))
        pair = state.get("difference")
        if isinstance(pair, list) and len(pair) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair):
            self.difference.set_choice(*pair)

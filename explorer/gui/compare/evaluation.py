"""Accuracy against the number of demonstrations over a labelled set, in the worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.core import fewshot
from explorer.core.errors import ExplorerError
from explorer.gui.compare.builder import BuilderPanel, _with_browse
from explorer.gui.compare.jobs import evaluation_job
from explorer.gui.plotting import escape

DEFAULT_SHOTS = "0,1,2,4,8"
TABLE_COLUMNS = ("shots", "n", "accuracy", "calibrated", "p(true label)", "label mass")


class EvaluationPanel(QWidget):
    """Examples CSV, shots, calibrate; Run / Cancel with progress; plot, table, CSV export.

    The template, demonstration pool, labels and seed are the builder's."""

    def __init__(self, controller: Any, builder: BuilderPanel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.builder = builder
        self.job: Any = None
        self.evaluation: Any = None  # backend Evaluation of the last finished run
        self.progress_events: list[tuple[float, str]] = []

        self.examples_path = QLineEdit()
        self.examples_path.setPlaceholderText("shipped reviews.csv (default)")
        self.examples_path.setToolTip("Labelled items: CSV with columns text,label")
        self.shots = QLineEdit(DEFAULT_SHOTS)
        self.shots.setMaximumWidth(120)
        self.calibrate = QCheckBox("Contextual calibration")
        self.calibrate.setChecked(True)
        self.calibrate.setToolTip("Zhao et al. 2021: divide by the label probabilities on the "
                                  "content-free query 'N/A' with the same demonstrations")
        self.run_button = QPushButton("Run evaluation")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._export_dialog)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("Template, demonstration pool, labels and seed come from the "
                             "Compare tab's builder.")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.RichText)

        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot = self.plot_widget.addPlot()
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "demonstrations k")
        self.plot.setLabel("left", "accuracy")
        self.plot.setYRange(0, 1.02, padding=0)
        self.plot.showGrid(x=False, y=True, alpha=0.3)
        self.plot.addLegend(offset=(10, 10))
        self.raw_curve = self.plot.plot([], [], pen=pg.mkPen("#4a90d9", width=2), symbol="o",
                                        symbolBrush="#4a90d9", name="accuracy")
        self.calibrated_curve = self.plot.plot([], [], pen=pg.mkPen("#d0021b", width=2, style=Qt.DashLine),
                                               symbol="s", symbolBrush="#d0021b",
                                               name="calibrated accuracy")
        self.chance = pg.InfiniteLine(angle=0, pen=pg.mkPen("#999", style=Qt.DotLine))
        self.plot.addItem(self.chance)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)

        form = QHBoxLayout()
        form.addWidget(QLabel("Examples"))
        form.addLayout(_with_browse(self.examples_path, self._browse_examples), 1)
        form.addWidget(QLabel("Shots"))
        form.addWidget(self.shots)
        form.addWidget(self.calibrate)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.export_button)
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.plot_widget)
        splitter.addWidget(self.table)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(splitter, 1)

    # -- running -----------------------------------------------------------------------
    def examples(self, labels: tuple[str, ...]) -> tuple[fewshot.LabelledExample, ...]:
        path = self.examples_path.text().strip()
        return fewshot.read_labelled_csv(Path(path) if path else fewshot.shipped("reviews.csv"), labels)

    def run(self) -> Any:
        """Submit the evaluation; returns the Job (None when the inputs are wrong)."""
        if self.job is not None:
            return None
        try:
            labels = self.builder.label_words()
            shots = fewshot.parse_shots(self.shots.text())
            demos = self.builder.pool()
            examples = self.examples(labels)
            template = self.builder.template()
            if max(shots) > len(demos):
                raise ExplorerError(f"The shots ask for {max(shots)} demonstrations but the pool "
                                    f"has only {len(demos)}.")
        except ExplorerError as exc:
            self._say(exc.message, error=True)
            return None
        if self.controller.model_info is None and not self.controller.loading:
            self._say("No model is loaded. Choose one from the main window's Model menu.", error=True)
            return None
        self.progress_events = []
        self.progress.setValue(0)
        self._set_running(True)
        self._say(f"Running {len(examples)} items × k in {list(shots)}…")
        self.job = self.controller.submit(
            evaluation_job(examples, demos, labels, shots, template, self.builder.seed.value(),
                           self.calibrate.isChecked()),
            on_done=self._done, on_error=self._failed, on_progress=self._progress)
        return self.job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self._say("Cancelling after the current item…")

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _progress(self, fraction: float, stage: str) -> None:
        self.progress_events.append((fraction, stage))
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"{stage} %p%")

    def _failed(self, message: str, cancelled: bool) -> None:
        self.job = None
        self._set_running(False)
        self._say("Cancelled." if cancelled else message, error=not cancelled)

    def _done(self, evaluation: Any) -> None:
        self.job = None
        self._set_running(False)
        self.show_evaluation(evaluation)

    # -- results -------------------------------------------------------------------------
    def show_evaluation(self, evaluation: Any) -> None:
        self.evaluation = evaluation
        rows = evaluation.rows
        ks = np.array([r.shots for r in rows], dtype=float)
        self.raw_curve.setData(ks, [r.accuracy for r in rows])
        calibrated = np.array([r.calibrated_accuracy for r in rows], dtype=float)
        if np.isnan(calibrated).all():
            self.calibrated_curve.setData([], [])
        else:
            self.calibrated_curve.setData(ks, calibrated)
        self.chance.setValue(1.0 / len(evaluation.labels))
        self.plot.getAxis("bottom").setTicks([[(k, str(int(k))) for k in ks]])
        self.plot.setXRange(float(ks.min()) - 0.3, float(ks.max()) + 0.3, padding=0)
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            values = (str(r.shots), str(r.n), _cell(r.accuracy), _cell(r.calibrated_accuracy),
                      _cell(r.mean_label_prob), _cell(r.label_mass))
            for j, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self.export_button.setEnabled(True)
        summed = "; ".join(v.describe() for v in evaluation.variants)
        calibration = (f" Calibrated on {', '.join(repr(t) for t in evaluation.content_free)}."
                       if evaluation.content_free else "")
        self._say(f"Done: {len(evaluation.items)} predictions. Label probabilities summed over: "
                  f"{escape(summed)}.{calibration} Dotted line: chance.")

    def export_csv(self, summary_path: Path, items_path: Path | None = None) -> None:
        """The CLI's files: summary (one row per k) and items (one row per k and item)."""
        if self.evaluation is None:
            raise ExplorerError("Run an evaluation first.")
        fewshot.write_summary_csv(Path(summary_path), self.evaluation.rows)
        if items_path is not None:
            fewshot.write_items_csv(Path(items_path), self.evaluation.labels, self.evaluation.items)

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export evaluation summary", "fewshot.csv", "CSV (*.csv)")
        if not path:
            return
        summary = Path(path)
        items = summary.with_name(summary.stem + "-items.csv")
        try:
            self.export_csv(summary, items)
        except ExplorerError as exc:
            self._say(exc.message, error=True)
            return
        self._say(f"Saved {summary} and {items}.")

    def _browse_examples(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Labelled examples", "", "CSV (*.csv);;All files (*)")
        if path:
            self.examples_path.setText(path)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(f"<span style='color:#8a1f11'>{escape(text)}</span>" if error else text)

    # -- session -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"examples": self.examples_path.text(), "eval_shots": self.shots.text(),
                "calibrate": self.calibrate.isChecked()}

    def apply_state(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("examples"), str):
            self.examples_path.setText(state["examples"])
        if isinstance(state.get("eval_shots"), str):
            self.shots.setText(state["eval_shots"])
        if isinstance(state.get("calibrate"), bool):
            self.calibrate.setChecked(state["calibrate"])


def _cell(value: float) -> str:
    return "" if value != value else f"{value:.3f}"

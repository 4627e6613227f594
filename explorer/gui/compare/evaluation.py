"""Accuracy against the number of demonstrations over a labelled set, in the worker.

Label modes (gold / flipped / random demonstration labels) are one curve each, with the
95% bootstrap interval of every point as an error bar; several demonstration orders are
pooled per point. Results are drawn as they come (after every block of the evaluation)
with an ETA, and Cancel keeps what was finished.
"""

from __future__ import annotations

import time
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
    QPushButton,
    QSpinBox,
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
from explorer.gui.progress_bar import ProgressBar

DEFAULT_SHOTS = "0,1,2,4,8"
TABLE_COLUMNS = ("shots", "labels", "orders", "n", "accuracy", "95% CI", "calibrated",
                 "calibrated 95% CI", "p(true label)", "label mass")
MODE_COLORS = {"gold": "#4a90d9", "flipped": "#d0021b", "random": "#7b7b7b"}
MODE_OFFSETS = {"gold": 0.0, "flipped": 0.08, "random": -0.08}
"""Small x shifts so the points and bars of different modes at one k do not hide each other."""


def eta_text(fraction: float, elapsed: float) -> str:
    """'ETA 1 min 05 s' from the fraction done and the seconds spent ('' before any step)."""
    if fraction <= 0 or fraction >= 1:
        return ""
    remaining = elapsed * (1 - fraction) / fraction
    minutes, seconds = divmod(int(round(remaining)), 60)
    return f"ETA {minutes} min {seconds:02d} s" if minutes else f"ETA {seconds} s"


class EvaluationPanel(QWidget):
    """Examples CSV, shots, orders, label modes, calibrate; Run / Cancel with progress and
    ETA; plot, table, CSV export.

    The template, demonstration pool, labels, case setting and seed are the builder's."""

    def __init__(self, controller: Any, builder: BuilderPanel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.builder = builder
        self.job: Any = None
        self.evaluation: Any = None  # backend Evaluation shown (partial while running / after a cancel)
        self.progress_events: list[tuple[float, str]] = []
        self.started = 0.0
        self.elapsed = 0.0  # wall seconds of the last finished run
        self.planned_shots: tuple[int, ...] = ()

        self.examples_path = QLineEdit()
        self.examples_path.setPlaceholderText("shipped reviews.csv (default)")
        self.examples_path.setToolTip("Labelled items: CSV with columns text,label")
        self.shots = QLineEdit(DEFAULT_SHOTS)
        self.shots.setMaximumWidth(120)
        self.orders = QSpinBox()
        self.orders.setRange(1, 50)
        self.orders.setToolTip("Evaluate each k under this many demonstration orders (the seed's "
                               "own order first; at most k! exist) and pool them")
        self.mode_boxes = {mode: QCheckBox(mode) for mode in fewshot.LABEL_MODES}
        self.mode_boxes["gold"].setChecked(True)
        self.mode_boxes["gold"].setToolTip("Demonstrations with their own labels")
        self.mode_boxes["flipped"].setToolTip("Every demonstration's label flipped")
        self.mode_boxes["random"].setToolTip("Demonstration labels drawn at random (seeded), "
                                             "as in Min et al. 2022")
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
        self.progress = ProgressBar()
        self.progress.setRange(0, 1000)
        self.eta = QLabel("")
        self.eta.setMinimumWidth(130)
        self.status = QLabel("Template, demonstration pool, labels and seed come from the "
                             "Compare tab's builder.")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.RichText)

        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot = self.plot_widget.addPlot()
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "demonstrations k")
        self.plot.setLabel("left", "accuracy (bars: 95% bootstrap interval)")
        self.plot.setYRange(0, 1.02, padding=0)
        self.plot.showGrid(x=False, y=True, alpha=0.3)
        self.legend = self.plot.addLegend(offset=(10, -10))  # bottom left, below most curves
        self.curves: dict[tuple[str, str], Any] = {}  # (mode, "raw" | "calibrated") -> curve
        self.error_bars: dict[str, pg.ErrorBarItem] = {}
        for mode, color in MODE_COLORS.items():
            self.curves[(mode, "raw")] = self.plot.plot(
                [], [], pen=pg.mkPen(color, width=2), symbol="o", symbolBrush=color)
            self.curves[(mode, "calibrated")] = self.plot.plot(
                [], [], pen=pg.mkPen(color, width=1.5, style=Qt.DashLine), symbol="s",
                symbolSize=6, symbolBrush=color)
            bars = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0),
                                   bottom=np.zeros(0), beam=0.12, pen=pg.mkPen(color, width=1.5))
            self.plot.addItem(bars)
            self.error_bars[mode] = bars
        self.raw_curve = self.curves[("gold", "raw")]
        self.calibrated_curve = self.curves[("gold", "calibrated")]
        self.chance = pg.InfiniteLine(angle=0, pen=pg.mkPen("#999", style=Qt.DotLine))
        self.plot.addItem(self.chance)
        self._show_axis_for(fewshot.parse_shots(DEFAULT_SHOTS))
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)

        form = QHBoxLayout()
        form.addWidget(QLabel("Examples"))
        form.addLayout(_with_browse(self.examples_path, self._browse_examples), 1)
        form.addWidget(QLabel("Shots"))
        form.addWidget(self.shots)
        form.addWidget(QLabel("Orders"))
        form.addWidget(self.orders)
        form.addWidget(QLabel("Labels:"))
        for box in self.mode_boxes.values():
            form.addWidget(box)
        form.addWidget(self.calibrate)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.eta)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.export_button)
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.plot_widget)
        splitter.addWidget(self.table)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([900, 700])
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(splitter, 1)

    # -- running -----------------------------------------------------------------------
    def examples(self, labels: tuple[str, ...]) -> tuple[fewshot.LabelledExample, ...]:
        path = self.examples_path.text().strip()
        return fewshot.read_labelled_csv(Path(path) if path else fewshot.shipped("reviews.csv"), labels)

    def label_modes(self) -> tuple[str, ...]:
        return tuple(mode for mode, box in self.mode_boxes.items() if box.isChecked())

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
            modes = fewshot.parse_label_modes(self.label_modes())
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
        self.evaluation = None
        self.progress.setValue(0)
        self.eta.setText("")
        self._set_running(True)
        self._clear()
        self.planned_shots = shots
        self._show_axis_for(shots)
        self.started = time.monotonic()
        self._say(f"Running {len(examples)} items × k in {list(shots)} × {', '.join(modes)} labels"
                  + (f" × up to {self.orders.value()} orders" if self.orders.value() > 1 else "") + "…")
        self.job = self.controller.submit(
            evaluation_job(examples, demos, labels, shots, template, self.builder.seed.value(),
                           self.calibrate.isChecked(), self.orders.value(), modes,
                           self.builder.case_insensitive()),
            on_done=self._done, on_error=self._failed, on_progress=self._progress,
            on_event=self._partial)
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
        self.eta.setText(eta_text(fraction, time.monotonic() - self.started))

    def _partial(self, evaluation: Any) -> None:
        """A snapshot after a finished block: draw it (the run goes on)."""
        if self.job is not None:
            self.show_evaluation(evaluation)

    def _failed(self, message: str, cancelled: bool) -> None:
        self.job = None
        self._set_running(False)
        self.eta.setText("")
        if cancelled and self.evaluation is not None:
            rows = len(self.evaluation.pooled_rows())
            self._say(f"Cancelled. Kept the partial results: {rows} point(s), "
                      f"{len(self.evaluation.items)} predictions finished before the cancel.")
            return
        self._say("Cancelled." if cancelled else message, error=not cancelled)

    def _done(self, evaluation: Any) -> None:
        self.job = None
        self.elapsed = time.monotonic() - self.started
        self._set_running(False)
        self.eta.setText(f"took {self.elapsed:.1f} s")
        self.show_evaluation(evaluation)

    # -- results -------------------------------------------------------------------------
    def _show_axis_for(self, shots: tuple[int, ...]) -> None:
        """Ticks at the numbers of demonstrations (also before any result)."""
        self.plot.getAxis("bottom").setTicks([[(k, str(k)) for k in shots]])
        self.plot.setXRange(min(shots) - 0.4, max(shots) + 0.4, padding=0)

    def _clear(self) -> None:
        self.legend.clear()
        for curve in self.curves.values():
            curve.setData([], [])
        for bars in self.error_bars.values():
            bars.setData(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0))
        self.table.setRowCount(0)
        self.export_button.setEnabled(False)

    def show_evaluation(self, evaluation: Any) -> None:
        """Draw the pooled row of every (k, label mode): one curve per mode with its
        bootstrap intervals, and the table; partial evaluations as far as they go."""
        self.evaluation = evaluation
        rows = evaluation.pooled_rows()
        self._clear()
        all_ks: set[int] = set()
        for mode in MODE_COLORS:
            mine = [r for r in rows if r.label_mode == mode]
            if not mine:
                continue
            ks = np.array([r.shots for r in mine], dtype=float)
            all_ks.update(int(k) for k in ks)
            x = ks + MODE_OFFSETS[mode]
            accuracy = np.array([r.accuracy for r in mine])
            self.curves[(mode, "raw")].setData(x, accuracy)
            self.legend.addItem(self.curves[(mode, "raw")], f"accuracy, {mode} labels")
            calibrated = np.array([r.calibrated_accuracy for r in mine], dtype=float)
            if not np.isnan(calibrated).all():
                self.curves[(mode, "calibrated")].setData(x, calibrated)
                self.legend.addItem(self.curves[(mode, "calibrated")], f"calibrated, {mode} labels")
            low = np.array([r.accuracy_ci_low for r in mine])
            high = np.array([r.accuracy_ci_high for r in mine])
            self.error_bars[mode].setData(x=x, y=accuracy,
                                          top=high - accuracy, bottom=accuracy - low)
        self.chance.setValue(1.0 / len(evaluation.labels))
        if all_ks:  # the planned shots too, so the axis does not jump while results arrive
            self._show_axis_for(tuple(sorted(all_ks | set(self.planned_shots))))
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            values = (str(r.shots), r.label_mode, str(r.orders), str(r.n), _cell(r.accuracy),
                      _interval(r.accuracy_ci_low, r.accuracy_ci_high), _cell(r.calibrated_accuracy),
                      _interval(r.calibrated_ci_low, r.calibrated_ci_high),
                      _cell(r.mean_label_prob), _cell(r.label_mass))
            for j, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self.export_button.setEnabled(bool(evaluation.rows))
        if not evaluation.complete:
            self._say(f"Partial results: {len(rows)} point(s) finished so far…")
            return
        summed = "; ".join(v.describe() for v in evaluation.variants)
        calibration = (f" Calibrated on {', '.join(repr(t) for t in evaluation.content_free)}."
                       if evaluation.content_free else "")
        self._say(f"Done: {len(evaluation.items)} predictions in {self.elapsed:.1f} s. Label "
                  f"probabilities summed over: {escape(summed)}.{escape(calibration)} Bars: 95% "
                  "bootstrap intervals (items resampled, 1,000 times). Dotted line: chance.")

    def export_csv(self, summary_path: Path, items_path: Path | None = None) -> None:
        """The CLI's files: summary (one row per k, label mode and order, plus pooled rows)
        and items (one row per k, label mode, order and item)."""
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
        self._say(f"Saved {escape(str(summary))} and {escape(str(items))}.")

    def _browse_examples(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Labelled examples", "", "CSV (*.csv);;All files (*)")
        if path:
            self.examples_path.setText(path)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(f"<span style='color:#8a1f11'>{escape(text)}</span>" if error else text)

    # -- session -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"examples": self.examples_path.text(), "eval_shots": self.shots.text(),
                "calibrate": self.calibrate.isChecked(), "eval_orders": self.orders.value(),
                "label_modes": list(self.label_modes())}

    def apply_state(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("examples"), str):
            self.examples_path.setText(state["examples"])
        if isinstance(state.get("eval_shots"), str):
            self.shots.setText(state["eval_shots"])
        if isinstance(state.get("calibrate"), bool):
            self.calibrate.setChecked(state["calibrate"])
        orders = state.get("eval_orders")
        if isinstance(orders, int) and not isinstance(orders, bool):
            self.orders.setValue(orders)
        modes = state.get("label_modes")
        if isinstance(modes, list) and modes and all(m in self.mode_boxes for m in modes):
            for mode, box in self.mode_boxes.items():
                box.setChecked(mode in modes)


def _cell(value: float) -> str:
    return "" if value != value else f"{value:.3f}"


def _interval(low: float, high: float) -> str:
    return "" if low != low else f"{low:.3f}–{high:.3f}"

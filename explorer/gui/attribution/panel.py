"""The attribution panel: which input tokens matter for the next token at the selected
position, by four methods, and how faithful each one is on this prompt.

Everything heavy runs in the worker (``jobs.attribution_job``) with progress and Cancel;
the panel draws the record it gets back: the quantity explained, the integrated-gradients
completeness gap next to the steps control, a ranked list, the scores as a heat strip on
the token chips (``TokensPanel.set_token_heat``), the AOPC table and the deletion curves.
"""

from __future__ import annotations

import json
import math
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from explorer.core.attribution import (
    BASELINES,
    DEFAULT_STEPS,
    ENCODER_METHODS,
    MAX_STEPS,
    METHODS,
    Attribution,
)
from explorer.core.selection import Selection
from explorer.core.tokens import display_piece
from explorer.core.types import RunResult
from explorer.gui.attribution.jobs import Request, attribution_job
from explorer.gui.attribution.views import DeletionPlot, FaithfulnessTable, RankedList, method_title
from explorer.gui.plotting import escape
from explorer.gui.progress_bar import ProgressBar
from explorer.gui.run_view import RunView

TARGETS = (("top1", "top-1 prediction"), ("actual", "actual next token"), ("typed", "typed token"))
AUTO_DELAY_MS = 300
GAP_WARNING = 0.05
"""Relative completeness gap above which the IG line is drawn as a warning."""


class AttributionPanel(QWidget):
    """Attribution for (current run, selected token, target, settings), computed on demand
    (Compute) or automatically while the panel is shown ("auto")."""

    record_shown = Signal(object)  # Attribution, after it was drawn (scores only or complete)
    finished = Signal(object)  # Attribution with its faithfulness curves, after drawing

    def __init__(self, window: Any) -> None:
        super().__init__()
        self.window = window
        self.controller = window.controller
        self.record: Attribution | None = None
        self.request: Request | None = None
        self.job: Any = None
        self.visible = False
        self._job_token = 0
        self._stale = True
        self._timer = QTimer(self, singleShot=True, interval=AUTO_DELAY_MS)
        self._timer.timeout.connect(self.compute)
        self._build()
        self._wire()
        self._show_record(None)

    # -- construction ------------------------------------------------------------------------
    def _build(self) -> None:
        self.target_box = QComboBox()
        for key, title in TARGETS:
            self.target_box.addItem(title, key)
        self.target_box.setToolTip("The next token whose log-probability is explained")
        self.typed = QLineEdit()
        self.typed.setPlaceholderText("one token, e.g. ' Positive'")
        self.typed.setToolTip("Exactly one token of the model's vocabulary; a leading space is "
                              "part of the token (' Positive' is not 'Positive')")
        self.typed.setMaximumWidth(160)
        self.typed.setEnabled(False)
        self.method_box = QComboBox()
        self._fill_methods(METHODS)
        self.baseline_box = QComboBox()
        self.baseline_box.addItems(list(BASELINES))
        self.baseline_box.setToolTip("Integrated-gradients baseline and the replacement used by the "
                                     "deletion curves: zero embeddings or the eos / pad token's "
                                     "embedding at every position")
        self.compute_button = QPushButton("Compute")
        self.compute_button.setToolTip("Compute the attribution for the selected token")
        self.auto = QCheckBox("auto")
        self.auto.setChecked(True)
        self.auto.setToolTip("Recompute when the selected token, the target or a setting changes "
                             "(while this panel is shown)")
        self.progress = ProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMinimumWidth(220)
        self.progress.setMaximumWidth(280)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.save_button = QPushButton("Save JSON…")
        self.save_button.setToolTip("The same JSON as `attention-explorer attribute --out`")
        self.save_button.setEnabled(False)
        controls = QHBoxLayout()
        for label, widget in (("Target", self.target_box), (None, self.typed),
                              ("Method", self.method_box), ("Baseline", self.baseline_box)):
            if label:
                controls.addWidget(QLabel(label))
            controls.addWidget(widget)
        for widget in (self.compute_button, self.auto, self.progress, self.cancel_button):
            controls.addWidget(widget)
        controls.addStretch(1)
        controls.addWidget(self.save_button)

        self.quantity = QLabel("")
        self.quantity.setTextFormat(Qt.RichText)
        self.quantity.setWordWrap(True)
        self.gap = QLabel("")
        self.gap.setTextFormat(Qt.RichText)
        self.gap.setWordWrap(True)
        self.steps = QSpinBox()
        self.steps.setRange(1, MAX_STEPS)
        self.steps.setValue(DEFAULT_STEPS)
        self.steps.setPrefix("IG steps ")
        self.steps.setToolTip("Integrated-gradients steps (midpoint rule); more steps narrow the "
                              "gap only where the path through the model is smooth")
        self.more_steps = QPushButton("×4 steps")
        self.more_steps.setToolTip("Recompute with four times as many steps")
        gap_row = QHBoxLayout()
        gap_row.addWidget(self.gap, 1)
        gap_row.addWidget(self.steps)
        gap_row.addWidget(self.more_steps)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color:#8a1f11;")
        self.status.hide()

        self.ranked = RankedList()
        self.table = FaithfulnessTable()
        self.plot = DeletionPlot()
        self.faithfulness_note = QLabel("")
        self.faithfulness_note.setWordWrap(True)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.faithfulness_note)
        right_layout.addWidget(self.table, 1)
        body = QSplitter(Qt.Horizontal)
        body.addWidget(self.ranked)
        body.addWidget(right)
        body.addWidget(self.plot)
        body.setSizes([260, 330, 420])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addWidget(self.quantity)
        layout.addLayout(gap_row)
        layout.addWidget(self.status)
        layout.addWidget(body, 1)

    def _fill_methods(self, methods: tuple[str, ...]) -> None:
        current = self.method_box.currentData()
        self.method_box.blockSignals(True)
        self.method_box.clear()
        for method in methods:
            self.method_box.addItem(method_title(method), method)
        index = self.method_box.findData(current)
        self.method_box.setCurrentIndex(max(index, 0))
        self.method_box.blockSignals(False)

    def _wire(self) -> None:
        c = self.controller
        c.run_changed.connect(self._on_run)
        c.selection_changed.connect(self._on_selection)
        c.model_changed.connect(lambda _info: self._invalidate())
        self.target_box.currentIndexChanged.connect(self._on_target_kind)
        self.typed.returnPressed.connect(self._changed)
        self.typed.editingFinished.connect(self._on_typed_done)
        self.method_box.currentIndexChanged.connect(lambda _i: self._redraw())
        self.baseline_box.currentIndexChanged.connect(lambda _i: self._changed())
        self.steps.valueChanged.connect(lambda _v: self._changed())
        self.more_steps.clicked.connect(lambda: self.steps.setValue(min(MAX_STEPS, self.steps.value() * 4)))
        self.compute_button.clicked.connect(self.compute)
        self.cancel_button.clicked.connect(self.stop)
        self.save_button.clicked.connect(self._save)

    # -- state ---------------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return str(self.method_box.currentData() or METHODS[0])

    def set_method(self, method: str) -> None:
        index = self.method_box.findData(method)
        if index >= 0:
            self.method_box.setCurrentIndex(index)

    def set_target(self, kind: str, typed: str = "") -> None:
        """``kind``: top1, actual or typed (then ``typed`` is the token text)."""
        self.typed.setText(typed)
        index = self.target_box.findData(kind)
        if index == self.target_box.currentIndex():
            self._changed()
        self.target_box.setCurrentIndex(index)

    def set_shown(self, shown: bool) -> None:
        """The dock became visible (or hidden): compute what is missing while shown."""
        self.visible = shown
        if shown and self._stale:
            self._schedule()

    @property
    def busy(self) -> bool:
        return self.job is not None

    # -- intents -------------------------------------------------------------------------------
    def _on_run(self, view: RunView) -> None:
        causal = view.result.model_info.causal
        self._fill_methods(METHODS if causal else ENCODER_METHODS)
        for widget in (self.target_box, self.baseline_box, self.steps, self.more_steps):
            widget.setEnabled(causal)
        self.typed.setEnabled(causal and self.target_box.currentData() == "typed")
        self._invalidate()

    def _on_selection(self, selection: Selection) -> None:
        """Only a new token matters (a head or layer click changes nothing here)."""
        asked = self.request.position if self.request is not None else None
        if selection.token != asked:
            self._invalidate()

    def _on_target_kind(self, _index: int) -> None:
        typed = self.target_box.currentData() == "typed"
        self.typed.setEnabled(typed)
        if typed and not self.typed.text():
            self.typed.setFocus()
            return
        self._changed()

    def _on_typed_done(self) -> None:
        if self.request is None or self.typed.text() != self.request.typed:
            self._changed()

    def _changed(self) -> None:
        self._invalidate()

    def _invalidate(self) -> None:
        """The shown attribution no longer matches run / token / target / settings."""
        self._stale = True
        if self.job is not None:
            self.cancel()
        if self.record is not None:
            self._show_record(None)
        self._schedule()

    def _schedule(self) -> None:
        if self.auto.isChecked() and self.visible and self.controller.result is not None:
            self._timer.start()

    # -- work ----------------------------------------------------------------------------------
    def current_request(self) -> Request | None:
        """What Compute would ask for, or None (with a message) when it cannot run."""
        run: RunResult | None = self.controller.result
        if run is None:
            self._say("Run a prompt first.")
            return None
        position = min(max(self.controller.selection.token, 0), run.num_tokens - 1)
        kind = str(self.target_box.currentData())
        causal = run.model_info.causal
        if causal and kind == "actual" and position >= run.num_tokens - 1:
            self._say("The last token has no actual next token in the prompt; choose the top-1 "
                      "prediction or type a token.")
            return None
        if causal and kind == "typed" and not self.typed.text():
            self._say("Type the target token first (exactly one token, e.g. ' Positive').")
            return None
        return Request(run=run, position=position, target=kind if causal else "top1",
                       typed=self.typed.text(), methods=METHODS if causal else ENCODER_METHODS,
                       steps=self.steps.value(), baseline=self.baseline_box.currentText(),
                       ablation=getattr(self.controller, "shown_ablation", None))

    def compute(self) -> None:
        self._timer.stop()
        request = self.current_request()
        if request is None:
            return
        if self.job is not None:
            self.cancel()
        self._job_token += 1
        token = self._job_token
        self.request = request
        self._stale = False
        self._say("")
        self._show_record(None)
        self.quantity.setText(f"Computing the attribution of token #{request.position}…")
        self.progress.setValue(0)
        self.progress.setFormat("starting %p%")
        self.progress.show()
        self.cancel_button.show()
        self.job = self.controller.submit(
            attribution_job(request),
            on_done=lambda record: self._on_done(token, record),
            on_error=lambda message, cancelled: self._on_error(token, message, cancelled),
            on_progress=lambda fraction, stage: self._on_progress(token, fraction, stage),
            on_event=lambda record: self._on_partial(token, record))

    def stop(self) -> None:
        """The Cancel button: stop the computation and say so."""
        self.cancel()
        self.quantity.setText("")
        self._say("Cancelled. Compute (or another token) runs it again.")

    def cancel(self) -> None:
        """Drop the computation in progress (its late results are ignored)."""
        if self.job is not None:
            self.job.cancel()
            self.job = None
            self._job_token += 1  # whatever it still sends is dropped
            self._stale = True
        self._end_progress()

    def _on_progress(self, token: int, fraction: float, stage: str) -> None:
        if token == self._job_token:
            self.progress.setValue(int(fraction * 1000))
            self.progress.setFormat(f"{stage} %p%")

    def _on_partial(self, token: int, record: Any) -> None:
        if token == self._job_token and isinstance(record, Attribution):
            self._show_record(record, complete=False)

    def _on_done(self, token: int, record: Attribution) -> None:
        if token != self._job_token:
            return
        self.job = None
        self._end_progress()
        self._show_record(record)
        self.finished.emit(record)

    def _on_error(self, token: int, message: str, cancelled: bool) -> None:
        if token != self._job_token:
            return
        self.job = None
        self._stale = True
        self._end_progress()
        self.quantity.setText("")
        self._say("Cancelled." if cancelled else message)

    def _end_progress(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()

    def _say(self, message: str) -> None:
        self.status.setText(message)
        self.status.setVisible(bool(message))

    # -- drawing -------------------------------------------------------------------------------
    def _style(self) -> str:
        run = self.controller.result
        return run.model_info.piece_style if run is not None else "byte_level"

    def _redraw(self) -> None:
        if self.record is not None:
            self._show_record(self.record, complete=bool(self.record.faithfulness)
                              or self.record.target is None)

    def _show_record(self, record: Attribution | None, complete: bool = True) -> None:
        self.record = record
        method = self.method
        style = self._style()
        self.save_button.setEnabled(record is not None and complete)
        self.ranked.show_scores(record, method, style)
        self.table.show_record(record if complete else None, method)
        self.plot.show_record(record if complete else None, method)
        self.quantity.setText(self._quantity_text(record, style))
        self.gap.setText(self._gap_text(record))
        if record is None:
            self.faithfulness_note.setText("")
        elif record.target is None:
            self.faithfulness_note.setText("Encoders have no next-token probability: no "
                                           "faithfulness curves.")
        elif not complete:
            self.faithfulness_note.setText("Measuring faithfulness (deletion curves)…")
        else:
            k = len(next(iter(record.faithfulness.values())).ks) if record.faithfulness else 0
            self.faithfulness_note.setText(
                f"AOPC over {k} values of k; the plot shows p(target) as the top-k tokens of each "
                f"ordering are replaced by the {record.baseline} baseline.")
        self._show_heat(record, method, style)
        if record is not None:
            self.record_shown.emit(record)

    def _show_heat(self, record: Attribution | None, method: str, style: str) -> None:
        tokens = self.window.tokens_panel
        run = self.controller.result
        if record is None or method not in record.scores or run is None \
                or run.num_tokens != len(record.tokens):
            tokens.set_token_heat(None)
            return
        tokens.set_token_heat(record.scores[method],
                              f"Heat: {method_title(method)} of {self._explained(record, style)}")

    @staticmethod
    def _explained(record: Attribution, style: str) -> str:
        if record.target is None:
            return f"token #{record.position}"
        piece = display_piece(record.target.token, style)
        return f"log p(“{piece}” | tokens 0–{record.position})"

    def _quantity_text(self, record: Attribution | None, style: str) -> str:
        if record is None:
            return ""
        if record.target is None:
            piece = display_piece(record.tokens[record.position], style)
            return (f"Encoder: attention rollout from token #{record.position} "
                    f"(<b>{escape(piece)}</b>); there is no next-token probability to explain.")
        target = record.target
        kind = dict(TARGETS).get(self.request.target if self.request else "top1", "")
        log_p = math.log(max(target.prob, 1e-45))
        ablation = self.request.ablation if self.request else None
        ablated = "" if ablation is None or ablation.empty else (
            f" Model with {len(ablation.heads)} head(s) ablated ({ablation.mode}), as in the "
            "other panels.")
        return (f"Explaining <b>f = {escape(self._explained(record, style))}</b> = {log_p:.3f} "
                f"(p = {target.prob:.4g}; target: {escape(kind)}, id {target.id}). "
                f"Method: <b>{escape(method_title(self.method))}</b>.{escape(ablated)}")

    @staticmethod
    def _gap_text(record: Attribution | None) -> str:
        ig = None if record is None else record.ig
        if ig is None:
            return ""
        warn = ig.relative_gap > GAP_WARNING
        colour = "#b35900" if warn else "#226622"
        total = ig.f_x - ig.f_baseline + ig.delta
        note = (" — the sum misses f(x) − f(b) by this much; more steps help only where the "
                "path through the model is smooth" if warn else "")
        return (f"Integrated gradients ({ig.steps} steps, {ig.baseline} baseline): Σ scores = "
                f"{total:.4f}, f(x) − f(b) = {ig.f_x - ig.f_baseline:.4f} "
                f"(f(x) = {ig.f_x:.3f}, f(b) = {ig.f_baseline:.3f}); "
                f"<b style='color:{colour}'>completeness gap |δ| = {ig.completeness_gap:.4f} nats "
                f"({100 * ig.relative_gap:.1f}%)</b>{note}")

    # -- export --------------------------------------------------------------------------------
    def _save(self) -> None:
        if self.record is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save attribution", "attribution.json",
                                              "JSON (*.json)")
        if path:
            self.save(path)

    def save(self, path: str) -> bool:
        """Write the shown record as the ``attribute`` command's JSON; False (with a message)
        when it cannot be written."""
        if self.record is None:
            return False
        try:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(self.record.to_json(), handle, ensure_ascii=False, indent=1)
        except OSError as exc:
            self._say(f"Could not write {path}: {exc}")
            return False
        return True

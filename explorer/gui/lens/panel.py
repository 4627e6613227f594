"""The logit-lens panel: every layer's next-token guesses for the selected token, and a
layer × position heatmap of one token's probability (the full model's first choice, or a
token the user types). Clicking a cell selects that position and layer."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.core.lens import LensResult
from explorer.core.selection import Selection
from explorer.core.tokens import display_piece
from explorer.core.types import ModelInfo
from explorer.gui.lens import jobs
from explorer.gui.plotting import (
    ClickableImage,
    escape,
    highlight_rect,
    labels_that_fit,
    short_label,
)
from explorer.gui.progress_bar import ProgressBar
from explorer.gui.tool_dock import dock_showing

COLORMAP = "viridis"
AUTO_TOKENS = 128
"""Prompts up to this many tokens get their lens computed as soon as they run (when the
panel is visible); longer ones wait for the Compute button."""
TOP_K = 10
GUESSES_SHOWN = 5
LOG_FLOOR = -6.0  # log10 scale: probabilities below 1e-6 share the darkest colour
MAX_TICKS = 30


def probability_colour(cmap: Any, p: float) -> QColor:
    """The heatmap's colour for probability ``p`` (linear scale)."""
    return cmap.map(min(max(p, 0.0), 1.0), mode="qcolor")


def readable_text(colour: QColor) -> QColor:
    luminance = 0.299 * colour.red() + 0.587 * colour.green() + 0.114 * colour.blue()
    return QColor("black") if luminance > 140 else QColor("white")


class LensPanel(QWidget):
    """Draws a LensResult from (lens, selection); the lens is computed in the worker."""

    def __init__(self, window: Any) -> None:
        super().__init__()
        self.window = window
        self.controller = window.controller
        self.dock: Any = None
        self.cmap = pg.colormap.get(COLORMAP)
        self.result: Any = None  # the RunResult shown in the window
        self.lens: LensResult | None = None
        self.trace: jobs.TokenTrace | None = None
        self.job: Any = None
        self.trace_job: Any = None
        self.selection = Selection()
        self.auto_tokens = AUTO_TOKENS
        self.shown_image: np.ndarray | None = None
        self._build()
        self._wire()
        self._refresh_state()

    # -- construction ------------------------------------------------------------------------
    def _build(self) -> None:
        self.status = QLabel("Run a prompt to see the logit lens.")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.RichText)
        self.compute_button = QPushButton("Compute lens")
        self.compute_button.setToolTip("Apply the final norm and output head after every layer")
        self.progress = ProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.cancel_button = QPushButton("Cancel")
        self.token_edit = QLineEdit()
        self.token_edit.setPlaceholderText("follow a token, e.g. ' Paris' or Ġthe, then Enter")
        self.token_edit.setToolTip("The heatmap shows this token's probability after each layer")
        self.final_button = QPushButton("Full model's choice")
        self.final_button.setToolTip("Show the probability of the token the full model ranks first")
        self.log_box = QCheckBox("log scale")
        self.log_box.setToolTip(f"Colour by log10 probability (1e{int(LOG_FLOOR)} … 1)")

        self.table = QTableWidget(0, GUESSES_SHOWN + 2)
        self.table.setObjectName("lens-guesses")
        self.table.setHorizontalHeaderLabels(
            [f"#{i + 1}" for i in range(GUESSES_SHOWN)] + ["p(final)", "KL"])
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setToolTip("After the selected token: each layer's top guesses (colour = "
                              "probability), the probability of the full model's first choice "
                              "and the KL divergence from the full model (nats)")
        self.guesses_title = QLabel("")
        self.guesses_title.setTextFormat(Qt.RichText)
        self.guesses_title.setWordWrap(True)

        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot = self.plot_widget.addPlot()
        self.plot.invertY(True)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.setLabel("left", "layer")
        self.plot.setLabel("bottom", "position (scroll to zoom, drag to pan)")
        self.image = ClickableImage()
        self.image.setColorMap(self.cmap)
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=self.cmap, interactive=False, width=12)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.marker = highlight_rect("#ff3b30", alpha=0, width=2.0)
        self.plot.addItem(self.marker)
        self.heatmap_title = QLabel("")
        self.heatmap_title.setTextFormat(Qt.RichText)
        self.heatmap_title.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.compute_button)
        top.addWidget(self.progress)
        top.addWidget(self.cancel_button)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Heatmap token:"))
        controls.addWidget(self.token_edit, 1)
        controls.addWidget(self.final_button)
        controls.addWidget(self.log_box)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.guesses_title)
        left_layout.addWidget(self.table, 1)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.heatmap_title)
        right_layout.addWidget(self.plot_widget, 1)
        right_layout.addLayout(controls)
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([420, 580])  # the guesses table needs room for five columns
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)

    def _wire(self) -> None:
        c = self.controller
        self.compute_button.clicked.connect(self.compute)
        self.cancel_button.clicked.connect(self.cancel)
        self.token_edit.returnPressed.connect(lambda: self.follow_token(self.token_edit.text()))
        self.final_button.clicked.connect(self.show_final_choice)
        self.log_box.toggled.connect(lambda _on: self._draw_heatmap())
        self.image.pixel_clicked.connect(self._on_cell_clicked)
        self.table.cellClicked.connect(self._on_table_clicked)
        self.plot.sigXRangeChanged.connect(lambda *_: self._update_ticks())
        self.plot.vb.sigResized.connect(lambda *_: self._update_ticks())  # layer labels that fit
        c.run_changed.connect(self.show_run)
        c.selection_changed.connect(self.show_selection)
        c.model_changed.connect(self._on_model_changed)
        c.running_changed.connect(self._on_running_changed)

    # -- state ------------------------------------------------------------------------------
    def is_current(self) -> bool:
        """The lens belongs to the run the window shows."""
        lens, result = self.lens, self.result
        return (lens is not None and result is not None and lens.model_name == result.model_info.name
                and np.array_equal(lens.token_ids, result.token_ids))

    def _visible(self) -> bool:
        return dock_showing(self.dock)

    def _refresh_state(self) -> None:
        running = self.job is not None or self.trace_job is not None
        result = self.result
        encoder = result is not None and not result.model_info.causal
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.compute_button.setEnabled(result is not None and not encoder and not running
                                       and not self.is_current())
        self.token_edit.setEnabled(self.is_current() and not running)
        self.final_button.setEnabled(self.trace is not None)
        if running:
            return
        if result is None:
            self.status.setText("Run a prompt to see the logit lens.")
        elif encoder:
            self.status.setText(f"<b>{escape(result.model_info.name)}</b> is an encoder: it has no "
                                "next-token distribution, so there is no logit lens to read.")
        elif not self.is_current():
            self.status.setText(f"The logit lens of this prompt ({result.num_tokens:,} tokens) is "
                                "not computed yet: press <b>Compute lens</b>.")
        else:
            seconds = (self.lens.timings or {}).get("lens_s")  # type: ignore[union-attr]
            took = f" in {seconds:.1f} s" if seconds else ""
            self.status.setText(f"Logit lens of {self.lens.num_layers} layers × "  # type: ignore[union-attr]
                                f"{self.lens.num_tokens:,} positions{took}.")  # type: ignore[union-attr]

    # -- controller → panel ----------------------------------------------------------------------
    def show_run(self, view: Any) -> None:
        self.result = view.result
        self.selection = self.controller.selection
        if not self.is_current():
            self.cancel()
            self._clear()
            if self.result.model_info.causal and self.result.num_tokens <= self.auto_tokens \
                    and self._visible():
                self.compute()
        self._refresh_state()

    def show_selection(self, selection: Selection) -> None:
        self.selection = selection
        if self.is_current():
            self._draw_guesses()
            self._place_marker()

    def _on_model_changed(self, _info: ModelInfo) -> None:
        self.cancel()
        self.result = None
        self._clear()
        self._refresh_state()

    def _on_running_changed(self, running: bool) -> None:
        if running:  # a new run supersedes the lens work still queued or running
            self.cancel()

    def on_visible(self, visible: bool) -> None:
        """The dock was shown: compute a short prompt's lens now."""
        result = self.result
        if visible and result is not None and self.job is None and not self.is_current() \
                and result.model_info.causal and result.num_tokens <= self.auto_tokens:
            self.compute()

    # -- work ------------------------------------------------------------------------------
    def compute(self) -> None:
        result = self.result
        if result is None or not result.model_info.causal or self.job is not None:
            self._refresh_state()
            return
        self.progress.setValue(0)
        self.status.setText(f"Computing the logit lens of {result.num_tokens:,} tokens…")
        job = self.controller.submit(
            jobs.lens_job(result.token_ids, result.tokens, TOP_K),
            on_done=lambda lens: self._on_lens_done(job, lens),
            on_error=lambda message, cancelled: self._on_job_error(job, message, cancelled),
            on_progress=self._on_progress)
        self.job = job
        self._refresh_state()

    def follow_token(self, text: str) -> None:
        """Show ``text`` (one token) in the heatmap: its probability after every layer."""
        if not self.is_current() or self.trace_job is not None:
            return
        if not text:
            self.show_final_choice()
            return
        self.progress.setValue(0)
        self.status.setText(f"Following <code>{escape(text)}</code> through the layers…")
        job = self.controller.submit(
            jobs.token_job(self.lens, text),  # type: ignore[arg-type]
            on_done=lambda trace: self._on_trace_done(job, trace),
            on_error=lambda message, cancelled: self._on_job_error(job, message, cancelled),
            on_progress=self._on_progress)
        self.trace_job = job
        self._refresh_state()

    def show_final_choice(self) -> None:
        self.trace = None
        self._draw_heatmap()
        self._refresh_state()

    def cancel(self) -> None:
        for job in (self.job, self.trace_job):
            if job is not None:
                job.cancel()
        self.job = self.trace_job = None
        self._refresh_state()

    def _on_progress(self, fraction: float, stage: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"{stage.split(':')[0]} %p%")

    def _on_lens_done(self, job: Any, lens: LensResult) -> None:
        if job is not self.job:
            return  # superseded
        self.job = None
        self.lens = lens
        self.trace = None
        if self.is_current():
            self._draw_all()
        self._refresh_state()

    def _on_trace_done(self, job: Any, trace: jobs.TokenTrace) -> None:
        if job is not self.trace_job:
            return
        self.trace_job = None
        if self.is_current():
            self.trace = trace
            self._draw_heatmap()
        self._refresh_state()

    def _on_job_error(self, job: Any, message: str, cancelled: bool) -> None:
        if job is self.job:
            self.job = None
        elif job is self.trace_job:
            self.trace_job = None
        else:
            return
        self._refresh_state()
        if not cancelled:
            self.status.setText(f"<span style='color:#8a1f11'>{escape(message)}</span>")

    # -- drawing ----------------------------------------------------------------------------
    def _clear(self) -> None:
        self.trace = None
        self.shown_image = None
        self.image.clear()
        self.table.setRowCount(0)
        self.guesses_title.setText("")
        self.heatmap_title.setText("")
        self.marker.setRect(0, 0, 0, 0)

    def _draw_all(self) -> None:
        lens = self.lens
        assert lens is not None
        self.plot.setLimits(xMin=0, xMax=lens.num_tokens, yMin=0, yMax=lens.num_layers,
                            minXRange=min(4, lens.num_tokens))
        self._draw_heatmap()
        self.plot.setRange(xRange=(0, lens.num_tokens), yRange=(0, lens.num_layers), padding=0)
        self._draw_guesses()
        self._place_marker()
        self._update_ticks()

    def heatmap_values(self) -> np.ndarray:
        """float32[layer, position]: the probabilities the heatmap shows."""
        assert self.lens is not None
        return self.trace.probs if self.trace is not None else self.lens.lens_final_probs

    def _draw_heatmap(self) -> None:
        if not self.is_current():
            return
        values = self.heatmap_values()
        if self.log_box.isChecked():
            image = np.log10(np.maximum(values, 10.0 ** LOG_FLOOR)).astype(np.float32)
            levels = (LOG_FLOOR, 0.0)
        else:
            image, levels = values, (0.0, 1.0)
        self.shown_image = image
        self.image.setImage(image, levels=levels)
        self.colorbar.setLevels(levels)
        style = self.lens.piece_style  # type: ignore[union-attr]
        scale = " (log₁₀)" if self.log_box.isChecked() else ""
        if self.trace is not None:
            piece = display_piece(self.trace.piece, style)
            self.heatmap_title.setText(
                f"Probability{scale} of <code>{escape(piece)}</code> as the next token, after each "
                "layer (rows) at each position (columns). Click a cell to select it.")
        else:
            self.heatmap_title.setText(
                f"Probability{scale}, after each layer (rows), of the token the full model ranks "
                "first at each position (columns). Click a cell to select it.")

    def _draw_guesses(self) -> None:
        lens = self.lens
        assert lens is not None
        t = min(self.selection.token, lens.num_tokens - 1)
        style = lens.piece_style
        shown = min(GUESSES_SHOWN, lens.top_k)
        self.table.setRowCount(lens.num_layers)
        self.table.setVerticalHeaderLabels([f"L{layer}" for layer in range(lens.num_layers)])
        for layer in range(lens.num_layers):
            ids = lens.lens_ids[layer, t, :shown]
            for column, (piece, p) in enumerate(zip(lens.pieces(ids), lens.lens_probs[layer, t, :shown],
                                                    strict=True)):
                self._set_cell(layer, column, f"{display_piece(piece, style)}  {p:.0%}", float(p))
            p_final = float(lens.lens_final_probs[layer, t])
            self._set_cell(layer, GUESSES_SHOWN, f"{p_final:.1%}", p_final)
            self._set_cell(layer, GUESSES_SHOWN + 1, f"{float(lens.lens_kl[layer, t]):.2f}", None)
        final = display_piece(lens.pieces([lens.lens_final_ids[t]])[0], style)
        piece = display_piece(lens.tokens[t], style)
        self.guesses_title.setText(
            f"After token #{t} <code>{escape(piece)}</code>, each layer's top guesses "
            f"(the full model's choice: <code>{escape(final)}</code>)")
        self.table.selectRow(min(self.selection.layer, lens.num_layers - 1))

    def _set_cell(self, row: int, column: int, text: str, probability: float | None) -> None:
        item = QTableWidgetItem(text)
        if probability is not None:
            colour = probability_colour(self.cmap, probability)
            item.setBackground(QBrush(colour))
            item.setForeground(QBrush(readable_text(colour)))
            item.setData(Qt.UserRole, probability)
        self.table.setItem(row, column, item)

    def _place_marker(self) -> None:
        lens = self.lens
        if lens is None:
            return
        t = min(self.selection.token, lens.num_tokens - 1)
        layer = min(self.selection.layer, lens.num_layers - 1)
        self.marker.setRect(t, layer, 1, 1)
        x0, x1 = self.plot.viewRange()[0]
        if not x0 <= t + 0.5 <= x1:  # keep the selected position in view when zoomed in
            half = (x1 - x0) / 2
            self.plot.setXRange(t + 0.5 - half, t + 0.5 + half, padding=0)

    def _update_ticks(self) -> None:
        lens = self.lens
        if lens is None or not self.is_current():
            return
        x0, x1 = self.plot.viewRange()[0]
        start, end = max(0, int(math.floor(x0))), min(lens.num_tokens, int(math.ceil(x1)))
        stride = max(1, math.ceil((end - start) / MAX_TICKS))
        style = lens.piece_style
        ticks = [(i + 0.5, short_label(display_piece(lens.tokens[i], style), 8))
                 for i in range(start - start % stride, end, stride) if i >= start]
        self.plot.getAxis("bottom").setTicks([ticks])
        left = self.plot.getAxis("left")
        line = QFontMetrics(left.style.get("tickFont") or self.font()).height()
        every = max(1, math.ceil(lens.num_layers / labels_that_fit(self.plot.vb.boundingRect().height(), line, 1)))
        left.setTicks([[(layer + 0.5, str(layer)) for layer in range(0, lens.num_layers, every)]])

    # -- clicks → intents --------------------------------------------------------------------------
    def _on_cell_clicked(self, x: float, y: float) -> None:
        lens = self.lens
        if lens is None or not self.is_current():
            return
        position, layer = int(x), int(y)
        if 0 <= position < lens.num_tokens and 0 <= layer < lens.num_layers:
            self.controller.select_token(position)
            self.controller.select_head(layer, self.controller.selection.head)

    def _on_table_clicked(self, row: int, _column: int) -> None:
        if self.is_current():
            self.controller.select_head(row, self.controller.selection.head)

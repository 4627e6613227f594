"""One comparison column: the editable prompt, its model, and what the model made of it
(label probabilities, top-k bars, segment heatmap, query chips, demonstration effects)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.core.compare import ColumnAnalysis, query_pieces, segment_prompt, short_segment_name
from explorer.core.fewshot import BuiltPrompt, FewShotTemplate
from explorer.core.icl import DemoEffects
from explorer.core.tokens import display_piece
from explorer.gui.plotting import ClickableImage, escape, highlight_rect, short_label, strided_ticks

MAX_BARS = 6
BAR_COLOR = "#4a90d9"
LABEL_COLOR = "#f5a623"
HEAT_COLORMAP = "viridis"
LABEL_COLORS = ("#2e7d32", "#c62828", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037")
"""One colour per declared label, in order (Positive green, Negative red by default)."""
UNKNOWN_LABEL_COLOR = "#9e9e9e"
MAIN_MODEL = "(main model)"
MODEL_CHOICES = (MAIN_MODEL, "smollm2", "minilm")
EFFECT_COLUMNS = ("demo", "label", "Δp leave out", "Δp flip")


def label_color(label: str, labels: tuple[str, ...]) -> str:
    """The colour of ``label`` among the declared ``labels`` (grey when undeclared)."""
    return LABEL_COLORS[labels.index(label) % len(LABEL_COLORS)] if label in labels else UNKNOWN_LABEL_COLOR


class ColumnWidget(QFrame):
    """Editor, token count, label probabilities, top-k bars, segment heatmap, query chips."""

    remove_requested = Signal(object)  # this column
    open_requested = Signal(object)  # this column
    query_token_selected = Signal(int)  # index within the query segment
    layer_clicked = Signal(int)
    demo_selected = Signal(object, int)  # this column, demonstration number (0-based) or -1
    shuffle_requested = Signal(object)  # this column

    def __init__(self, text: str = "", prompt: BuiltPrompt | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.StyledPanel)
        self.setMinimumWidth(260)
        self.built = prompt
        self.analysis: ColumnAnalysis | None = None
        self.effects: DemoEffects | None = None
        self.shown_heat: np.ndarray | None = None  # float32[layer, segment] as drawn
        self.shown_effects: np.ndarray | None = None  # float64[demo, 2] Δp leave out / flip as drawn

        self.title = QLabel("")
        self.remove_button = QPushButton("✕")
        self.remove_button.setMaximumWidth(26)
        self.remove_button.setToolTip("Remove this column")
        self.remove_button.clicked.connect(lambda: self.remove_requested.emit(self))
        self.model_box = QComboBox()
        self.model_box.setEditable(True)
        self.model_box.addItems(list(MODEL_CHOICES))
        self.model_box.setToolTip("The model this column runs on: the main window's model, or "
                                  "another one (alias, folder, .gguf or cached hub id) kept loaded "
                                  "next to it")
        self.editor = QPlainTextEdit(text or (prompt.text if prompt else ""))
        self.editor.setFixedHeight(64)
        self.editor.setLineWrapMode(QPlainTextEdit.WidgetWidth)
        self.editor.textChanged.connect(self._edited)
        self.summary = QLabel("Not run yet.")
        self.summary.setTextFormat(Qt.RichText)
        self.summary.setWordWrap(True)
        self.summary.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.summary.setMinimumHeight(48)

        self.bars_widget = pg.GraphicsLayoutWidget()
        self.bars_widget.setFixedHeight(90)
        self.bars_plot = self.bars_widget.addPlot()
        self.bars_plot.invertY(True)
        self.bars_plot.setMenuEnabled(False)
        self.bars_plot.setMouseEnabled(x=False, y=False)
        self.bars_plot.hideButtons()
        self.bars_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.7, width=[], brushes=[])
        self.bars_plot.addItem(self.bars)

        self.heat_widget = pg.GraphicsLayoutWidget()
        self.heat_widget.setFixedHeight(112)
        self.heat_plot = self.heat_widget.addPlot()
        self.heat_plot.invertY(True)
        self.heat_plot.setMenuEnabled(False)
        self.heat_plot.setMouseEnabled(x=False, y=False)
        self.heat_plot.hideButtons()
        self.heat_plot.setLabel("left", "layer")
        self.heat_image = ClickableImage()
        self.heat_image.setColorMap(pg.colormap.get(HEAT_COLORMAP))
        self.heat_plot.addItem(self.heat_image)
        self.layer_highlight = highlight_rect("#ff3b30", alpha=0, width=2.0)
        self.heat_plot.addItem(self.layer_highlight)
        self.heat_image.pixel_clicked.connect(lambda _x, y: self.layer_clicked.emit(int(y)))

        self.chips = QListWidget()
        self.chips.setFlow(QListWidget.LeftToRight)
        self.chips.setWrapping(True)
        self.chips.setFixedHeight(46)
        self.chips.setSpacing(1)
        self.chips.setToolTip("The query's tokens: select one to select it in every column")
        self.chips.currentRowChanged.connect(self._chip_selected)

        self.effects_caption = QLabel("Demonstration effects")
        self.effects_caption.setWordWrap(True)
        self.effects_table = QTableWidget(0, len(EFFECT_COLUMNS))
        self.effects_table.setHorizontalHeaderLabels(EFFECT_COLUMNS)
        self.effects_table.verticalHeader().hide()
        self.effects_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.effects_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.effects_table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.effects_table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.effects_table.verticalHeader().setDefaultSectionSize(19)
        self.effects_table.setFixedHeight(102)
        self.effects_table.setToolTip("Click a demonstration to highlight its tokens in the heatmap "
                                      "and in the main window's attention map")
        self.effects_table.itemSelectionChanged.connect(self._effect_selected)
        self.shuffle_button = QPushButton("Shuffle ×5")
        self.shuffle_button.setToolTip("Re-run this column under other orders of the same "
                                       "demonstrations (the first is its own order)")
        self.shuffle_button.setEnabled(False)
        self.shuffle_button.clicked.connect(lambda: self.shuffle_requested.emit(self))
        self.segment_highlight = highlight_rect("#00a2ff", alpha=50, width=2.0)
        self.segment_highlight.hide()
        self.heat_plot.addItem(self.segment_highlight)
        self.open_button = QPushButton("Open in explorer")
        self.open_button.setToolTip("Show this column in the main window with the selected query "
                                    "token, layer and head")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(lambda: self.open_requested.emit(self))

        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.model_box)
        header.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(3)
        layout.addLayout(header)
        layout.addWidget(self.editor)
        layout.addWidget(self.summary)
        layout.addWidget(QLabel("Top next tokens (label words in orange)"))
        layout.addWidget(self.bars_widget)
        self.heat_caption = QLabel("Attention of the final position on each part")
        self.heat_caption.setWordWrap(True)
        layout.addWidget(self.heat_caption)
        layout.addWidget(self.heat_widget)
        layout.addWidget(QLabel("Query tokens"))
        layout.addWidget(self.chips)
        layout.addWidget(self.effects_caption)
        layout.addWidget(self.effects_table)
        buttons = QHBoxLayout()
        buttons.addWidget(self.shuffle_button)
        buttons.addWidget(self.open_button)
        layout.addLayout(buttons)
        layout.addStretch(1)

    # -- prompt -------------------------------------------------------------------------
    def text(self) -> str:
        return self.editor.toPlainText()

    def model_spec(self) -> str | None:
        """The column's own model, or None for the main window's model."""
        text = self.model_box.currentText().strip()
        return None if text in ("", MAIN_MODEL) else text

    def set_model_spec(self, spec: str | None) -> None:
        self.model_box.setCurrentText(spec or MAIN_MODEL)

    def set_title(self, number: int) -> None:
        prompt = self.analysis.prompt if self.analysis else self.built
        shots = "" if prompt is None else \
            f" — {sum(s.kind == 'demonstration' for s in prompt.segments)}-shot"
        model = ""
        if self.analysis is not None and self.model_spec():
            model = f" · {escape(self.analysis.result.model_info.name)}"
        self.title.setText(f"<b>Column {chr(ord('A') + number)}</b>{shots}{model}")

    def prompt(self, template: FewShotTemplate) -> BuiltPrompt:
        """The builder's prompt while the text is unchanged, else the edited text segmented
        with the template's separator (``core.compare.segment_prompt``)."""
        text = self.text()
        if self.built is not None and self.built.text == text:
            return self.built
        return segment_prompt(text, template)

    def _edited(self) -> None:
        if self.analysis is not None and self.analysis.prompt.text != self.text():
            self.summary.setText("<i>Edited — run again to update.</i>")

    # -- results ------------------------------------------------------------------------
    def show_analysis(self, analysis: ColumnAnalysis, label_note: str = "") -> None:
        self.analysis = analysis
        self.built = analysis.prompt
        result = analysis.result
        info = result.model_info
        style = info.piece_style
        lines = [f"<b>{result.num_tokens:,}</b> tokens"]
        if len(analysis.label_probs):
            total = analysis.label_probs.sum()
            lines[0] += f" · predicted <b>{escape(analysis.predicted)}</b>"
            for label_sum, p in zip(analysis.label_sums, analysis.label_probs, strict=True):
                share = p / total if total > 0 else 0.0
                lines.append(f"p({escape(label_sum.label)}) = <b>{p:.4f}</b> ({share:.0%} of the labels)")
            summed = "; ".join(escape(s.describe(style)) for s in analysis.label_sums)
            lines.append(f"<span style='color:#666'>summed: {summed}</span>")
        elif label_note:
            lines.append(f"<span style='color:#8a1f11'>{escape(label_note)}</span>")
        if analysis.prompt.text != self.text():  # edited while this run was in flight
            lines.insert(0, "<i>Edited since this run — run again to update.</i>")
        self.summary.setText("<br>".join(lines))
        self._draw_bars(analysis)
        names = [short_segment_name(s) for s in analysis.prompt.segments]
        self.heat_plot.getAxis("bottom").setTicks([[(i + 0.5, n) for i, n in enumerate(names)]])
        self.heat_plot.getAxis("left").setTicks(
            [strided_ticks([str(i) for i in range(info.layers)], max_labels=6)])
        self.chips.blockSignals(True)
        self.chips.clear()
        for piece in query_pieces(analysis):
            self.chips.addItem(QListWidgetItem(short_label(piece, 14)))
        self.chips.blockSignals(False)
        self.open_button.setEnabled(True)
        demos = sum(s.kind == "demonstration" for s in analysis.prompt.segments)
        self.shuffle_button.setEnabled(demos > 1 and len(analysis.label_probs) > 0)
        self.highlight_segment(None)

    def show_effects(self, effects: DemoEffects | None) -> None:
        """One row per demonstration: its label (in the label's colour) and the change of
        p(predicted label) when it is left out and when its label is flipped."""
        self.effects = effects
        self.effects_table.blockSignals(True)
        self.effects_table.clearSelection()
        self.effects_table.setRowCount(0 if effects is None else len(effects.effects))
        self.effects_table.blockSignals(False)
        if effects is None or not effects.effects or self.analysis is None:
            self.shown_effects = None
            demos = self.analysis is not None and any(
                s.kind == "demonstration" for s in self.analysis.prompt.segments)
            labelled = self.analysis is not None and len(self.analysis.label_probs) > 0
            self.effects_caption.setText(
                "Demonstration effects: no demonstrations in this column." if not demos else
                "Demonstration effects need label probabilities." if not labelled else
                "Demonstration effects: not measured.")
            return
        labels = effects.labels
        target = int(np.argmax(effects.base_probs))
        left, flipped = effects.delta_leave_out(target), effects.delta_flipped(target)
        self.shown_effects = np.stack([left, flipped], axis=1)
        for row, effect in enumerate(effects.effects):
            name = QTableWidgetItem(f"d{effect.index + 1}")
            name.setToolTip(effect.text)
            label = QTableWidgetItem(effect.label or "?")
            label.setBackground(QBrush(QColor(label_color(effect.label, labels))))
            label.setForeground(QBrush(QColor("white")))
            cells = [name, label, _delta_item(left[row]), _delta_item(flipped[row])]
            detail = "; ".join(
                f"{lab}: {effects.base_probs[i]:.4f} → {effect.leave_out_probs[i]:.4f} without it"
                + ("" if effect.flipped_probs is None else
                   f", {effect.flipped_probs[i]:.4f} as '{effect.flipped_label}'")
                for i, lab in enumerate(labels))
            for column, item in enumerate(cells):
                if column > 1:
                    item.setToolTip(detail)
                self.effects_table.setItem(row, column, item)
        self.effects_caption.setText(
            f"Demonstration effects on p({escape(labels[target])}) = {effects.base_probs[target]:.4f}")
        self.effects_caption.setToolTip(
            "Δ p(predicted label) when the demonstration is left out / when its label is "
            "flipped (the exact prompts are run again on the shared prefix's cache). Click a "
            "demonstration to highlight its tokens.")

    def highlight_segment(self, segment: int | None) -> None:
        """Outline one segment's column of the heatmap (None hides the outline)."""
        if segment is None or self.analysis is None or self.shown_heat is None:
            self.segment_highlight.hide()
            return
        self.segment_highlight.setRect(segment, 0, 1, self.shown_heat.shape[0])
        self.segment_highlight.show()

    def demo_span(self, number: int) -> tuple[int, int, int]:
        """(segment index, first token, end token) of demonstration ``number`` (0-based)."""
        assert self.analysis is not None
        segment = [i for i, s in enumerate(self.analysis.prompt.segments)
                   if s.kind == "demonstration"][number]
        start, end = self.analysis.spans[segment]
        return segment, start, end

    def select_demonstration(self, number: int) -> None:
        """Select row ``number`` of the effects table (emits ``demo_selected``)."""
        self.effects_table.selectRow(number)

    def _effect_selected(self) -> None:
        rows = self.effects_table.selectionModel().selectedRows()
        self.demo_selected.emit(self, rows[0].row() if rows else -1)

    def _draw_bars(self, analysis: ColumnAnalysis) -> None:
        result = analysis.result
        if not result.has_next_token:
            self.bars.setOpts(x0=[], y=[], width=[], brushes=[])
            self.bars_plot.getAxis("left").setTicks([[]])
            self.bars_widget.hide()
            return
        self.bars_widget.show()
        shown = min(MAX_BARS, result.top_k)
        probs = result.topk_probs[-1, :shown]
        ids = result.topk_ids[-1, :shown]
        label_ids = {i for s in analysis.label_sums for i in s.ids}
        style = result.model_info.piece_style
        pieces = [display_piece(t, style) for t in result.topk_tokens[-1][:shown]]
        brushes = [pg.mkBrush(LABEL_COLOR if int(t) in label_ids else BAR_COLOR) for t in ids]
        self.bars.setOpts(x0=np.zeros(shown), y=np.arange(shown), width=probs, height=0.7,
                          brushes=brushes)
        self.bars_plot.getAxis("left").setTicks(
            [[(k, f"{short_label(pieces[k], 10)} {probs[k]:.1%}") for k in range(shown)]])
        self.bars_plot.setXRange(0, max(float(probs.max()) if shown else 1.0, 1e-3) * 1.05, padding=0)
        self.bars_plot.setYRange(-0.5, shown - 0.5, padding=0)

    def show_heads(self, layer: int, head: int | None) -> None:
        """Draw float32[layer, segment] for ``head`` (None = mean over heads)."""
        if self.analysis is None:
            return
        layers, heads = self.analysis.heat.shape[:2]  # a column on its own model may have fewer
        layer = min(layer, layers - 1)
        head = None if head is None else min(head, heads - 1)
        heat = self.analysis.layer_heat(head)
        self.shown_heat = heat
        self.heat_image.setImage(heat, levels=(0.0, 1.0))
        layers, segments = heat.shape
        self.layer_highlight.setRect(0, layer, segments, 1)
        self.heat_plot.setRange(xRange=(0, segments), yRange=(0, layers), padding=0.01)
        which = "mean over heads" if head is None else f"head {head}"
        self.heat_caption.setText(f"Final token's attention on each part ({which}, 0–1)")
        self.heat_caption.setToolTip(f"Rows = layers (red outline: layer {layer}), columns = the "
                                     "prompt's parts; each cell sums the attention of the final "
                                     "position over the part's tokens")

    def select_query_token(self, index: int) -> None:
        """Select chip ``index`` without emitting (the window syncs all columns)."""
        self.chips.blockSignals(True)
        self.chips.setCurrentRow(index if 0 <= index < self.chips.count() else -1)
        self.chips.blockSignals(False)

    def _chip_selected(self, row: int) -> None:
        if row >= 0:
            self.query_token_selected.emit(row)

    def set_shuffle_count(self, count: int) -> None:
        self.shuffle_button.setText(f"Shuffle ×{count}")

    def absolute_token(self, query_index: int) -> int:
        """Absolute token index of the query token ``query_index`` (clamped)."""
        assert self.analysis is not None
        positions = self.analysis.query_positions
        if not len(positions):
            return self.analysis.result.num_tokens - 1
        return int(positions[min(max(query_index, 0), len(positions) - 1)])


def format_delta(value: float) -> str:
    """A signed probability change: four decimals, or two significant digits below 0.001
    (so a small change never reads as "-0.0000")."""
    return f"{value:+.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:+.1e}"


def _delta_item(value: float) -> QTableWidgetItem:
    """A signed probability change, green when it raises p and red when it lowers it."""
    if value != value:
        item = QTableWidgetItem("—")
        item.setToolTip("This label cannot be flipped (not a declared label).")
        return item
    item = QTableWidgetItem(format_delta(value))
    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    if abs(value) >= 5e-5:
        item.setForeground(QBrush(QColor("#1b7f2a" if value > 0 else "#b3261e")))
    return item

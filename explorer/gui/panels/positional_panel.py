"""Positional encoding: the loaded model's real scheme, or the textbook sinusoid."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from explorer.core import positional as pos
from explorer.core.selection import Selection
from explorer.core.types import RopeGroup, RunResult
from explorer.gui.plotting import lean_axes

VIEWS = {
    "rotary": ["cos(angle)", "sin(angle)", "angle mod 2π"],
    "learned": ["embedding rows", "position × position similarity"],
    "alibi": ["bias per head"],
    "none": [],
    "sinusoidal": ["encoding"],
}

HEAT_ROWS = 2048
"""Most positions the heat map computes and draws: a longer prompt draws this many, one in
the middle of each equal band of positions (a 32,768-token table is 4 M values, and
computing it took the window's thread 50-170 ms). The vector plot is always the selected
position's own row."""


def heat_positions(num_positions: int) -> np.ndarray:
    """int64[rows]: the position each heat-map row shows (every one up to ``HEAT_ROWS``)."""
    if num_positions <= HEAT_ROWS:
        return np.arange(num_positions, dtype=np.int64)
    return ((np.arange(HEAT_ROWS) + 0.5) * num_positions / HEAT_ROWS).astype(np.int64)


PLACEHOLDER = ("<b>Positional encoding</b><br>After the first run: how this model tells positions "
               "apart — its rotary angles or learned position vectors, one row per token, with "
               "the selected token's vector plotted on the right.")
TEXTBOOK = ("<b>Textbook sinusoid</b> (Vaswani et al. 2017): PE(pos, 2i) = sin(pos / 10000<sup>2i/d</sup>), "
            "PE(pos, 2i+1) = cos(pos / 10000<sup>2i/d</sup>), d = {d}. Not what this model uses.")


def _layer_list(layers: tuple[int, ...]) -> str:
    return ", ".join(str(i) for i in layers) if len(layers) <= 6 else \
        f"{', '.join(str(i) for i in layers[:5])}, … ({len(layers)} layers)"


def base_text(base: float | None) -> str:
    """10,000 / 1,000,000 / 500,000.5 ('?' when unknown)."""
    if base is None:
        return "?"
    return f"{int(base):,}" if float(base).is_integer() else f"{base:,g}"


def rope_groups_text(groups: tuple[RopeGroup, ...], shown: RopeGroup | None) -> str:
    """One line per rotary group: its base and layers; the shown one in bold."""
    lines = []
    for group in groups:
        line = f"{group.label}: base {base_text(group.base)}, layers {_layer_list(group.layers)}"
        lines.append(f"<b>{line}</b>" if group == shown else line)
    return "<br>Two bases (the larger rotates slower):<br>" + "<br>".join(lines)


def scheme_text(result: RunResult, group: RopeGroup | None = None) -> str:
    info = result.model_info
    if info.positional_kind == "rotary":
        base = group.base if group is not None else info.rope_base
        text = (f"<b>Rotary (RoPE)</b>: each query/key pair of dimensions (2i, 2i+1) is rotated by "
                f"angle = pos · θ<sub>i</sub>, θ<sub>i</sub> = base<sup>−2i/d</sup>; base = "
                f"{base_text(base) if len(info.rope_groups) > 1 else f'{base:g}' if base else '?'}, "
                f"d = {info.rope_dims} rotary dims per head "
                f"({(info.rope_dims or 0) // 2} frequency pairs). Attention then depends on "
                "relative position. Columns: frequency pair i (fast → slow).")
        if len(info.rope_groups) > 1:
            text += rope_groups_text(info.rope_groups, group)
        return text
    if info.positional_kind == "learned":
        return (f"<b>Learned absolute</b> position embeddings: row p of a trained table is added to "
                f"token p's embedding ({info.hidden_size} dims, {info.context_length} positions).")
    if info.positional_kind == "none" and info.architecture.lower().startswith(("t5", "mt5", "umt5", "longt5")):
        return ("<b>Relative position bias</b> (T5): no position vectors; each head adds a learned "
                "bias, looked up by the bucketed distance between query and key, to its "
                "attention scores.")
    if info.positional_kind == "alibi":
        return "<b>ALiBi</b>: no position vectors; each head adds −slope · distance to its attention scores."
    return "<b>No positional encoding</b> found in this model."


class PositionalPanel(QWidget):
    options_changed = Signal(dict)  # {"textbook_positions": bool}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: RunResult | None = None
        self.selection = Selection()
        self.view_box = QComboBox()
        self.view_box.setToolTip("What to draw from the model's positional scheme")
        self.view_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.view_box.setMinimumContentsLength(10)  # long view names elide, never widen the dock
        self.rope_box = QComboBox()
        self.rope_box.setToolTip("Which layers' rotary embedding to draw (local and global "
                                 "layers rotate with different bases)")
        self.rope_box.hide()
        self.textbook_box = QCheckBox("Textbook sinusoid")
        self.textbook_box.setToolTip("Compare with the sinusoid of 'Attention Is All You Need'")
        self.formula = QLabel("")
        self.formula.setWordWrap(True)
        self.formula.setTextFormat(Qt.RichText)
        self.formula.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.plots = pg.GraphicsLayoutWidget()
        self.heat_plot = self.plots.addPlot(row=0, col=0)
        self.heat_plot.invertY(True)
        self.heat_plot.setMenuEnabled(False)
        self.heat_plot.setLabel("left", "position")
        self.heat = pg.ImageItem()
        self.heat.setColorMap(pg.colormap.get("CET-D1"))
        self.heat_plot.addItem(self.heat)
        self.position_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#ff3b30", width=2))
        self.heat_plot.addItem(self.position_line)
        self.vector_plot = self.plots.addPlot(row=0, col=1)
        self.vector_plot.setMenuEnabled(False)
        self.vector_plot.setLabel("bottom", "column")
        self.vector_curve = self.vector_plot.plot([], [], pen=pg.mkPen("#d0021b", width=1.5),
                                                  symbol="o", symbolSize=3)
        self.plots.ci.layout.setColumnStretchFactor(0, 3)
        self.plots.ci.layout.setColumnStretchFactor(1, 2)
        lean_axes(self.plots)
        self.plots.hide()  # until the first result; the placeholder says what will appear
        self.placeholder = QLabel(PLACEHOLDER)
        self.placeholder.setObjectName("positional-placeholder")
        self.placeholder.setWordWrap(True)
        self.placeholder.setTextFormat(Qt.RichText)
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setStyleSheet("color:#6b7280;")
        top = QHBoxLayout()
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.view_box, 1)
        side = QVBoxLayout()
        side.addLayout(top)
        side.addWidget(self.textbook_box)  # under the menu: the side column stays narrow
        side.addWidget(self.rope_box)
        side.addWidget(self.formula, 1)
        side_widget = QWidget()
        side_widget.setLayout(side)
        side_widget.setFixedWidth(340)  # the formula's text never moves the plots
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(side_widget)
        layout.addWidget(self.plots, 1)
        layout.addWidget(self.placeholder, 1)
        self.view_box.currentIndexChanged.connect(lambda _: self._redraw())
        self.rope_box.currentIndexChanged.connect(lambda _: self._redraw())
        self.textbook_box.toggled.connect(lambda on: self.options_changed.emit({"textbook_positions": on}))
        self.table = np.zeros((0, 0), np.float32)  # the heat map: float32[heat row, column]
        self.table_positions = np.zeros(0, np.int64)  # the position of each heat row
        self.columns_x = np.zeros(0, np.float64)  # each column's x (a position, or its index)
        self.shown_position: int | None = None  # the row drawn in the vector plot

    def show_result(self, result: RunResult, selection: Selection | None = None) -> None:
        """Draw ``result`` (with ``selection`` when given: drawn once, not twice)."""
        if selection is not None:
            self._take_selection(selection)
        kind_changed = self.result is None or self.result.positional_kind != result.positional_kind
        self.result = result
        if kind_changed:
            self.view_box.blockSignals(True)
            self.view_box.clear()
            self.view_box.addItems(VIEWS.get(result.positional_kind, []))
            self.view_box.blockSignals(False)
        self._fill_rope_box(result.model_info.rope_groups)
        self._redraw()

    def _fill_rope_box(self, groups: tuple[RopeGroup, ...]) -> None:
        """One entry per rotary group when the model has more than one (Gemma 3)."""
        entries = [f"{g.label} layers: base {base_text(g.base)}" for g in groups] if len(groups) > 1 else []
        current = [self.rope_box.itemText(i) for i in range(self.rope_box.count())]
        if entries != current:
            self.rope_box.blockSignals(True)
            self.rope_box.clear()
            self.rope_box.addItems(entries)
            self.rope_box.blockSignals(False)
        self.rope_box.setVisible(bool(entries))

    def rope_group(self) -> RopeGroup | None:
        """The rotary group drawn (None: the model has one, drawn from result.positional)."""
        groups = self.result.model_info.rope_groups if self.result is not None else ()
        index = self.rope_box.currentIndex()
        return groups[index] if len(groups) > 1 and 0 <= index < len(groups) else None

    def show_selection(self, selection: Selection) -> bool:
        """Draw ``selection``; False when what it shows is drawn already (a click on
        another head changes nothing here)."""
        if self._take_selection(selection):
            self._redraw()
        elif self._drawn_position() != self.shown_position:
            self._draw_position()
        else:
            return False
        return True

    def _take_selection(self, selection: Selection) -> bool:
        """Keep ``selection``; True when it switches the textbook sinusoid on or off."""
        textbook_changed = selection.textbook_positions != self.selection.textbook_positions
        self.selection = selection
        if self.textbook_box.isChecked() != selection.textbook_positions:
            self.textbook_box.blockSignals(True)
            self.textbook_box.setChecked(selection.textbook_positions)
            self.textbook_box.blockSignals(False)
        return textbook_changed

    def current_table(self, positions: np.ndarray | None = None) -> tuple[np.ndarray, str, str]:
        """(float32[position, column] at ``positions`` (default: all), column axis label,
        explanation). The similarity view's columns are ``heat_positions``."""
        result = self.result
        assert result is not None
        n = result.num_tokens
        rows = np.arange(n, dtype=np.int64) if positions is None else np.asarray(positions)
        if self.selection.textbook_positions:
            d = result.model_info.hidden_size
            return pos.sinusoidal_rows(rows, d), "dimension", TEXTBOOK.format(d=d)
        kind, view = result.positional_kind, self.view_box.currentText()
        table = result.positional
        if kind == "rotary":
            group = self.rope_group()
            angles = (pos.rope_angles_at(rows, np.asarray(group.inv_freq)) if group is not None
                      else table[rows])
            if view.startswith("sin"):
                angles = np.sin(angles)
            elif view.startswith("angle"):
                angles = np.mod(angles, 2 * np.pi)
            else:
                angles = np.cos(angles)
            return angles.astype(np.float32), "frequency pair i", scheme_text(result, group)
        if self._similarity_view():
            similarity = pos.cosine_similarity_matrix(table[rows], table[heat_positions(n)])
            return similarity, "position", scheme_text(result)
        column = {"learned": "dimension", "alibi": "head"}.get(kind, "column")
        return table[rows], column, scheme_text(result)

    def _similarity_view(self) -> bool:
        """The learned scheme's position × position view: its columns are positions too."""
        return (self.result is not None and not self.selection.textbook_positions
                and self.result.positional_kind == "learned"
                and self.view_box.currentText().startswith("position"))

    def _redraw(self) -> None:
        if self.result is None:
            return
        n = self.result.num_tokens
        self.table_positions = heat_positions(n)
        table, column_label, text = self.current_table(self.table_positions)
        self.table = table
        similarity, columns = self._similarity_view(), table.shape[1]
        self.columns_x = (self.table_positions.astype(np.float64) if similarity
                          else np.arange(columns, dtype=np.float64))
        width = n if similarity else columns
        self.formula.setText(text)
        self.placeholder.hide()
        self.plots.show()
        if table.size:
            lo, hi = float(np.nanmin(table)), float(np.nanmax(table))
            bound = max(abs(lo), abs(hi)) or 1.0
            levels = (0.0, hi) if lo >= 0 else (-bound, bound)
            # each image row covers its band of positions: the y axis counts positions
            self.heat.setImage(table, levels=levels, rect=QRectF(0, 0, max(width, 1), max(n, 1)))
            # the vector plot keeps one y scale for the drawn rows: positions compare
            span = (hi - lo) or 1.0
            self.vector_plot.setYRange(lo - 0.05 * span, hi + 0.05 * span, padding=0)
        else:
            self.heat.clear()
        if self.heat_plot.getAxis("bottom").labelText != column_label:  # a label lays out anew
            self.heat_plot.setLabel("bottom", column_label)
        rows = len(self.table_positions)
        per = n / max(rows, 1)  # 2,049 positions: "a row per 1.0005", not "1"
        row_label = ("position" if rows == n or not table.size
                     else f"position (a row per {per:{'.3g' if per >= 1.01 else '.4f'}})")
        if self.heat_plot.getAxis("left").labelText != row_label:
            self.heat_plot.setLabel("left", row_label)
        # rescale to this result: every row and column, nothing left from a longer run
        self.heat_plot.setRange(xRange=(0, max(width, 1)), yRange=(0, max(n, 1)), padding=0)
        self.vector_plot.setXRange(0, max(width - 1, 1), padding=0.02)
        self._draw_position()

    def _drawn_position(self) -> int | None:
        """The position the selection puts under the red line (None: no table)."""
        if self.result is None or self.table.size == 0:
            return None
        return min(self.selection.token, self.result.num_tokens - 1)

    def _draw_position(self) -> None:
        self.shown_position = p = self._drawn_position()
        if p is None:
            self.vector_curve.setData([], [])
            return
        self.position_line.setPos(p + 0.5)
        every = len(self.table_positions) == self.result.num_tokens
        row = self.table[p] if every else self.current_table(np.array([p], np.int64))[0][0]
        self.vector_curve.setData(self.columns_x, row)
        self.vector_plot.setTitle(f"position {p}")

    def shown_vector(self) -> np.ndarray:
        x, y = self.vector_curve.getData()
        return np.asarray(y)

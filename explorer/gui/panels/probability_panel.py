"""Next-token probabilities after the selected token, as horizontal bars."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from explorer.core.ablation import AblationShift
from explorer.core.selection import Selection
from explorer.core.tokens import display_piece
from explorer.core.types import RunResult
from explorer.gui.plotting import escape, lean_axes

BAR_COLOR = "#4a90d9"
ACTUAL_COLOR = "#f5a623"
PLACEHOLDER = ("After the first run: the model's top guesses for the token that comes right after "
               "the selected one, as bars, with the token that really came next in orange and "
               "how surprising it was, in bits.")
BASE_COLOR = "#9a9a9a"  # the unablated model's bars beside an ablated run


class ProbabilityPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: RunResult | None = None
        self.rows_error: str | None = None
        self.title = QLabel("Next-token probabilities")
        self.title.setTextFormat(Qt.RichText)
        self.title.setWordWrap(True)
        self.actual = QLabel("")
        self.actual.setTextFormat(Qt.RichText)
        self.actual.setWordWrap(True)
        # two lines kept from the start: the first run's text does not shrink the bars' plot
        self.actual.setMinimumHeight(2 * self.actual.fontMetrics().lineSpacing() + 4)
        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot = self.plot_widget.addPlot()
        self.plot.invertY(True)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setLabel("bottom", "probability")
        self.plot.hideButtons()
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.max_bars = 12
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.7, width=[], brushes=[])
        self.plot.addItem(self.bars)
        self.base_bars = pg.BarGraphItem(x0=[], y=[], height=0.35, width=[], brush=BASE_COLOR)
        self.plot.addItem(self.base_bars)
        lean_axes(self.plot_widget)
        self.shift: AblationShift | None = None
        self.selection: Selection | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.placeholder = QLabel(PLACEHOLDER)
        self.placeholder.setObjectName("probability-placeholder")
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setStyleSheet("color:#6b7280;")
        self.plot_widget.hide()  # no empty axes before the first result
        layout.addWidget(self.title)
        layout.addWidget(self.plot_widget, 1)
        layout.addWidget(self.placeholder, 1)
        layout.addWidget(self.actual)
        self.shown_position: int | None = None
        self.shown_probs = np.zeros(0, np.float32)
        self.shown_base_probs = np.zeros(0, np.float32)  # NaN where the base top-k lacks it

    def show_result(self, result: RunResult, rows_error: str | None = None) -> None:
        """``rows_error``: why a long run's pending next-token rows will not come."""
        self.result = result
        self.rows_error = rows_error
        self.shown_position = None

    def set_shift(self, shift: AblationShift | None) -> None:
        """Draw the unablated distribution (grey) beside the shown, ablated run, with Δp and
        KL; None: the shown run alone."""
        self.shift = shift
        self.shown_position = None  # drawn again with (or without) the shift
        if self.selection is not None:
            self.show_selection(self.selection)

    def _active_shift(self) -> AblationShift | None:
        shift, result = self.shift, self.result
        if shift is None or result is None or shift.base.prompt != result.prompt or \
                shift.base.num_tokens != result.num_tokens:
            return None
        return shift

    def show_selection(self, selection: Selection) -> bool:
        """Draw the bars after ``selection.token``; False when they are drawn already (a
        click on another head changes nothing here)."""
        self.selection = selection
        result = self.result
        if result is None or self.shown_position == selection.token:
            return False
        self.placeholder.hide()
        self.base_bars.setOpts(x0=[], y=[], width=[])
        self.shown_base_probs = np.zeros(0, np.float32)
        if not result.has_next_token:
            self.title.setText(f"<b>{result.model_info.name}</b> is an encoder: it does not predict "
                               "a next token.")
            self.bars.setOpts(x0=[], y=[], width=[], brushes=[])
            self.plot_widget.hide()
            self.actual.setText("")
            self.shown_position = None
            return True
        self.plot_widget.show()
        i = selection.token
        if not result.has_next_tokens_at(i):
            self._show_pending(result, i)
            return True
        style = result.model_info.piece_style
        shown = min(self.max_bars, result.top_k)
        probs = result.topk_probs[i, :shown]
        ids = result.topk_ids[i, :shown]
        labels = [display_piece(t, style) for t in result.topk_tokens[i][:shown]]
        actual_id = int(result.token_ids[i + 1]) if i + 1 < result.num_tokens else None
        brushes = [pg.mkBrush(ACTUAL_COLOR if actual_id == int(t) else BAR_COLOR) for t in ids]
        shift = self._active_shift()
        ticks = [f"{labels[k]}  {probs[k]:.1%}" for k in range(len(labels))]
        if shift is None:
            self.bars.setOpts(x0=np.zeros(len(probs)), y=np.arange(len(probs)), width=probs,
                              height=0.7, brushes=brushes)
        else:
            base = [shift.base_prob(i, int(t)) for t in ids]
            self.shown_base_probs = np.array([np.nan if b is None else b for b in base], np.float32)
            known = ~np.isnan(self.shown_base_probs)
            self.bars.setOpts(x0=np.zeros(len(probs)), y=np.arange(len(probs)) - 0.18, width=probs,
                              height=0.36, brushes=brushes)
            self.base_bars.setOpts(x0=np.zeros(int(known.sum())),
                                   y=np.arange(len(probs))[known] + 0.18,
                                   width=self.shown_base_probs[known], height=0.36)
            ticks = [f"{t} (was {'?' if b is None else f'{b:.1%}'})" for t, b in zip(ticks, base, strict=True)]
        self.plot.getAxis("left").setTicks([list(enumerate(ticks))])
        widest = np.nanmax(np.concatenate([probs, self.shown_base_probs, [1e-3]]))
        self.plot.setXRange(0, float(widest) * 1.05, padding=0)
        self.plot.setYRange(-0.5, len(probs) - 0.5, padding=0)
        piece = display_piece(result.tokens[i], style)
        self.title.setText(f"What the model predicts right after token #{i} <code>{escape(piece)}</code> "
                           f"(top {len(probs)} of {result.model_info.vocab_size:,}; the actual next token in orange)")
        if actual_id is None:
            self.actual.setText("This is the last token: the bars are the model's continuation.")
        else:
            p, rank = float(result.actual_next_probs[i]), int(result.actual_next_ranks[i])
            nxt = display_piece(result.tokens[i + 1], style)
            bits = -math.log2(p) if p > 0 else float("inf")
            self.actual.setText(f"Actual next token <code>{escape(nxt)}</code>: rank {rank}, "
                                f"p = {p:.2%} ({bits:.1f} bits of surprise)"
                                + ("" if rank <= len(probs) else " — not in the bars above"))
        if shift is not None:
            self.actual.setText(self.actual.text() + "<br>" + self._shift_text(shift, i, actual_id))
            self.title.setText(self.title.text() + "; grey: without the ablated heads")
        self.shown_position = i
        self.shown_probs = probs
        return True

    def _show_pending(self, result: RunResult, i: int) -> None:
        """No bars after token ``i``: the long run's rows are still being computed (or
        could not be, ``rows_error``)."""
        self.bars.setOpts(x0=[], y=[], width=[], brushes=[])
        self.plot.getAxis("left").setTicks([[]])
        piece = display_piece(result.tokens[i], result.model_info.piece_style)
        last = result.num_tokens - 1
        if self.rows_error:
            self.title.setText(f"What the model predicts right after token #{i} "
                               f"<code>{escape(piece)}</code>: could not be computed")
            self.actual.setText(f"{escape(self.rows_error)} Only the bars after the last token, "
                                f"#{last}, are there; run the prompt again for the others.")
        else:
            self.title.setText(f"What the model predicts right after token #{i} "
                               f"<code>{escape(piece)}</code>: still being computed…")
            self.actual.setText("The bars after every position appear here in a moment "
                                f"(those after the last token, #{last}, are ready).")
        self.shown_position = None
        self.shown_probs = np.zeros(0, np.float32)

    def _shift_text(self, shift: AblationShift, i: int, actual_id: int | None) -> str:
        """Δp of the actual next token (the unablated top-1 after the last token) and KL."""
        result = self.result
        assert result is not None
        if actual_id is None:
            token_id = int(np.argmax(shift.base.last_probs))
            now, what = float(result.last_probs[token_id]), "unablated top-1"
        else:
            token_id, now, what = actual_id, float(result.actual_next_probs[i]), "actual next"
        before = shift.base_prob(i, token_id)
        piece = display_piece(str(shift.base.topk_tokens[i][0]) if actual_id is None
                              else result.tokens[i + 1], result.model_info.piece_style)
        change = f"{before:.2%} → {now:.2%} (Δp {100 * (now - (before or 0.0)):+.2f} points)" \
            if before is not None else f"{now:.2%}"
        heads = escape(shift.ablation.describe())
        return (f"<b>Ablated</b> {heads} ({shift.ablation.mode}): {what} <code>{escape(piece)}</code> "
                f"{change}; KL(base‖ablated) = {float(shift.kl[i]):.4f} nats")

"""The completion view: the prompt, then the generated tokens as clickable spans coloured
by their probability, streamed in one at a time; hover for the alternatives."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QTextBrowser, QTextEdit, QToolTip, QWidget

from explorer.core.generation_types import GenerationResult, GenerationStep
from explorer.core.sampling import SamplingSettings
from explorer.core.tokens import display_piece
from explorer.gui.playground.formatting import FORCED_BORDER, prob_color, token_label, tooltip_html

PROMPT_COLOR = "#5f6b7a"
SPECIAL_COLOR = "#7a4fd6"


class CompletionView(QTextBrowser):
    """Spans are anchors ``t<position>``; ``spans`` maps absolute position -> document range.

    ``steps`` are the generated tokens shown (streamed or from a finished result);
    ``colour_by`` is "raw" (the model's probability) or "filtered" (after the filters).
    """

    token_clicked = Signal(int)  # absolute position
    context_requested = Signal(int, QPoint)  # absolute position, global point

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setReadOnly(True)
        self.setContextMenuPolicy(Qt.CustomContextMenu)
        font = QFont("monospace")
        font.setStyleHint(QFont.Monospace)
        self.setFont(font)
        self.setPlaceholderText("Generated tokens appear here. Hover one for its alternatives, "
                                "click it to inspect it in every panel, right-click to continue "
                                "with another token.")
        self.anchorClicked.connect(self._on_anchor)
        self.customContextMenuRequested.connect(self._on_context)
        self.steps: list[GenerationStep] = []
        self.spans: dict[int, tuple[int, int]] = {}
        self.num_prompt_tokens: int | None = None
        self.colour_by = "raw"
        self.style_name = "byte_level"
        self.settings = SamplingSettings()
        self.selected: int | None = None
        self._tips: dict[int, str] = {}

    # -- content ---------------------------------------------------------------------------
    def begin(self, prompt_text: str, kept: list[GenerationStep], settings: SamplingSettings,
              style: str) -> None:
        """Start a streamed run: the prompt as plain text, then the kept steps (if any)."""
        self.clear()
        self.steps, self.spans, self._tips = [], {}, {}
        self.num_prompt_tokens = None
        self.selected = None
        self.settings, self.style_name = settings, style
        self._insert(prompt_text, self._plain_format(PROMPT_COLOR))
        for step in kept:
            self.append_step(step)

    def append_step(self, step: GenerationStep) -> None:
        """Add one generated token at the end (called for every streamed step)."""
        self.steps.append(step)
        self._tips[step.position] = tooltip_html(step, self.settings, self.style_name)
        self._insert_token(step.position, token_label(step, self.style_name), self._step_format(step))

    def show_result(self, result: GenerationResult) -> None:
        """Redraw a finished run: every prompt token clickable too."""
        self.clear()
        self.steps, self.spans, self._tips = [], {}, {}
        self.settings = result.settings
        self.style_name = result.model_info.piece_style
        self.num_prompt_tokens = result.num_prompt_tokens
        text, end = result.model_text, 0
        for i, piece in enumerate(result.prompt_tokens):
            stop = int(result.prompt_offsets[i, 1])
            if stop <= end:  # a special token, or a second piece of one character
                self._insert_token(i, display_piece(piece, self.style_name),
                                   self._plain_format(SPECIAL_COLOR))
                continue
            # the span runs from the previous token's end: trimmed leading spaces belong to it
            self._insert_token(i, text[end:stop], self._plain_format(PROMPT_COLOR))
            end = stop
        if end < len(text):
            self._insert(text[end:], self._plain_format(PROMPT_COLOR))
        for step in result.steps:
            self.append_step(step)
        if self.selected is not None:
            self.highlight(self.selected)

    def redraw_colours(self) -> None:
        """Re-colour the generated spans (after "colour by" changed)."""
        cursor = QTextCursor(self.document())
        for step in self.steps:
            start, end = self.spans[step.position]
            cursor.setPosition(start)
            cursor.setPosition(end, QTextCursor.KeepAnchor)
            cursor.setCharFormat(self._step_format(step))

    # -- selection ----------------------------------------------------------------------
    def highlight(self, position: int | None) -> None:
        """Underline the span of ``position`` (the token selected in the panels)."""
        self.selected = position
        extra = []
        if position is not None and position in self.spans:
            selection = QTextEdit.ExtraSelection()
            cursor = QTextCursor(self.document())
            start, end = self.spans[position]
            cursor.setPosition(start)
            cursor.setPosition(end, QTextCursor.KeepAnchor)
            selection.cursor = cursor
            fmt = QTextCharFormat()
            fmt.setFontWeight(QFont.Bold)
            fmt.setFontUnderline(True)
            fmt.setUnderlineColor(QColor("#d62728"))
            fmt.setUnderlineStyle(QTextCharFormat.SingleUnderline)
            selection.format = fmt
            extra.append(selection)
        self.setExtraSelections(extra)

    def position_at(self, point: QPoint) -> int | None:
        """The absolute token position under a viewport point, or None."""
        href = self.anchorAt(point)
        return int(href[1:]) if href.startswith("t") and href[1:].isdigit() else None

    def tooltip_for(self, position: int) -> str:
        return self._tips.get(position, f"prompt token #{position}")

    def step_at(self, position: int) -> GenerationStep | None:
        for step in self.steps:
            if step.position == position:
                return step
        return None

    def click(self, position: int) -> None:
        """What a click on a span does (also the tests' entry point)."""
        self.token_clicked.emit(position)

    # -- events --------------------------------------------------------------------------
    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802 - Qt naming
        if event.type() == QEvent.ToolTip:
            position = self.position_at(event.pos())
            if position is None:
                QToolTip.hideText()
            else:
                QToolTip.showText(event.globalPos(), self.tooltip_for(position), self.viewport())
            return True
        return super().viewportEvent(event)

    def _on_anchor(self, url: QUrl) -> None:
        href = url.toString()
        if href.startswith("t") and href[1:].isdigit():
            self.click(int(href[1:]))

    def _on_context(self, point: QPoint) -> None:
        position = self.position_at(point)
        if position is not None:
            self.context_requested.emit(position, self.viewport().mapToGlobal(point))

    # -- formats ------------------------------------------------------------------------
    def _insert(self, text: str, fmt: QTextCharFormat) -> None:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.End)
        cursor.insertText(text, fmt)

    def _insert_token(self, position: int, text: str, fmt: QTextCharFormat) -> None:
        fmt.setAnchor(True)
        fmt.setAnchorHref(f"t{position}")
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.End)
        start = cursor.position()
        cursor.insertText(text, fmt)
        self.spans[position] = (start, cursor.position())
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    @staticmethod
    def _plain_format(color: str) -> QTextCharFormat:
        fmt = QTextCharFormat()
        fmt.setForeground(QColor(color))
        return fmt

    def _step_format(self, step: GenerationStep) -> QTextCharFormat:
        p = step.raw_prob if self.colour_by == "raw" else step.prob
        fmt = QTextCharFormat()
        fmt.setForeground(QColor("black"))
        fmt.setBackground(QColor(prob_color(p)))
        if step.forced:
            fmt.setFontUnderline(True)
            fmt.setUnderlineColor(QColor(FORCED_BORDER))
            fmt.setForeground(QColor(FORCED_BORDER))
        if not step.text:
            fmt.setFontItalic(True)
        fmt.setAnchor(True)
        fmt.setAnchorHref(f"t{step.position}")
        return fmt

"""Pure helpers for the playground: probability colours, the legend, tooltips, stop parsing.

No widgets here, so the rules are easy to test and to reuse in exports.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from explorer.core.generation_types import GenerationStep
from explorer.core.sampling import SamplingSettings
from explorer.core.tokens import display_piece

# (upper bound exclusive, colour, label): the probability scale of the completion view
PROB_BINS: tuple[tuple[float, str, str], ...] = (
    (0.05, "#f4a6a6", "< 5%"),
    (0.20, "#f8c58f", "5–20%"),
    (0.50, "#f5e58c", "20–50%"),
    (0.80, "#cfe8a4", "50–80%"),
    (float("inf"), "#9fd6a2", "≥ 80%"),
)
FORCED_BORDER = "#7a4fd6"


def prob_color(p: float) -> str:
    """The background colour of a token the model gave probability ``p``."""
    for upper, color, _ in PROB_BINS:
        if p < upper:
            return color
    return PROB_BINS[-1][1]


def legend_html() -> str:
    swatches = "".join(
        f'<span style="background:{color}; color:black">&nbsp;{html.escape(label)}&nbsp;</span> '
        for _, color, label in PROB_BINS)
    return "p: " + swatches + '<span style="color:#7a4fd6"><u>chosen by you</u></span>'


def token_label(step: GenerationStep, style: str) -> str:
    """What the completion view shows for a step: its text, or its piece when it adds none
    (special tokens, an incomplete UTF-8 byte). Newlines get a visible mark too."""
    text = step.text if step.text else display_piece(step.token, style)
    return text.replace("\n", "↵\n")


def describe_filters(settings: SamplingSettings) -> str:
    if settings.is_greedy:
        return "greedy"
    parts = [f"T={settings.temperature:g}"]
    parts.append(f"top-k {settings.top_k}" if settings.top_k else "top-k off")
    parts.append(f"top-p {settings.top_p:g}" if settings.top_p < 1 else "top-p off")
    if settings.repetition_penalty != 1.0:
        parts.append(f"rep. penalty {settings.repetition_penalty:g}")
    return ", ".join(parts)


def _rows(entries: Sequence[tuple[int, str, float]], chosen: int, style: str,
          count: int) -> list[str]:
    rows = []
    for rank, (token_id, token, p) in enumerate(entries[:count], start=1):
        piece = html.escape(display_piece(token, style))
        cell = f"{rank}. <code>{piece}</code>"
        if token_id == chosen:
            cell = f"<b>{cell}</b>"
        rows.append(f"<td>{cell}</td><td align='right'>{p:.1%}</td>")
    return rows


def tooltip_html(step: GenerationStep, settings: SamplingSettings, style: str,
                 count: int = 8) -> str:
    """Hover text of a generated token: the alternatives after the filters beside the raw
    distribution, the chosen token in bold."""
    piece = html.escape(display_piece(step.token, style))
    head = (f"<b>#{step.position}</b> (generated {step.index + 1}) <code>{piece}</code> "
            f"id {step.token_id}<br>p = {step.prob:.1%} after the filters, "
            f"{step.raw_prob:.1%} raw (rank {step.raw_rank})")
    if step.forced:
        head += "<br><i>chosen by you (continue with this alternative)</i>"
    after = _rows(step.top(), step.token_id, style, count)
    raw = _rows(step.raw_top(), step.token_id, style, count)
    n = max(len(after), len(raw))
    after += ["<td></td><td></td>"] * (n - len(after))
    raw += ["<td></td><td></td>"] * (n - len(raw))
    body = "".join(f"<tr>{a}<td>&nbsp;&nbsp;</td>{r}</tr>" for a, r in zip(after, raw, strict=True))
    return (f"{head}<table cellspacing='0' cellpadding='1'>"
            f"<tr><th colspan='2' align='left'>after {html.escape(describe_filters(settings))}"
            f"</th><td></td><th colspan='2' align='left'>raw model</th></tr>{body}</table>")


def parse_stops(text: str) -> tuple[str, ...]:
    r"""``"\n\n|END"`` -> ("\n\n", "END"): sequences split on ``|``; ``\n``, ``\t``, ``\|``
    and ``\\`` are escapes."""
    out, current, i = [], [], 0
    escapes = {"n": "\n", "t": "\t", "|": "|", "\\": "\\"}
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in escapes:
            current.append(escapes[text[i + 1]])
            i += 2
            continue
        if ch == "|":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current))
    return tuple(s for s in out if s)


def format_stops(stops: Sequence[str]) -> str:
    """The inverse of parse_stops."""
    def escape(s: str) -> str:
        return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "\\n").replace("\t", "\\t")
    return "|".join(escape(s) for s in stops)

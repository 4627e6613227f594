"""Exported files and the context they carry.

Every export names what it shows: the model, the prompt (by its SHA-256), the selected
position, layer and head, and the view options in force. CSV files carry it as ``# key:
value`` lines above the table (``read_csv_export`` reads both back); images carry it as
text chunks and a caption (explorer/gui/exports.py); a run archive carries it as
``export_context`` (JSON).

Attention CSV: first row = key labels ("3:␣the"), first column = query labels, values =
the map as drawn (see the ``values`` line: one head or the layer's mean, and whether
*Hide first token* zeroed key 0 and renormalised every row).

Probability CSV columns: position, rank, token_id, token (the text the token stands for,
e.g. " is"), piece (the tokenizer's raw piece, e.g. "Ġis"), probability, logit,
actual_next (1 on the prompt's own next token).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from explorer.core.analysis import drop_first_and_renormalise
from explorer.core.attention import head_map, mean_map
from explorer.core.selection import Selection
from explorer.core.tokens import display_piece, piece_text
from explorer.core.types import RunResult

APP = "Attention Explorer"
PROBABILITY_COLUMNS = ("position", "rank", "token_id", "token", "piece", "probability", "logit",
                       "actual_next")


def prompt_sha256(prompt: str) -> str:
    """Hex SHA-256 of the prompt's UTF-8 bytes (names the prompt without copying it)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


@dataclass(frozen=True)
class ExportContext:
    """What an exported file shows, in the words of the window's controls."""

    model: str
    prompt_sha256: str
    tokens: int
    position: int
    position_token: str
    layer: int
    head: int
    mean_over_heads: bool
    hide_first_token: bool
    textbook_sinusoid: bool

    @classmethod
    def of(cls, result: RunResult, selection: Selection) -> ExportContext:
        s = selection.clamped(result.num_tokens, result.model_info)
        return cls(
            model=result.model_info.name,
            prompt_sha256=prompt_sha256(result.prompt),
            tokens=result.num_tokens,
            position=s.token,
            position_token=display_piece(result.tokens[s.token], result.model_info.piece_style)
            if result.num_tokens else "",
            layer=s.layer,
            head=s.head,
            mean_over_heads=s.head_mean,
            hide_first_token=s.hide_first,
            textbook_sinusoid=s.textbook_positions,
        )

    def head_text(self) -> str:
        return (f"mean over the heads of layer {self.layer}" if self.mean_over_heads
                else f"layer {self.layer}, head {self.head}")

    def fields(self) -> list[tuple[str, str]]:
        """(key, value) pairs in file order; keys are stable names for scripts."""
        return [
            ("exported_by", APP),
            ("model", self.model),
            ("prompt_sha256", self.prompt_sha256),
            ("tokens", str(self.tokens)),
            ("position", str(self.position)),
            ("position_token", self.position_token),
            ("layer", str(self.layer)),
            ("head", "mean" if self.mean_over_heads else str(self.head)),
            ("view_mean_over_heads", _yes(self.mean_over_heads)),
            ("view_hide_first_token", _yes(self.hide_first_token)),
            ("view_textbook_sinusoid", _yes(self.textbook_sinusoid)),
        ]

    def caption(self) -> str:
        """One line for an image caption."""
        views = [name for name, on in (("Mean over heads", self.mean_over_heads),
                                       ("Hide first token", self.hide_first_token),
                                       ("Textbook sinusoid", self.textbook_sinusoid)) if on]
        return (f"{self.model} · prompt sha256 {self.prompt_sha256[:12]}… ({self.tokens} tokens) · "
                f"token #{self.position} {self.position_token} · {self.head_text()} · "
                f"view: {', '.join(views) if views else 'default'}")


def selected_attention(result: RunResult, selection: Selection) -> np.ndarray:
    """The map the attention panel draws for ``selection``: float32[query, key]."""
    s = selection.clamped(result.num_tokens, result.model_info)
    matrix = mean_map(result, s.layer) if s.head_mean else head_map(result, s.layer, s.head)
    if s.hide_first and matrix.shape[0] > 1:
        matrix = drop_first_and_renormalise(matrix)
    return matrix


def attention_values_note(context: ExportContext) -> str:
    what = context.head_text()
    if context.hide_first_token:
        return (f"{what}; Hide first token applied: key 0 set to 0 and every row renormalised "
                "to sum to 1 (not the model's raw weights)")
    return f"{what}; the model's attention weights as computed (rows sum to 1)"


def unique_labels(result: RunResult, keys: bool = False) -> list[str]:
    """Readable token labels, made unique with their position: "3:␣the"."""
    style = result.model_info.piece_style
    pieces = result.key_labels if keys else result.tokens
    return [f"{i}:{display_piece(p, style)}" for i, p in enumerate(pieces)]


def _write_header(handle: TextIO, context: ExportContext | None,
                  extra: list[tuple[str, str]]) -> None:
    """``# key: value`` lines (one line each: line breaks in values become spaces)."""
    if context is None:
        return
    for key, value in [*context.fields(), *extra]:
        flat = " ".join(str(value).splitlines())
        handle.write(f"# {key}: {flat}\r\n")  # the csv module's own line ending


def write_attention_csv(matrix: np.ndarray, result: RunResult, path: str | Path,
                        context: ExportContext | None = None) -> Path:
    """float[query, key] as CSV: first row = key labels, first column = query labels,
    preceded by the context lines (with a ``values`` line naming the view options)."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        extra = [("values", attention_values_note(context))] if context is not None else []
        _write_header(handle, context, extra)
        writer = csv.writer(handle)
        writer.writerow(["query \\ key", *unique_labels(result, keys=True)])
        for label, row in zip(unique_labels(result), np.asarray(matrix, dtype=np.float64), strict=True):
            writer.writerow([label, *(f"{v:.6g}" for v in row)])
    return path


def write_probabilities_csv(result: RunResult, position: int, path: str | Path,
                            context: ExportContext | None = None) -> Path:
    """The top-k after ``position``, one row per candidate (see PROBABILITY_COLUMNS)."""
    result.require_next_tokens(f"write the probabilities after token #{position}", position)
    path = Path(path)
    style = result.model_info.piece_style
    actual = int(result.token_ids[position + 1]) if position + 1 < result.num_tokens else None
    with path.open("w", newline="", encoding="utf-8") as handle:
        extra = [("values", f"the model's top {result.top_k} next tokens after token #{position}, "
                            "before any sampling filter")] if context is not None else []
        _write_header(handle, context, extra)
        writer = csv.writer(handle)
        writer.writerow(PROBABILITY_COLUMNS)
        for k in range(result.top_k):
            token_id = int(result.topk_ids[position, k])
            piece = result.topk_tokens[position][k]
            writer.writerow([position, k + 1, token_id, piece_text(piece, style), piece,
                             f"{float(result.topk_probs[position, k]):.8g}",
                             f"{float(result.topk_logits[position, k]):.6g}",
                             int(token_id == actual)])
    return path


def read_csv_export(path: str | Path) -> tuple[dict[str, str], list[list[str]]]:
    """(context, rows) of a CSV written here: the ``# key: value`` lines, then the table."""
    context: dict[str, str] = {}
    text = Path(path).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = 0
    while start < len(lines) and lines[start].startswith("# "):
        key, _, value = lines[start][2:].rstrip("\r\n").partition(": ")
        context[key] = value
        start += 1
    rows = list(csv.reader(io.StringIO("".join(lines[start:]), newline="")))
    return context, rows

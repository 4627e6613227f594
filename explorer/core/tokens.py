"""Readable token pieces: byte-level BPE and sentencepiece markers made visible."""

from __future__ import annotations

import re
from functools import lru_cache

_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's printable-character stand-ins for the 256 byte values."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


_BYTE_DECODER = _byte_level_decoder()

SPACE_MARK = "␣"
NEWLINE_MARK = "↵"
TAB_MARK = "⇥"


def _visible_text(text: str) -> str:
    """Spaces, newlines and tabs as marks; other control characters (which no label, CSV
    cell or SVG can carry) as their hex code, e.g. "\\x1e" -> "<1E>"."""
    text = text.replace(" ", SPACE_MARK).replace("\n", NEWLINE_MARK).replace("\t", TAB_MARK)
    if any(_is_control(ch) for ch in text):
        text = "".join(f"<{ord(ch):02X}>" if _is_control(ch) else ch for ch in text)
    return text


def _is_control(ch: str) -> bool:
    return ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0


def piece_text(piece: str, style: str = "byte_level") -> str:
    """The text a token piece stands for, as plain characters (no visible markers).

    "Ġis" -> " is", "âĢĻ" -> "’", "Ċ" -> "\\n", "▁the" (sentencepiece) -> " the",
    "<0x0A>" -> "\\n"; special tokens ("<|im_end|>", "[CLS]") unchanged. Partial UTF-8
    stays as its hex bytes ("<E2><80>") because it is no text on its own.
    """
    byte = _BYTE_TOKEN.match(piece)
    if byte:
        value = int(byte.group(1), 16)
        return chr(value) if value < 0x80 else f"<{value:02X}>"
    if piece.startswith("<") and piece.endswith(">") or piece.startswith("[") and piece.endswith("]"):
        return piece
    if style == "sentencepiece" or (style != "byte_level" and "▁" in piece):
        return piece.replace("▁", " ")
    if style == "byte_level" and piece and all(ch in _BYTE_DECODER for ch in piece):
        raw = bytes(_BYTE_DECODER[ch] for ch in piece)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "".join(f"<{b:02X}>" for b in raw)
    return piece


@lru_cache(maxsize=65536)  # pure; a long prompt repeats most of its pieces
def display_piece(piece: str, style: str = "byte_level") -> str:
    """A token piece as a person should see it.

    ``style`` is the tokenizer's piece convention: "byte_level" (GPT-2, Llama 3,
    SmolLM2), "sentencepiece" (▁ marks a space) or "plain" (WordPiece and others).
    "Ġthe" -> "␣the", "Ċ" -> "↵", "▁the" -> "␣the", "<0x0A>" stays (the byte
    marker is information), special tokens unchanged. Byte-level pieces that are
    partial UTF-8 are shown as their hex bytes, e.g. "<E2><80>".
    """
    if not piece:
        return "∅"
    if _BYTE_TOKEN.match(piece):
        return piece
    if piece.startswith("<") and piece.endswith(">") or piece.startswith("[") and piece.endswith("]"):
        return piece
    if style == "sentencepiece" or (style != "byte_level" and "▁" in piece):
        return _visible_text(piece.replace("▁", " "))
    if style == "byte_level" and all(ch in _BYTE_DECODER for ch in piece):
        raw = bytes(_BYTE_DECODER[ch] for ch in piece)
        try:
            return _visible_text(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return "".join(f"<{b:02X}>" for b in raw)
    return _visible_text(piece)

"""Where Attention Explorer keeps per-user files."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$ATTENTION_EXPLORER_CACHE``, else ``$XDG_CACHE_HOME/attention-explorer``, else ~/.cache/…"""
    explicit = os.environ.get("ATTENTION_EXPLORER_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "attention-explorer"

"""Write a text file so that a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomically(path: Path, text: str, durable: bool = False) -> None:
    """Write ``text`` (UTF-8, newlines kept as given) to a scratch file of its own beside
    ``path`` and move it over ``path``; two processes writing at once each move a whole
    file. ``durable``: flush it to disk first (``fsync``: can take seconds on a busy disk,
    so not on the GUI thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".writing")
    try:
        with open(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise

"""Write a text file so that a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def write_text_atomically(path: Path, text: str, durable: bool = False) -> None:
    """Write ``text`` (UTF-8, newlines kept as given) to a scratch file of its own beside
    ``path`` and move it over ``path``; two processes writing at once each move a whole
    file. ``durable``: flush it to disk first (``fsync``: can take seconds on a busy disk,
    so not on the GUI thread). The file gets the permissions a plain write would give it:
    those of the file it replaces, else the default for a new file under the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(path)
    handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".writing")
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes the scratch file private (0600)
            os.fchmod(handle, mode)
        with open(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (os.umask can
    only be read by setting it, which another thread creating a file could see)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

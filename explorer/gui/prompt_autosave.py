"""The prompt autosave: a text file beside the settings, written by a thread of its own.

The autosave used to go through ``QSettings.sync()``, on the GUI thread, a second after
each edit. ``sync()`` flushes the file to disk (``fdatasync``, on the lock file and the
file) and the window waits: 1.3-5 ms in six 1,024-token runs on this machine, but 0.2 s
and 1.8 s in two of fourteen tries on fresh files (a stack sampler once caught the GUI
thread in it during a 0.39 s block). Here the text goes to a file of its own, written,
flushed and moved into place by a writer thread in plain Python; the GUI thread only hands
it the text. (A long prompt, tens of KB, also no longer sits in the settings file that
QSettings rewrites whole at every change.)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

LEGACY_KEY = "prompt/last"
"""Where releases before this one kept the prompt (read when the file is missing)."""

Write = Callable[[Path, str], None]


def autosave_path(settings: QSettings) -> Path:
    """``<settings file stem>.prompt.txt`` beside the settings file (on Linux the native
    format is an INI file, on macOS a plist); in the app's config folder on Windows, whose
    native settings live in the registry, not in a file."""
    if sys.platform == "win32" and settings.format() == QSettings.Format.NativeFormat:
        location = QStandardPaths.StandardLocation.AppConfigLocation
        return Path(QStandardPaths.writableLocation(location)) / "last.prompt.txt"
    settings_file = Path(settings.fileName())
    return settings_file.with_name(settings_file.stem + ".prompt.txt")


def write_durably(path: Path, text: str) -> None:
    """Write ``text`` to a scratch file, flush it to disk and move it over ``path``: a crash
    at any moment leaves the previous prompt or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".writing")
    with open(scratch, "w", encoding="utf-8", newline="") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(scratch, path)


class PromptAutosave:
    """Saves the prompt to ``path`` on one writer thread, in the order asked."""

    def __init__(self, path: Path, write: Write = write_durably) -> None:
        self.path = path
        self._write = write
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prompt-autosave")

    def save(self, text: str) -> Future:
        """Queue ``text``; returns at once. A failure is said on stderr, never raised."""
        return self._thread.submit(self._save, text)

    def save_now(self, text: str) -> None:
        """Queue ``text`` and wait until it and every earlier save are done (the window's
        close, when nothing is left to keep responsive)."""
        self.save(text).result()

    def load(self, settings: QSettings) -> str | None:
        """The saved prompt: the file, else an older release's settings key, else None."""
        try:
            with open(self.path, encoding="utf-8", newline="") as file:
                return file.read()
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as exc:
            print(f"attention-explorer: could not read the saved prompt {self.path}: {exc}",
                  file=sys.stderr)
        value = settings.value(LEGACY_KEY, "")
        return value if isinstance(value, str) and value else None

    def _save(self, text: str) -> None:
        try:
            self._write(self.path, text)
        except OSError as exc:
            print(f"attention-explorer: could not save the prompt to {self.path}: {exc}",
                  file=sys.stderr)

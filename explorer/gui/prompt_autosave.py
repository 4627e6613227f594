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

import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

from explorer.core.atomic_write import write_text_atomically

LEGACY_KEY = "prompt/last"
"""Where releases before this one kept the prompt (read when the file is missing)."""

Write = Callable[[Path, str], None]

_writer: ThreadPoolExecutor | None = None
_writer_lock = threading.Lock()


def _writer_thread() -> ThreadPoolExecutor:
    """The process's one writer thread (every window's saves, in the order asked)."""
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prompt-autosave")
        return _writer


def autosave_path(settings: QSettings) -> Path:
    """``<settings file stem>.prompt.txt`` beside the settings file (on Linux the native
    format is an INI file). On Windows (native settings live in the registry) and macOS
    (in a plist of the system's preferences folder), the app's config folder."""
    if settings.format() == QSettings.Format.NativeFormat and sys.platform in ("win32", "darwin"):
        location = QStandardPaths.StandardLocation.AppConfigLocation
        folder = QStandardPaths.writableLocation(location)
        return (Path(folder) if folder else Path.home() / ".attention-explorer") / "last.prompt.txt"
    settings_file = Path(settings.fileName())
    return settings_file.with_name(settings_file.stem + ".prompt.txt")


def write_durably(path: Path, text: str) -> None:
    """The autosave's write: atomic and flushed to disk (it runs on the writer thread)."""
    write_text_atomically(path, text, durable=True)


class PromptAutosave:
    """Saves the prompt to ``path`` on the process's writer thread, in the order asked."""

    def __init__(self, path: Path, write: Write = write_durably) -> None:
        self.path = path
        self._write = write
        self._last_queued: str | None = None
        self._last_save: Future[None] | None = None

    def save(self, text: str) -> Future[None]:
        """Queue ``text`` (unless it is the text queued last, or read from the file: then
        that save's future, or a done one); returns at once. A failure is said on stderr,
        never raised."""
        if text != self._last_queued:
            self._last_queued = text
            self._last_save = _writer_thread().submit(self._save, text)
        elif self._last_save is None:
            self._last_save = Future()
            self._last_save.set_result(None)
        return self._last_save

    def save_now(self, text: str) -> None:
        """Queue ``text`` and wait until it and every earlier save are done (the window's
        close, once the window is hidden)."""
        self.save(text).result()

    def load(self, settings: QSettings) -> str | None:
        """The saved prompt: the file's text (empty if the prompt was), else an older
        release's settings key, else None."""
        try:
            with open(self.path, encoding="utf-8", newline="") as file:
                self._last_queued = file.read()  # on disk already: the window's first
                return self._last_queued  # autosave of it writes nothing
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
        except Exception as exc:  # noqa: BLE001 - any failure: said, and the next save retries
            self._last_queued = None
            print(f"attention-explorer: could not save the prompt to {self.path}: {exc}",
                  file=sys.stderr)

"""The prompt autosave: the text reaches its file from a thread of its own, in order, and
the GUI thread never waits for the flush."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QElapsedTimer, QSettings, QTimer

from explorer.gui.prompt_autosave import (
    LEGACY_KEY,
    PromptAutosave,
    Write,
    autosave_path,
    write_durably,
)


def slow_write(seconds: float, threads: list[str], began: list[float] | None = None,
               texts: list[str] | None = None) -> Write:
    """A write that takes ``seconds`` (a slow flush) and notes the thread it ran on (and
    when it began, and the texts in the order written)."""

    def write(path: Path, text: str) -> None:
        if began is not None:
            began.append(time.perf_counter())
        threads.append(threading.current_thread().name)
        time.sleep(seconds)
        write_durably(path, text)
        if texts is not None:
            texts.append(text)

    return write


def test_the_file_sits_beside_the_settings_and_holds_the_text(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    path = autosave_path(settings)
    assert path == tmp_path / "s.prompt.txt"
    autosave = PromptAutosave(path)
    autosave.save("line one\r\nline two ünïcode").result(timeout=10)
    assert path.read_bytes() == "line one\r\nline two ünïcode".encode()  # kept as typed
    assert autosave.load(settings) == "line one\r\nline two ünïcode"
    assert not list(tmp_path.glob("*.writing"))  # the scratch file was moved into place


def test_save_returns_before_a_slow_flush_and_the_event_loop_runs_meanwhile(qtbot, tmp_path):
    threads: list[str] = []
    autosave = PromptAutosave(tmp_path / "p.txt", write=slow_write(0.6, threads))
    beats: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    heartbeat = QTimer(interval=10)
    heartbeat.timeout.connect(lambda: beats.append(clock.elapsed()))
    heartbeat.start()
    started = time.perf_counter()
    pending = autosave.save("typed")
    assert time.perf_counter() - started < 0.1
    qtbot.waitUntil(pending.done, timeout=5000)
    heartbeat.stop()
    assert threads and threads[0] != threading.main_thread().name
    assert len(beats) >= 20  # the GUI thread's timer fired all through the 0.6 s write
    assert max(b - a for a, b in zip(beats, beats[1:], strict=False)) < 300
    assert (tmp_path / "p.txt").read_text() == "typed"


def slow_autosave(path: Path) -> tuple[PromptAutosave, list[str]]:
    """An autosave whose writes take 0.3 s each, and the texts it wrote, in order."""
    texts: list[str] = []
    return PromptAutosave(path, write=slow_write(0.3, [], texts=texts)), texts


def test_save_now_waits_for_earlier_saves_and_lands_last(qtbot, tmp_path):
    autosave, texts = slow_autosave(tmp_path / "p.txt")
    earlier = autosave.save("older text")
    autosave.save_now("newest text")
    assert earlier.done()
    assert texts == ["older text", "newest text"]
    assert (tmp_path / "p.txt").read_text() == "newest text"


def test_the_same_text_is_written_once_and_save_now_still_waits_for_it(qtbot, tmp_path):
    autosave, texts = slow_autosave(tmp_path / "p.txt")
    pending = autosave.save("unchanged")
    autosave.save_now("unchanged")  # the window closes with the text it autosaved
    assert pending.done()
    assert texts == ["unchanged"]


def test_a_file_that_cannot_be_written_is_said_on_stderr(qtbot, tmp_path, capfd):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    autosave = PromptAutosave(blocker / "p.txt")
    autosave.save_now("words")  # no exception reaches the window
    assert "could not save the prompt" in capfd.readouterr().err


def test_any_failure_of_a_save_is_said_and_the_next_save_tries_again(qtbot, tmp_path, capfd):
    def refuse(path: Path, text: str) -> None:
        raise ValueError("cannot encode")

    autosave = PromptAutosave(tmp_path / "p.txt", write=refuse)
    autosave.save_now("words")  # closing the window goes on
    assert "could not save the prompt" in capfd.readouterr().err
    autosave._write = write_durably
    autosave.save_now("words")  # the same text again: written this time
    assert (tmp_path / "p.txt").read_text() == "words"
    assert not list(tmp_path.glob("*.writing"))


def test_an_older_release_s_prompt_is_read_when_there_is_no_file(qtbot, tmp_path, capfd):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    autosave = PromptAutosave(autosave_path(settings))
    assert autosave.load(settings) is None
    settings.setValue(LEGACY_KEY, "kept by the last release")
    assert autosave.load(settings) == "kept by the last release"
    autosave.path.write_bytes(b"\xff\xfe not utf-8")
    assert autosave.load(settings) == "kept by the last release"
    assert "could not read the saved prompt" in capfd.readouterr().err


def test_window_autosave_runs_on_its_thread_and_close_keeps_the_last_text(qtbot, window):
    threads: list[str] = []
    began: list[float] = []
    path = window.sessions.prompt_autosave.path
    window.sessions.prompt_autosave = PromptAutosave(path, write=slow_write(1.0, threads, began))
    window.prompt_panel.set_text("first draft")
    qtbot.waitUntil(lambda: bool(threads), timeout=5000)  # the autosave began (one second on)
    assert time.perf_counter() - began[0] < 0.5  # the window runs on while the 1 s write does
    assert threads[0] != threading.main_thread().name
    window.prompt_panel.set_text("second draft")
    window.close()  # waits for the first draft's write, then writes the second
    assert path.read_text() == "second draft"
    assert threads == ["prompt-autosave_0"] * 2


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="native settings are no INI file")
def test_native_settings_in_a_missing_folder_get_the_prompt_beside_them(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "new" / "AttentionExplorer.conf"), QSettings.NativeFormat)
    path = autosave_path(settings)
    assert path == tmp_path / "new" / "AttentionExplorer.prompt.txt"
    PromptAutosave(path).save_now("first words")  # the folder is made
    assert path.read_text() == "first words"


def test_the_prompt_read_at_start_is_not_written_back(qtbot, tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("from the last session")
    threads: list[str] = []
    autosave = PromptAutosave(path, write=slow_write(0.0, threads))
    assert autosave.load(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)) == \
        "from the last session"
    autosave.save_now("from the last session")  # the window's first autosave, unchanged
    assert threads == []
    autosave.save_now("edited")
    assert len(threads) == 1 and path.read_text() == "edited"

"""Qt's raster engine fills on the window's thread, not in a pool it then waits for."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from explorer.gui.raster_threads import VARIABLE

PAINT_A_LARGE_FILL = """
import glob, sys
{setup}
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter
app = QGuiApplication([])
image = QImage(1200, 800, QImage.Format.Format_ARGB32_Premultiplied)
painter = QPainter(image)
painter.fillRect(0, 0, 1200, 800, QColor(10, 20, 30, 128))
painter.end()
names = [open(path).read().strip() for path in glob.glob("/proc/self/task/*/comm")]
print(names.count("Thread (pooled)"))
"""


def _pool_threads_after_a_fill(setup: str, **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k != VARIABLE}
    done = subprocess.run([sys.executable, "-c", PAINT_A_LARGE_FILL.format(setup=setup)],
                          capture_output=True, text=True, timeout=120,
                          env={**clean, "QT_QPA_PLATFORM": "offscreen", **env})
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc thread names")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="Qt uses no pool on one core")
def test_importing_the_window_keeps_large_fills_off_qt_thread_pool():
    assert _pool_threads_after_a_fill("") > 0  # Qt's default: the fill went to its pool
    assert _pool_threads_after_a_fill("import explorer.gui") == 0


def test_a_value_already_set_is_not_overwritten(monkeypatch):
    """Qt only asks whether the variable is set; the window does not rewrite one the
    environment already has."""
    from explorer.gui.raster_threads import keep_fills_on_gui_thread

    monkeypatch.setenv(VARIABLE, "yes")
    keep_fills_on_gui_thread()
    assert os.environ[VARIABLE] == "yes"

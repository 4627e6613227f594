"""Keep Qt's raster fills on the window's own thread.

Qt's raster engine splits a large fill (a scroll bar's groove, a panel's background) into
bands, hands them to a thread pool of its own and waits for them. While the model runs,
torch's two threads hold both cores of a small machine, so the window's thread waited for
pool threads that could not get a core: in a py-spy profile of a 2,048-token forward, 19
of 999 samples (95 ms) had it in ``QLatch::waitInternal`` under a scroll bar's paint.
Qt reads ``QT_NO_GUI_THREADPOOL`` once, at the first such fill; set (to any value: Qt
only asks whether it is set), it fills on the calling thread, which is what the waiting
thread could have done itself. There is no switch back: a user who sets it changes nothing.
"""

from __future__ import annotations

import os

VARIABLE = "QT_NO_GUI_THREADPOOL"


def keep_fills_on_gui_thread() -> None:
    """Ask Qt not to hand fills to its thread pool (before the first paint)."""
    os.environ.setdefault(VARIABLE, "1")

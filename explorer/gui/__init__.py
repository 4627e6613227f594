"""The window: Qt panels, the worker thread that drives the engine, and their glue."""

from explorer.gui.import_hook import lighten
from explorer.gui.raster_threads import keep_fills_on_gui_thread

lighten()  # before torch and transformers are imported by anything in the window (every
# module of this package, the Qt-free ones too, now imports PySide6 first)
keep_fills_on_gui_thread()  # before anything in the window paints

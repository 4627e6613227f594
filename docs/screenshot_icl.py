"""Screenshots of the in-context-learning microscope on SmolLM2 (the course's example).

    flock /work/heavy.lock env DISPLAY=:93 .venv/bin/python docs/screenshot_icl.py [--evaluate]

Loads "smollm2", opens the comparison window, builds the 0/1/2/4-shot columns for
"I don't like this chair.", clicks demonstration 2 of the 4-shot column (its tokens are
shaded in the main window's attention map), shuffles that column ×5, computes its
label-anchor flows, and saves under docs/screenshots/: icl-orders.png, icl-anchors.png,
icl-highlight.png (main window) and, with --evaluate, icl-evaluate.png (64 reviews ×
shots 0,1,2,4 × gold / flipped / random labels).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings, QTimer

from explorer.gui.app import application
from explorer.gui.main_window import MainWindow

OUT = Path(__file__).resolve().parent / "screenshots"


def wait(signal, predicate=lambda *a: True, timeout_ms: int = 900_000) -> None:
    loop = QEventLoop()

    def handler(*values) -> None:
        if predicate(*values):
            loop.quit()

    signal.connect(handler)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    signal.disconnect(handler)


def settle(ms: int = 600) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def main() -> int:
    app = application()
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(settings=settings)
    window.show()
    window.load_model("smollm2")
    wait(window.controller.model_changed)
    compare = window.features["explorer.gui.compare"].open()
    compare.resize(1600, 1000)
    finished = window.controller.worker.job_finished
    compare.build_columns()
    wait(finished)
    settle()
    column = compare.columns[3]
    compare.set_head(14, 3)
    column.select_demonstration(1)
    wait(window.run_displayed)
    settle()
    OUT.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(OUT / "icl-highlight.png"))
    compare.shuffle_column(column)
    wait(finished)
    settle()
    compare.grab().save(str(OUT / "icl-orders.png"))
    compare.anchors.set_column(3)
    compare.below.setCurrentWidget(compare.anchors)
    wait(finished)
    settle()
    compare.grab().save(str(OUT / "icl-anchors.png"))
    if "--evaluate" in sys.argv:
        compare.tabs.setCurrentWidget(compare.evaluation)
        panel = compare.evaluation
        panel.shots.setText("0,1,2,4")
        for box in panel.mode_boxes.values():
            box.setChecked(True)
        panel.run()
        wait(finished)
        settle()
        compare.grab().save(str(OUT / "icl-evaluate.png"))
    app.processEvents()
    print(f"saved screenshots in {OUT}")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

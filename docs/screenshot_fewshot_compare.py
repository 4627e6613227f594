"""Screenshot of the few-shot comparison window on SmolLM2 (the course's example).

    DISPLAY=:99 .venv/bin/python docs/screenshot_fewshot_compare.py [OUT.png]

Opens the main window, loads "smollm2", opens Tools → Few-shot comparison…, builds the
zero / one / two / four-shot columns for "I don't like this chair.", runs them, selects
a query token and saves the comparison window's grab() (default
docs/screenshots/fewshot-compare.png).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer

from explorer.gui.app import application
from explorer.gui.main_window import MainWindow

OUT = Path(__file__).resolve().parent / "screenshots" / "fewshot-compare.png"


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    app = application()
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(settings=settings)
    window.show()
    compare = window.features["explorer.gui.compare"].open()
    state = {"code": 1}

    def done(_run: object) -> None:
        compare.set_head(12, 3)
        compare.select_query_token(11)
        QTimer.singleShot(800, save)

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        compare.grab().save(str(out))
        print(f"saved {out}")
        state["code"] = 0
        app.quit()

    def loaded(_info: object) -> None:
        compare.build_columns()
        job = compare.job
        if job is None:
            print(compare.status.text(), file=sys.stderr)
            app.quit()
            return
        previous = job.on_done
        job.on_done = lambda run: (previous(run), done(run))

    window.controller.model_changed.connect(loaded)
    window.controller.error.connect(lambda m: (print(m, file=sys.stderr), app.quit()))
    window.load_model("smollm2")
    app.exec()
    window.close()
    return state["code"]


if __name__ == "__main__":
    raise SystemExit(main())

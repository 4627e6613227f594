"""Screenshot of the attribution panel on SmolLM2 (the course's sentiment prompt).

    DISPLAY=:96 .venv/bin/python docs/screenshot_attribution.py [OUT.png] [--method M] [--model M]

Opens the main window, loads "smollm2", runs the default prompt, opens Tools ▸ Attribution
for the last token (target: top-1), waits for the scores and faithfulness curves, shows
``--method`` (default integrated_gradients) and saves the window's grab() (default
docs/screenshots/attribution.png).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer

from explorer.gui.app import application
from explorer.gui.main_window import DEFAULT_PROMPT, MainWindow

OUT = Path(__file__).resolve().parent / "screenshots" / "attribution.png"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", type=Path, default=OUT)
    parser.add_argument("--method", default="integrated_gradients")
    parser.add_argument("--model", default="smollm2")
    args = parser.parse_args()
    app = application()
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(settings=settings)
    window.resize(1600, 1000)
    window.show()
    panel = window.features["explorer.gui.attribution"]
    state = {"code": 1, "opened": False}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(args.out))
        print(f"saved {args.out}")
        state["code"] = 0
        app.quit()

    def finished(record: object) -> None:
        panel.set_method(args.method)
        QTimer.singleShot(800, save)

    def displayed(_view: object) -> None:
        if state["opened"]:
            return
        state["opened"] = True
        window.resizeDocks([panel.dock], [430], Qt.Vertical)
        panel.dock.show()
        panel.dock.raise_()

    panel.finished.connect(finished)
    window.run_displayed.connect(displayed)
    window.controller.error.connect(lambda m: (print(m, file=sys.stderr), app.quit()))
    window.prompt_panel.set_text(DEFAULT_PROMPT)
    window.controller.model_changed.connect(lambda _info: window.prompt_panel.run_now())
    window.load_model(args.model)
    app.exec()
    window.close()
    return state["code"]


if __name__ == "__main__":
    sys.exit(main())

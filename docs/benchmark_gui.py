"""GUI benchmark on the embedded SmolLM2 (offscreen Qt, real worker thread).

Run:  QT_QPA_PLATFORM=offscreen .venv/bin/python docs/benchmark_gui.py [--lengths 64,512]
Prints a Markdown table:
- run → drawn: from the Run request to every panel drawn and the window painted once
- longest GUI block: the largest gap between ticks of a 2 ms timer on the GUI thread
  while the run is in flight and drawn (what a user would feel as a freeze)
- grid redraw: a head/token selection change, then the whole window painted
  (grid highlight, detail map, bars, positions), median of 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", default="64,512")
    args = parser.parse_args()

    from PySide6.QtCore import QElapsedTimer, QEventLoop, QSettings, QTimer

    from explorer.gui.app import application
    from explorer.gui.main_window import MainWindow

    app = application()
    settings = QSettings(os.path.join(tempfile.mkdtemp(), "bench.ini"), QSettings.IniFormat)
    window = MainWindow(settings=settings)
    window.show()

    def wait_for(signal, predicate=lambda *a: True, timeout_ms=600_000):
        loop = QEventLoop()
        box = {}

        def handler(*values):
            if predicate(*values):
                box["values"] = values
                loop.quit()

        signal.connect(handler)
        QTimer.singleShot(timeout_ms, loop.quit)
        loop.exec()
        signal.disconnect(handler)
        return box.get("values")

    window.load_model("smollm2")
    wait_for(window.controller.model_changed)
    tokenizer_words = ["Classify", "this", "review:", "I", "loved", "this", "movie,", "the", "actors", "were", "wonderful", "and", "the", "music", "carried", "every", "scene.", "Sentiment:", "Positive."]

    print("| tokens | run → drawn (ms) | engine run_s (ms) | longest GUI block (ms) | grid redraw after selection (ms) |")
    print("|---:|---:|---:|---:|---:|")
    for n in [int(x) for x in args.lengths.split(",")]:
        prompt = " ".join(tokenizer_words * (n // len(tokenizer_words) + 2))[: n * 5]
        gaps: list[float] = []
        clock = QElapsedTimer()
        ticker = QTimer(interval=2)

        def tick(gaps=gaps, clock=clock):
            gaps.append(clock.restart())

        ticker.timeout.connect(tick)
        window.prompt_panel.editor.blockSignals(True)
        window.prompt_panel.set_text(prompt)
        window.prompt_panel.editor.blockSignals(False)
        clock.start()
        ticker.start()
        started = time.perf_counter()
        window.controller.run_prompt(prompt)
        (view,) = wait_for(window.run_displayed, lambda v, p=prompt: v.result.prompt == p)
        window.grab()
        drawn_ms = (time.perf_counter() - started) * 1000
        ticker.stop()
        block = max(gaps) if gaps else float("nan")
        redraws = []
        layers, heads = view.result.model_info.layers, view.result.model_info.heads
        for i in range(10):
            t0 = time.perf_counter()
            window.controller.select_head((3 * i) % layers, i % heads)
            window.controller.select_token((7 * i) % view.result.num_tokens)
            window.grab()
            redraws.append((time.perf_counter() - t0) * 1000)
        print(f"| {view.result.num_tokens} | {drawn_ms:.0f} | {view.result.timings['run_s'] * 1000:.0f} | "
              f"{block:.0f} | {statistics.median(redraws):.0f} |", flush=True)
    window.close()
    app.quit()


if __name__ == "__main__":
    main()

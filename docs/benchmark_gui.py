"""GUI benchmark on the embedded SmolLM2 (offscreen Qt, real worker thread).

Run:  QT_QPA_PLATFORM=offscreen .venv/bin/python docs/benchmark_gui.py [--lengths 64,512] [--repeats 5]
Prints a Markdown table (one row per prompt length, over --repeats runs):
- run → drawn: from the Run request to every panel drawn and the window painted once
- longest GUI block: the largest gap between ticks of a 2 ms timer on the GUI thread
  while a run is in flight and drawn (what a user would feel as a freeze)
- selection redraw: a head + token selection change, then the whole window painted
  (grid highlight, detail map, bars, positions)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TEXT = ("Classify this review: I loved this movie, the actors were wonderful and the music "
        "carried every scene. Sentiment: Positive. ")


def wait_for(signal, predicate=lambda *a: True, timeout_ms=600_000):
    from PySide6.QtCore import QEventLoop, QTimer

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


def one_run(window, prompt: str):
    """Run ``prompt``; return (view, ms from request to drawn and painted, longest GUI gap ms)."""
    from PySide6.QtCore import QElapsedTimer, QTimer

    gaps: list[float] = []
    clock = QElapsedTimer()
    ticker = QTimer(interval=2)
    ticker.timeout.connect(lambda: gaps.append(clock.restart()))
    window.prompt_panel.editor.blockSignals(True)
    window.prompt_panel.set_text(prompt)
    window.prompt_panel.editor.blockSignals(False)
    clock.start()
    ticker.start()
    started = time.perf_counter()
    window.controller.run_prompt(prompt)
    (view,) = wait_for(window.run_displayed, lambda v: v.result.prompt == prompt)
    window.grab()
    drawn_ms = (time.perf_counter() - started) * 1000
    ticker.stop()
    return view, drawn_ms, max(gaps) if gaps else float("nan")


def selection_redraws(window, view) -> list[float]:
    """ms for a head + token selection change and a full window paint, 10 times."""
    redraws = []
    layers, heads = view.result.model_info.layers, view.result.model_info.heads
    for i in range(10):
        started = time.perf_counter()
        window.controller.select_head((3 * i) % layers, i % heads)
        window.controller.select_token((7 * i) % view.result.num_tokens)
        window.stages.flush()  # the panels paint one per event-loop turn: all of them now
        window.grab()
        redraws.append((time.perf_counter() - started) * 1000)
    return redraws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", default="64,512")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from PySide6.QtCore import QSettings

    from explorer.gui.app import application
    from explorer.gui.main_window import MainWindow

    app = application()
    settings = QSettings(os.path.join(tempfile.mkdtemp(), "bench.ini"), QSettings.IniFormat)
    window = MainWindow(settings=settings)
    window.show()
    window.load_model("smollm2")
    wait_for(window.controller.model_changed)

    print("| tokens | run → drawn (ms, median) | engine run_s (ms, median) "
          "| longest GUI block (ms, median / worst) | selection redraw (ms, median) |")
    print("|---:|---:|---:|---:|---:|")
    for n in [int(x) for x in args.lengths.split(",")]:
        base = (TEXT * (n // 20 + 2))[: n * 5]
        drawn, engine, blocks, redraws = [], [], [], []
        for rep in range(args.repeats):
            view, drawn_ms, block = one_run(window, f"{base} {rep}")
            drawn.append(drawn_ms)
            engine.append(view.result.timings["run_s"] * 1000)
            blocks.append(block)
            redraws.extend(selection_redraws(window, view))
        print(f"| {view.result.num_tokens} | {statistics.median(drawn):.0f} | "
              f"{statistics.median(engine):.0f} | {statistics.median(blocks):.0f} / {max(blocks):.0f} | "
              f"{statistics.median(redraws):.0f} |", flush=True)
    window.close()
    app.quit()


if __name__ == "__main__":
    main()

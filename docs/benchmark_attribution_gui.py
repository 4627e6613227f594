"""GUI-thread cost of showing an attribution record (no model: synthetic records).

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/benchmark_attribution_gui.py

For prompts of 64, 2,000 and 8,000 tokens: the time of ``AttributionPanel._show_record``
(ranked list, AOPC table, deletion curves, token heat) and of the paint that follows (one
``processEvents``, the whole window), medians of 5. Both must stay under 50 ms.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from explorer.core.attribution import METHODS, Attribution, IntegratedGradientsSummary, Target
from explorer.core.faithfulness import RANDOM, FaithfulnessCurve, k_grid
from explorer.core.types import ModelInfo, RunResult


def synthetic(tokens: int) -> tuple[RunResult, Attribution]:
    rng = np.random.default_rng(0)
    info = ModelInfo("synthetic", "llama", 2, 2, 2, 8, 100, 10_000, "rotary", True)
    pieces = [f"t{i}" for i in range(tokens)]
    run = RunResult(prompt="x" * tokens, token_ids=np.zeros(tokens), tokens=pieces,
                    offsets=np.zeros((tokens, 2)), attentions=None, topk_ids=np.zeros((tokens, 1)),
                    topk_probs=np.zeros((tokens, 1)), topk_logits=np.zeros((tokens, 1)),
                    topk_tokens=[["a"]] * tokens, positional=np.zeros((1, 1)),
                    positional_kind="rotary", model_info=info, attention_mode="none")
    ks = k_grid(tokens)
    curves = {m: FaithfulnessCurve(m, rng.permutation(tokens), ks, rng.random(len(ks)),
                                   rng.random(len(ks))) for m in (*METHODS, RANDOM)}
    record = Attribution(pieces, np.zeros(tokens), tokens - 1, Target(1, "a", 0.5),
                         {m: rng.normal(size=tokens) for m in METHODS},
                         ig=IntegratedGradientsSummary(32, "zero", -1.0, -3.0, 0.4),
                         faithfulness=curves)
    return run, record


def main() -> None:
    app = QApplication([])
    from explorer.gui.controller import Controller
    from explorer.gui.main_window import MainWindow
    from explorer.gui.plotting import configure_pyqtgraph
    from explorer.gui.run_view import RunView
    from explorer.gui.worker import EngineWorker

    configure_pyqtgraph()
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.IniFormat)
    controller = Controller(EngineWorker(load_fn=lambda *a, **k: None))
    window = MainWindow(controller, settings)
    window.show()
    panel = window.features["explorer.gui.attribution"]
    panel.dock.show()
    panel.dock.raise_()
    app.processEvents()
    print("| tokens | show record (ms) | paint after it (ms) |")
    print("|---:|---:|---:|")
    for tokens in (64, 2000, 8000):
        run, record = synthetic(tokens)
        window.tokens_panel.show_result(run)
        controller.view = RunView.__new__(RunView)
        object.__setattr__(controller.view, "result", run)
        app.processEvents()
        show, paint = [], []
        for i in range(5):
            panel.set_method(METHODS[i % 2])
            app.processEvents()
            started = time.perf_counter()
            panel._show_record(record)
            show.append(time.perf_counter() - started)
            started = time.perf_counter()
            app.processEvents()
            paint.append(time.perf_counter() - started)
        print(f"| {tokens} | {1000 * statistics.median(show):.1f} | "
              f"{1000 * statistics.median(paint):.1f} |", flush=True)
    controller.shutdown()


if __name__ == "__main__":
    main()

"""Playground tokens/s in the window against the ``generate`` command, same prompt and settings.

Run (under the shared lock on the team machine):

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/benchmark_playground.py \
        [--model smollm2] [--new-tokens 48] [--repeats 3]

Both sides generate greedily (temperature 0), so they make the same tokens (checked).

- command: ``python -m explorer generate --model M --prompt P --max-new-tokens N
  --temperature 0 --out X.json`` in a subprocess; tokens/s is the JSON's
  ``timings.tokens_per_s`` (generated tokens / generation time, loading excluded).
- window: the real MainWindow, controller and worker thread (offscreen Qt); Generate is
  clicked and every streamed token is drawn in the completion view. Two rates:
  "worker" = the same ``timings.tokens_per_s`` measured inside the worker while the GUI
  draws, and "on screen" = tokens drawn / time between the first and the last token
  reaching the GUI thread (what a person sees).

Prints a Markdown table; ratio = window (on screen) / command, target >= 0.8x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPT = "The history of the transformer architecture in machine learning began when"


def run_command(args: argparse.Namespace) -> tuple[float, list[int]]:
    """One ``generate`` subprocess; (tokens/s, generated ids)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "generated.json"
        proc = subprocess.run(
            [sys.executable, "-m", "explorer", "generate", "--model", args.model,
             "--prompt", args.prompt, "--max-new-tokens", str(args.new_tokens),
             "--temperature", "0", "--out", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"generate failed: {proc.stderr}")
        data = json.loads(out.read_text())
    return float(data["timings"]["tokens_per_s"]), list(data["generated_ids"])


def wait_until(app, predicate, timeout_s: float = 1800) -> None:
    started = time.perf_counter()
    while not predicate():
        app.processEvents()
        time.sleep(0.001)
        if time.perf_counter() - started > timeout_s:
            raise SystemExit("timed out")


def run_window(args: argparse.Namespace, repeats: int) -> list[tuple[float, float, list[int]]]:
    """[(worker tokens/s, on-screen tokens/s, generated ids)] for ``repeats`` clicks."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from explorer.gui.main_window import MainWindow
    from explorer.gui.plotting import configure_pyqtgraph

    app = QApplication.instance() or QApplication([])
    configure_pyqtgraph()
    scratch = tempfile.mkdtemp(prefix="bench-playground-")
    window = MainWindow(settings=QSettings(os.path.join(scratch, "s.ini"), QSettings.IniFormat))
    window.show()
    window.load_model(args.model)
    wait_until(app, lambda: window.controller.model_info is not None)
    panel = window.features["explorer.gui.playground"]
    panel.dock.toggleViewAction().trigger()
    panel.editor.setPlainText(args.prompt)
    panel.controls.max_new_tokens.setValue(args.new_tokens)
    panel.controls.temperature.setValue(0.0)
    arrivals: list[float] = []
    real_on_step = panel._on_step

    def on_step(step) -> None:  # the GUI thread's handler: stream into the view, then time it
        real_on_step(step)
        arrivals.append(time.perf_counter())

    panel._on_step = on_step
    rows = []
    for _ in range(repeats + 1):  # the first click is a warm-up
        arrivals.clear()
        before = len(panel.branches)
        panel.generate_button.click()
        wait_until(app, lambda b=before: len(panel.branches) > b and panel.job is None)
        result = panel.branch.result
        shown = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
        rows.append((float(result.timings["tokens_per_s"]), shown, list(result.generated_ids)))
    window.close()
    return rows[1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt", default=PROMPT)
    args = parser.parse_args()

    command = [run_command(args) for _ in range(args.repeats)]
    window = run_window(args, args.repeats)
    same = all(ids == command[0][1] for _, _, ids in window)
    import torch

    print(f"model {args.model}, {args.new_tokens} new tokens, greedy, {args.repeats} repeats, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads); same tokens on both "
          f"sides: {same} ({len(command[0][1])} generated)")
    print()
    print("| run | tokens/s (median) | min | max |")
    print("|---|---:|---:|---:|")
    for name, rates in (("`generate` command", [r for r, _ in command]),
                        ("window, measured in the worker", [r for r, _, _ in window]),
                        ("window, as drawn on screen", [r for _, r, _ in window])):
        print(f"| {name} | {statistics.median(rates):.1f} | {min(rates):.1f} | {max(rates):.1f} |")
    ratio = statistics.median(r for _, r, _ in window) / statistics.median(r for r, _ in command)
    print(f"\nratio window (on screen) / command = {ratio:.2f}x (target >= 0.8x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""In-context-learning benchmarks on the embedded SmolLM2 (CPU), printed as Markdown tables.

Run (under the shared lock, from the repository root):

    flock /work/heavy.lock .venv/bin/python docs/benchmark_icl.py [--parts effects,orders,gui]

effects: the demonstration effects of the builder's 4-shot column ("I don't like this
    chair.", shipped demos, seed 0): 4 leave-one-out + 4 flipped prompts, run on the
    shared prefix's key/value cache against naive full re-runs (same numbers, checked);
    plus the label-anchor flows (one forward + one backward pass).
orders: `attention-explorer fewshot --orders 5` over the shipped 64 reviews at shots
    0,1,2,4 as a subprocess (wall time includes starting Python and loading the model;
    target < 5 min), and the same with `--orders 1`.
gui: the comparison window's Evaluate tab (offscreen Qt, real worker thread) on the 64
    reviews at shots 0,1,2,4, one order, gold labels, against `fewshot` on the command
    line for the same set (its own evaluation time, printed by the command's run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
ROOT = Path(__file__).resolve().parents[1]
QUERY = "I don't like this chair."


def effects_table() -> list[str]:
    import numpy as np

    from explorer.backend.anchor_saliency import label_anchor_flow
    from explorer.backend.fewshot_runner import label_variants
    from explorer.backend.icl_runner import demo_effects
    from explorer.backend.loader import load_model
    from explorer.core import fewshot

    loaded = load_model("smollm2")
    pool = fewshot.read_labelled_csv(fewshot.shipped("demos.csv"), fewshot.DEFAULT_LABELS)
    demos = fewshot.choose_demonstrations(pool, 4, 0, fewshot.DEFAULT_LABELS)
    prompt = fewshot.build_prompt(fewshot.COURSE_TEMPLATE, demos, QUERY)
    variants = label_variants(loaded, fewshot.DEFAULT_LABELS, case_insensitive=True)
    tokens = len(loaded.tokenizer(prompt.text)["input_ids"])
    demo_effects(loaded, prompt, fewshot.COURSE_TEMPLATE, variants)  # warm up
    rows = []
    timings: dict[bool, list[float]] = {True: [], False: []}
    results = {}
    for _ in range(3):
        for reuse in (False, True):
            started = time.perf_counter()
            results[reuse] = demo_effects(loaded, prompt, fewshot.COURSE_TEMPLATE, variants, reuse=reuse)
            timings[reuse].append(time.perf_counter() - started)
    worst = max(float(np.abs(a.leave_out_probs - b.leave_out_probs).max())
                for a, b in zip(results[True].effects, results[False].effects, strict=True))
    for reuse, name in ((False, "naive re-runs"), (True, "shared-prefix KV cache")):
        best = min(timings[reuse])
        rows.append(f"| {name} | {tokens} | {results[reuse].reused_tokens} | {best:.2f} s |")
    started = time.perf_counter()
    flow = label_anchor_flow(loaded, prompt, fewshot.COURSE_TEMPLATE, variants)
    flow_s = time.perf_counter() - started
    return ["### Demonstration effects of the 4-shot column (8 variant prompts, best of 3)", "",
            "| variants run with | prompt tokens | tokens taken from the cache | time |",
            "|---|---:|---:|---:|", *rows, "",
            f"Largest difference between the two: {worst:.1e} (probability). Speed-up "
            f"{min(timings[False]) / min(timings[True]):.2f}×. Label-anchor flows (one forward + "
            f"one backward, {len(flow.s_wp)} layers): {flow_s:.2f} s.", ""]


def fewshot_run(extra: list[str]) -> tuple[float, str]:
    out = Path(tempfile.mkdtemp()) / "summary.csv"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "explorer", "fewshot", "--shots", "0,1,2,4",
                           "--out", str(out), *extra], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return wall, done.stdout


def orders_table() -> list[str]:
    rows = []
    for orders in (1, 5):
        wall, stdout = fewshot_run(["--orders", str(orders)])
        pooled = [line for line in stdout.splitlines() if line.split()[2:3] == ["all"]]
        rows.append(f"| `--orders {orders}` | {wall:.0f} s ({wall / 60:.1f} min) | "
                    + "; ".join(f"k={line.split()[0]}: {line.split()[4]} [{line.split()[5]}]"
                                for line in pooled) + " |")
    return ["### `fewshot` over the 64 shipped reviews, shots 0,1,2,4 (subprocess wall time)", "",
            "| command | wall time | pooled accuracy [95% CI] |", "|---|---:|---|", *rows, ""]


def gui_table() -> list[str]:
    from PySide6.QtCore import QEventLoop, QSettings, QTimer

    from explorer.gui.app import application
    from explorer.gui.main_window import MainWindow

    app = application()
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(settings=settings)
    window.show()

    def wait(signal) -> None:
        loop = QEventLoop()
        signal.connect(lambda *_: loop.quit())
        QTimer.singleShot(900_000, loop.quit)
        loop.exec()

    window.load_model("smollm2")
    wait(window.controller.model_changed)
    compare = window.features["explorer.gui.compare"].open()
    panel = compare.evaluation
    panel.shots.setText("0,1,2,4")
    job = panel.run()
    assert job is not None, panel.status.text()
    wait(window.controller.worker.job_finished)
    app.processEvents()
    gui_s = panel.elapsed
    window.close()
    started = time.perf_counter()
    from explorer.backend.fewshot_runner import evaluate
    from explorer.backend.loader import load_model
    from explorer.core import fewshot

    loaded = load_model("smollm2")
    labels = fewshot.DEFAULT_LABELS
    examples = fewshot.read_labelled_csv(fewshot.shipped("reviews.csv"), labels)
    demos = fewshot.read_labelled_csv(fewshot.shipped("demos.csv"), labels)
    started = time.perf_counter()
    evaluate(loaded, examples, demos, labels, (0, 1, 2, 4))
    cli_s = time.perf_counter() - started
    wall, _ = fewshot_run([])
    return ["### Evaluate tab against `fewshot` (64 reviews × shots 0,1,2,4 + 4 calibration inputs)", "",
            "| where | evaluation time |", "|---|---:|",
            f"| comparison window, Evaluate tab (Run → done, worker thread) | {gui_s:.1f} s |",
            f"| `evaluate()` as `fewshot` calls it, in-process | {cli_s:.1f} s |",
            f"| `fewshot --shots 0,1,2,4` subprocess wall (incl. start-up and model load) | {wall:.1f} s |",
            ""]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="effects,orders,gui")
    args = parser.parse_args()
    import platform

    import torch

    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads; {time.strftime('%Y-%m-%d %H:%M')}", ""]
    parts = {"effects": effects_table, "orders": orders_table, "gui": gui_table}
    for name in args.parts.split(","):
        lines += parts[name.strip()]()
        print("\n".join(lines), flush=True)
        lines = []


if __name__ == "__main__":
    main()

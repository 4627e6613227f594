"""Benchmark: Gemma 3 270M (cached load, analysis past its sliding window) and the
weights' precision on the CPU. Prints a Markdown table.

    flock /work/heavy.lock .venv/bin/python docs/benchmark_models.py [--repeats 3]

Each load runs in a fresh process (what a user waits for: Python, torch and transformers
imports included), after the one-time GGUF conversion has filled the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
ROOT = Path(__file__).resolve().parents[1]
LOAD = ("import json, time; t = time.perf_counter(); "
        "from explorer.backend.loader import load_model; m = load_model({spec!r}, dtype={dtype!r}); "
        "print(json.dumps(dict(m.timings, wall_s=time.perf_counter() - t)))")


def fresh_load(spec: str, dtype: str = "float32") -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", LOAD.format(spec=spec, dtype=dtype)], cwd=ROOT,
                          capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed(fn, repeats: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from explorer.backend.engine import analyze
    from explorer.backend.loader import load_model

    rows: list[tuple[str, str]] = []
    fresh_load("gemma3")  # make sure the cache exists (the first conversion is not timed here)
    loads = [fresh_load("gemma3") for _ in range(max(5, args.repeats))]

    def median(name: str) -> float:
        return statistics.median(x.get(name, float("nan")) for x in loads)

    rows.append((f"gemma3 cached load, fresh process (load_s, median of {len(loads)})",
                 f"{median('load_s'):.2f} s (range {min(x['load_s'] for x in loads):.2f}–"
                 f"{max(x['load_s'] for x in loads):.2f}; transformers import "
                 f"{median('import_s'):.2f}, tokenizer {median('tokenizer_s'):.2f}, model code "
                 f"and weights {median('model_s'):.2f})"))
    gemma = load_model("gemma3")
    text = " ".join(f"Item {i}: the {['red', 'blue', 'green'][i % 3]} box." for i in range(90))
    seconds, result = timed(lambda: analyze(gemma, text, attention="full"), args.repeats)
    rows.append((f"gemma3 analyze, {result.num_tokens} tokens, full maps", f"{seconds:.2f} s"))
    long_text = text * 6
    seconds, result = timed(lambda: analyze(gemma, long_text, attention="lazy"), args.repeats)
    rows.append((f"gemma3 analyze, {result.num_tokens} tokens, lazy", f"{seconds:.2f} s"))
    gemma = None  # free it before the SmolLM2 runs

    prompt = " ".join(["The cat sat on the mat and looked at the dog."] * 40)
    reference = None
    for dtype in ("float32", "bfloat16"):
        loads = [fresh_load("smollm2", dtype) for _ in range(args.repeats)]
        model = load_model("smollm2", dtype=dtype)
        seconds, result = timed(lambda m=model: analyze(m, prompt, attention="full"), args.repeats)
        agree = ""
        if reference is None:
            reference = result
        else:
            same = float(np.mean(result.topk_ids[:, 0] == reference.topk_ids[:, 0]))
            diff = float(np.max(np.abs(result.attentions.astype(np.float32)
                                       - reference.attentions.astype(np.float32))))
            agree = f"; top-1 agrees with float32 at {same:.1%} of positions, max map diff {diff:.3f}"
        rows.append((f"smollm2 {dtype}: load_s / analyze {result.num_tokens} tokens",
                     f"{statistics.median(x['load_s'] for x in loads):.2f} s / {seconds:.2f} s{agree}"))
        del model

    print("| measurement | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()

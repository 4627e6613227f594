"""Attribution benchmark on the embedded SmolLM2: gradient × input and integrated gradients
against one forward.

Run (from the repository root, under the shared lock on a shared machine):

    flock /work/heavy.lock .venv/bin/python docs/benchmark_attribution.py [--lengths 64,256]
        [--repeats 3] [--steps 32]

"One forward" is measured twice: the app's run (``engine.analyze``, eager forward keeping
every attention map, next-token top-k at every position: what the user waited for before
opening the panel) and a bare forward (sdpa, no attention kept, logits at the explained
position only). Timings are the backend's own (``Attribution.timings["gradients_s"]``:
the gradient passes only), medians over the repeats, interleaved; the CPU-time ratio is
steadier than wall time when other programs share the cores. The last column is one full
panel computation: all four methods plus the deletion curves of 5 orderings.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

BASE = ("Classify this review: I loved this movie, the actors were wonderful and the music "
        "carried every scene. Sentiment: Positive. ")


def prompt_of_length(tokenizer, n: int) -> str:
    ids = tokenizer(BASE * (n // 10 + 2))["input_ids"]
    return tokenizer.decode(ids[:n])


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, float, Any]:
    """(wall seconds, process CPU seconds, value) of fn(*args, **kwargs)."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu, value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", default="64,256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()

    import torch

    from explorer.backend.attribution import attribute, plain_log_probs
    from explorer.backend.engine import analyze
    from explorer.backend.loader import load_model

    model = load_model("smollm2")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"IG steps {args.steps}, repeats {args.repeats} (medians)\n")
    print("| tokens | app run forward (s) | bare forward (s) | grad×input (s) | ×app run | ×bare "
          "| ×bare, CPU time | IG (s) | ×app run | ×bare | ×bare, CPU time | full panel (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in [int(x) for x in args.lengths.split(",")]:
        prompt = prompt_of_length(model.tokenizer, n)
        ids = model.tokenizer(prompt)["input_ids"]
        analyze(model, prompt)  # warm-up
        app, bare, bare_cpu, gxi, gxi_cpu, ig, ig_cpu, full = ([] for _ in range(8))
        for _ in range(args.repeats):
            app.append(analyze(model, prompt).timings["forward_s"])
            wall, cpu, _ = timed(plain_log_probs, model, ids)
            bare.append(wall)
            bare_cpu.append(cpu)
            wall, cpu, record = timed(attribute, model, prompt, methods=["grad_x_input"],
                                      faithfulness=False)
            gxi.append(record.timings["gradients_s"])
            gxi_cpu.append(cpu)
            wall, cpu, record = timed(attribute, model, prompt, methods=["integrated_gradients"],
                                      steps=args.steps, faithfulness=False)
            ig.append(record.timings["gradients_s"])
            ig_cpu.append(cpu)
        record = attribute(model, prompt, steps=args.steps)
        full.append(record.timings["total_s"])
        a, b, bc = (statistics.median(v) for v in (app, bare, bare_cpu))
        g, gc, i, ic = (statistics.median(v) for v in (gxi, gxi_cpu, ig, ig_cpu))
        print(f"| {len(ids)} | {a:.3f} | {b:.3f} | {g:.3f} | {g / a:.1f}x | {g / b:.1f}x | "
              f"{gc / bc:.1f}x | {i:.2f} | {i / a:.1f}x | {i / b:.1f}x | {ic / bc:.1f}x | "
              f"{full[0]:.1f} |", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory {peak:.0f} MB")


if __name__ == "__main__":
    main()

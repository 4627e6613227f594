"""Logit lens and head atlas benchmark on the embedded SmolLM2.

Run:  .venv/bin/python docs/benchmark_lens.py [--lengths 64,256,1024] [--repeats 3]

Prints Markdown tables (medians of wall time, plus process CPU time, steadier when other
programs share the cores):
- the logit lens (``explorer.backend.lens.logit_lens``: one forward with hooks on the
  decoder layers, then final norm + unembedding of all 30 layers in position chunks)
  against ``analyze()`` of the same prompt, and its residual-stream memory;
- head scores (``explorer.core.head_scores.score_heads``) of a run kept in full and of
  the same run kept lazily (maps rebuilt from queries and keys in row chunks), without
  the analyze() that made the run;
- the induction probe (its forward included) and its top heads.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any


def prompt_of_length(tokenizer: Any, n: int) -> str:
    base = ("Classify this review: I loved this movie, the actors were wonderful and the music "
            "carried every scene. Sentiment: Positive. The plot was thin but the city at night, "
            "the rain on the windows and the long silences made up for it. ")
    ids = tokenizer(base * (n // 10 + 2))["input_ids"]
    return tokenizer.decode(ids[:n])


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(median wall s, median CPU s, last value)."""
    walls, cpus, value = [], [], None
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        value = fn()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", default="64,256,1024")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from explorer.backend.engine import analyze
    from explorer.backend.head_scores import induction_probe
    from explorer.backend.lens import logit_lens
    from explorer.backend.loader import load_model
    from explorer.core.head_scores import score_heads

    model = load_model("smollm2")
    info = model.info
    print(f"\ntorch {torch.__version__}, threads {torch.get_num_threads()}, {info.name}: "
          f"{info.layers} layers × {info.heads} heads, vocabulary {info.vocab_size:,}\n")
    lens_rows, score_rows = [], []
    for n in [int(x) for x in args.lengths.split(",")]:
        prompt = prompt_of_length(model.tokenizer, n)
        tokens = len(model.tokenizer(prompt)["input_ids"])
        run_s, _, _ = timed(lambda p=prompt: analyze(model, p, attention="none"), args.repeats)
        lens_s, lens_cpu, lens = timed(lambda p=prompt: logit_lens(model, p, top_k=10), args.repeats)
        forward_s = lens.timings["forward_s"]
        residual_mb = info.layers * tokens * info.hidden_size * 4 / 1e6
        lens_rows.append(f"| {tokens} | {run_s:.3f} | {lens_s:.3f} | {lens_cpu:.3f} | {forward_s:.3f} | "
                         f"{(lens_s - forward_s) / info.layers * 1000:.1f} | {residual_mb:.0f} |")
        full = analyze(model, prompt, top_k=1, attention="full")
        lazy = analyze(model, prompt, top_k=1, attention="lazy")
        full_s, full_cpu, _ = timed(lambda r=full: score_heads(r), args.repeats)
        lazy_s, lazy_cpu, _ = timed(lambda r=lazy: score_heads(r), args.repeats)
        score_rows.append(f"| {tokens} | {full_s:.3f} | {full_cpu:.3f} | {lazy_s:.3f} | {lazy_cpu:.3f} |")
        del full, lazy, lens
    print("### Logit lens\n")
    print("| tokens | analyze, attention none (s) | logit lens (s) | lens CPU (s) | "
          "of which forward (s) | readout per layer (ms) | residual stream (MB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(lens_rows))
    print("\n### Head scores (without the run that made the maps)\n")
    print("| tokens | full maps (s) | CPU (s) | lazy maps (s) | CPU (s) |")
    print("|---:|---:|---:|---:|---:|")
    print("\n".join(score_rows))
    probe_s, probe_cpu, probe = timed(lambda: induction_probe(model), args.repeats)
    print(f"\n### Induction probe ({len(probe.token_ids)} tokens)\n")
    print(f"{probe_s:.3f} s wall, {probe_cpu:.3f} s CPU. Top induction heads (layer.head: score):")
    print(", ".join(f"{layer}.{head}: {score:.3f}" for layer, head, score in probe.top("induction", 8)))
    print("Top previous-token heads: " + ", ".join(
        f"{layer}.{head}: {score:.3f}" for layer, head, score in probe.top("previous_token", 5)))


if __name__ == "__main__":
    main()

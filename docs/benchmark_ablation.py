"""Ablation scan benchmark: the restart-from-the-residual-stream scan against the naive one.

Run:  flock /work/heavy.lock .venv/bin/python docs/benchmark_ablation.py [--lengths 32,128] [--repeats 2] [--mode zero] [--naive-sample N]

Both scans measure Δ log p(top-1) after the last token of a SmolLM2 prompt for every head
(30 layers x 9 heads) with torch's sdpa attention. Naive: one forward of the whole prompt
per head (L x H forwards). Fast: one clean forward keeping each layer's input, then per
layer one batched restart (the 9 heads as 9 sequences) through the remaining layers.
Prints a Markdown table of medians (wall time, and process CPU time, which is steadier
when other programs share the cores) and the largest difference between the two scans.
``--naive-sample N`` times only the first N heads' forwards of the naive scan (the same
ablated forward as the naive scan's loop) and multiplies by L x H / N: every naive forward
costs the same, and a full naive scan at 128 tokens takes an hour on a busy 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import time


def prompt_of_length(tokenizer, n: int) -> tuple[str, int]:
    base = ("Classify this review: I loved this movie, the actors were wonderful and the music "
            "carried every scene. Sentiment: Positive. ")
    ids = tokenizer(base * (n // 10 + 2))["input_ids"]
    text = tokenizer.decode(ids[:n])
    return text, len(tokenizer(text)["input_ids"])


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", default="32,128")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mode", choices=("zero", "mean"), default="zero")
    parser.add_argument("--naive-sample", type=int, default=0,
                        help="time this many heads of the naive scan and extrapolate (0: all)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from explorer.backend.ablation import _sdpa, ablating, ablation_scan
    from explorer.backend.loader import load_model
    from explorer.core.ablation import Ablation

    def naive_sample(prompt: str, count: int) -> None:
        """The naive scan's loop body for the first ``count`` heads."""
        ids = torch.tensor([loaded.tokenizer(prompt)["input_ids"]])
        heads = [(layer, head) for layer in range(info.layers) for head in range(info.heads)]
        with torch.inference_mode(), _sdpa(loaded.model):
            for layer, head in heads[:count]:
                with ablating(loaded, Ablation(frozenset({(layer, head)}), args.mode)):
                    loaded.model(input_ids=ids, use_cache=False, logits_to_keep=1)

    loaded = load_model("smollm2")
    info = loaded.info
    print(f"SmolLM2 ({info.layers} layers x {info.heads} heads), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, mode {args.mode}\n")
    total = info.layers * info.heads
    sample = args.naive_sample if 0 < args.naive_sample < total else total
    print("| tokens | naive wall s | fast wall s | fast / naive (wall) | naive CPU s | fast CPU s "
          "| fast / naive (CPU) | max abs difference | naive heads timed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in (int(x) for x in args.lengths.split(",")):
        prompt, tokens = prompt_of_length(loaded.tokenizer, n)
        ablation_scan(loaded, prompt_of_length(loaded.tokenizer, 8)[0], mode=args.mode)  # warm-up
        runs = {"naive": [], "fast": []}
        scans = {}
        for _ in range(args.repeats):
            for method in ("naive", "fast"):
                if method == "naive" and sample < total:
                    _, wall, cpu = timed(lambda p=prompt: naive_sample(p, sample))
                    runs[method].append((wall * total / sample, cpu * total / sample))
                    continue
                scan, wall, cpu = timed(lambda m=method, p=prompt: ablation_scan(
                    loaded, p, mode=args.mode, method=m))
                runs[method].append((wall, cpu))
                scans[method] = scan
        naive_wall = statistics.median(w for w, _ in runs["naive"])
        naive_cpu = statistics.median(c for _, c in runs["naive"])
        fast_wall = statistics.median(w for w, _ in runs["fast"])
        fast_cpu = statistics.median(c for _, c in runs["fast"])
        diff = "–" if "naive" not in scans else \
            f"{float(np.abs(scans['naive'].delta_logprob - scans['fast'].delta_logprob).max()):.1e}"
        timed_heads = f"{sample} of {total}" + (" (extrapolated)" if sample < total else "")
        print(f"| {tokens} | {naive_wall:.2f} | {fast_wall:.2f} | {fast_wall / naive_wall:.2f} "
              f"| {naive_cpu:.2f} | {fast_cpu:.2f} | {fast_cpu / naive_cpu:.2f} | {diff} "
              f"| {timed_heads} |", flush=True)


if __name__ == "__main__":
    main()

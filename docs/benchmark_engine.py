"""Engine benchmark: load times and analyze() against a bare transformers eager forward.

Run:  .venv/bin/python docs/benchmark_engine.py [--lengths 16,64,256,1024] [--repeats 3]
Prints a Markdown table (medians; wall time, and the ratio of process CPU time, which
is steadier when other programs share the cores). Loads are timed in fresh subprocesses (wall time including
imports); the first load converts the GGUF into a throw-away cache folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

LOAD_SNIPPET = (
    "import time; t=time.perf_counter(); "
    "from explorer.backend.loader import load_model; load_model('smollm2'); "
    "print(time.perf_counter()-t)"
)


def timed_subprocess(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", LOAD_SNIPPET], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def load_times() -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, ATTENTION_EXPLORER_CACHE=cache, TRANSFORMERS_VERBOSITY="error")
        first = timed_subprocess(env)
        cached = timed_subprocess(env)
    return first, cached


def prompt_of_length(tokenizer, n: int) -> str:
    base = ("Classify this review: I loved this movie, the actors were wonderful and the music "
            "carried every scene. Sentiment: Positive. ")
    ids = tokenizer(base * (n // 10 + 2))["input_ids"]
    text = tokenizer.decode(ids[:n])
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", default="16,64,256,1024")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()

    import torch

    from explorer.backend.engine import analyze
    from explorer.backend.loader import load_model

    rows = []
    if not args.skip_load:
        first, cached = load_times()
        print(f"| load | first (GGUF conversion) | {first:.1f} s |")
        print(f"| load | cached | {cached:.1f} s |")
    model = load_model("smollm2")
    print(f"\ntorch {torch.__version__}, threads {torch.get_num_threads()}\n")
    print("| tokens | bare eager forward (s) | analyze (s) | ratio | ratio of CPU time | attentions fp16 (MB) | fp32 would be (MB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in [int(x) for x in args.lengths.split(",")]:
        prompt = prompt_of_length(model.tokenizer, n)
        ids = torch.tensor([model.tokenizer(prompt)["input_ids"]])
        bare, ours, bare_cpu, ours_cpu = [], [], [], []
        for _ in range(args.repeats):
            started, cpu = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                out = model.model(input_ids=ids, output_attentions=True)
            bare.append(time.perf_counter() - started)
            bare_cpu.append(time.process_time() - cpu)
            del out
            started, cpu = time.perf_counter(), time.process_time()
            result = analyze(model, prompt)
            ours.append(time.perf_counter() - started)
            ours_cpu.append(time.process_time() - cpu)
        b, o = statistics.median(bare), statistics.median(ours)
        cpu_ratio = statistics.median(ours_cpu) / statistics.median(bare_cpu)
        mb16 = result.attentions.nbytes / 1e6
        rows.append((result.num_tokens, b, o))
        print(f"| {result.num_tokens} | {b:.3f} | {o:.3f} | {o / b:.2f}x | {cpu_ratio:.2f}x | {mb16:.0f} | "
              f"{2 * mb16:.0f} |", flush=True)
        del result


if __name__ == "__main__":
    main()

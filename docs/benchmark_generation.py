"""Tokens per second: our streaming generation with attention capture vs transformers'
``generate`` without it, same model, same prompt, greedy, in the same process.

    .venv/bin/python docs/benchmark_generation.py [--model smollm2] [--new-tokens 64] [--repeats 3]

Prints a Markdown table (copied into docs/generation.md). Both sides produce the
same tokens (checked), so they do the same number of forwards, except that ours
also feeds the last token once to capture its attention row.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPT = "The history of the transformer architecture in machine learning began when"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: torch's own choice)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from explorer.backend.generation import eos_ids, generate
    from explorer.backend.loader import load_model
    from explorer.core.sampling import SamplingSettings

    loaded = load_model(args.model)
    settings = SamplingSettings(max_new_tokens=args.new_tokens, temperature=0.0)
    ids = torch.tensor([loaded.tokenizer(args.prompt)["input_ids"]])
    eos = sorted(eos_ids(loaded))
    # no EOS stop on either side, so both produce exactly new-tokens tokens
    ours_rates, theirs_rates = [], []
    ours_tokens = theirs_tokens = None

    def run_theirs() -> tuple[float, list[int]]:
        started = time.perf_counter()
        with torch.inference_mode():
            out = loaded.model.generate(ids, do_sample=False, max_new_tokens=args.new_tokens,
                                        min_new_tokens=args.new_tokens,
                                        pad_token_id=eos[0] if eos else 0)
        elapsed = time.perf_counter() - started
        new = out[0, ids.shape[1]:].tolist()
        return len(new) / elapsed, new

    def run_ours() -> tuple[float, list[int]]:
        streamed = []
        started = time.perf_counter()
        result = generate(loaded, args.prompt, settings, on_step=streamed.append,
                          top_alternatives=10)
        elapsed = time.perf_counter() - started
        return len(result.generated_ids) / elapsed, result.generated_ids

    run_theirs()  # warm-up (first call pays one-off costs)
    run_ours()
    for _ in range(args.repeats):
        rate, theirs_tokens = run_theirs()
        theirs_rates.append(rate)
        rate, ours_tokens = run_ours()
        ours_rates.append(rate)
    same = ours_tokens == theirs_tokens[: len(ours_tokens)]
    prompt_tokens = ids.shape[1]
    print(f"model {loaded.info.name}, prompt {prompt_tokens} tokens, {args.new_tokens} new "
          f"tokens, greedy, {args.repeats} repeats, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; same tokens: {same} "
          f"(ours {len(ours_tokens)}, generate {len(theirs_tokens)})")
    print()
    print("| run | tokens/s (median) | min | max |")
    print("|---|---:|---:|---:|")
    for name, rates in (("transformers generate (no attentions)", theirs_rates),
                        ("ours: streaming + attention capture", ours_rates)):
        print(f"| {name} | {statistics.median(rates):.1f} | {min(rates):.1f} | "
              f"{max(rates):.1f} |")
    ratio = statistics.median(ours_rates) / statistics.median(theirs_rates)
    print(f"\nratio ours / generate = {ratio:.2f}x (target >= 0.8x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`attention-explorer heads`: the head atlas, one CSV row per head.

    attention-explorer heads --model M (--prompt TEXT | --prompt-file F) [--probe induction]
        --out heads.csv [--attention full|lazy]

Columns, in this order: layer, head, kv_head, first_token, previous_token, self,
duplicate_token, induction, entropy_bits (definitions in ``explorer.core.head_scores``).
``--probe induction`` scores every head on the induction probe instead of the prompt: a
fixed-seed sequence of random tokens repeated once, which finds induction heads even
when the prompt has no repeats (the prompt is then optional, and unused). Prints the
top heads of each score as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from explorer.cli.common import (
    add_model_options,
    add_prompt_options,
    load,
    read_prompt,
    require_prompt,
    stderr_progress,
)
from explorer.core.attention import LAZY_FROM_TOKENS

PROBES = ("induction",)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "heads", help="score every attention head (first-token, previous-token, induction, …) to CSV",
        description="Score every attention head on the prompt (or on the induction probe) and "
        "write one CSV row per head: layer,head,kv_head,first_token,previous_token,self,"
        "duplicate_token,induction,entropy_bits.")
    add_model_options(parser)
    add_prompt_options(parser, required=False)
    parser.add_argument("--probe", choices=PROBES,
                        help="score the heads on a fixed-seed random token sequence repeated "
                        "once instead of the prompt (finds induction heads)")
    parser.add_argument("--out", type=Path, required=True, help="output .csv path")
    parser.add_argument("--attention", choices=("full", "lazy"), default=None,
                        help=f"how the prompt's maps are kept while scoring (default: full below "
                        f"{LAZY_FROM_TOKENS:,} tokens, lazy from there)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from explorer.backend.head_scores import induction_probe, score_prompt
    from explorer.core.head_scores import SCORE_NAMES, write_csv

    if args.probe is None:
        prompt = require_prompt(args)
    elif read_prompt(args):
        print("note: --probe induction scores the probe sequence; the prompt is not used.",
              file=sys.stderr)
    loaded = load(args)
    task = stderr_progress()
    if args.probe == "induction":
        scores = induction_probe(loaded, task)
    else:
        scores = score_prompt(loaded, prompt, task, attention=args.attention or "auto")
    write_csv(scores, args.out)
    top = {name: [{"layer": layer, "head": head, "score": None if math.isnan(value) else value}
                  for layer, head, value in scores.top(name, 5)] for name in SCORE_NAMES}
    print(json.dumps({"model": scores.model_name, "source": scores.source,
                      "tokens": int(len(scores.token_ids)), "out": str(args.out), "top": top},
                     ensure_ascii=False, indent=1))
    return 0

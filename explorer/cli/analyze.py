"""`attention-explorer analyze`: one prompt through one model, written as a NumPy archive.

    attention-explorer analyze --model M (--prompt TEXT | --prompt-file F) --out RESULT.npz
        [--top-k K] [--attention full|lazy|none] [--json]

``--attention`` (default: full below 1,024 tokens, lazy from there): ``full`` writes
``attentions`` float16[L, H, T, T]; ``lazy`` writes ``queries`` float16[L, H, T, D],
``keys`` float16[L, KV, T, D] and ``attention_spec`` (JSON), from which
``explorer.core.attention.head_map`` rebuilds any map; ``none`` writes no attention.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from explorer.cli.common import add_model_options, add_prompt_options, load, require_prompt
from explorer.core.attention import ATTENTION_MODES, LAZY_FROM_TOKENS
from explorer.core.errors import ExplorerError


def register(sub: Any) -> None:
    parser = sub.add_parser("analyze", help="run one prompt and write a NumPy archive",
                            description="Run one prompt and write tokens, attention, positions and "
                            "next-token probabilities to a .npz archive; prints a JSON summary.")
    add_model_options(parser)
    add_prompt_options(parser, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output .npz path")
    parser.add_argument("--top-k", type=int, default=20,
                        help="next-token candidates kept (default: %(default)s)")
    parser.add_argument("--attention", choices=ATTENTION_MODES, default=None,
                        help="full: every map; lazy: queries and keys, maps rebuilt on demand; "
                        f"none: no attention (default: full below {LAZY_FROM_TOKENS:,} tokens, "
                        "lazy from there)")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from explorer.backend.engine import analyze
    from explorer.core.result_io import full_dict, save_npz, summary_dict

    prompt = require_prompt(args)
    if args.top_k < 1:
        raise ExplorerError("--top-k must be at least 1.")
    loaded = load(args)
    result = analyze(loaded, prompt, top_k=args.top_k, attention=args.attention or "auto")
    result = replace(result, timings=dict(result.timings, load_s=loaded.timings.get("load_s", 0.0)))
    try:
        save_npz(result, args.out)
    except OSError as exc:
        raise ExplorerError(f"Cannot write '{args.out}': {exc}") from exc
    print(json.dumps(full_dict(result) if args.json else summary_dict(result), ensure_ascii=False,
                     indent=None if args.json else 2))
    return 0

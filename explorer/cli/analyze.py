"""`attention-explorer analyze`: one prompt through one model, written as a NumPy archive.

    attention-explorer analyze --model M (--prompt TEXT | --prompt-file F) --out RESULT.npz
        [--top-k K] [--attention full|lazy|none] [--json]

``--attention`` (default: full below 1,024 tokens, lazy from there): ``full`` writes
``attentions`` float16[L, H, T, T]; ``lazy`` writes ``queries`` float16[L, H, T, D],
``keys`` float16[L, KV, T, D] and ``attention_spec`` (JSON), from which
``explorer.core.attention.head_map`` rebuilds any map; ``none`` writes no attention.

An encoder-decoder model (T5, BART) takes the source as the prompt and feeds the decoder
``--target TEXT`` (or its own greedy output when there is none); the archive then holds
``encoder_attentions`` float16[L, H, S, S], ``decoder_attentions`` float16[L, H, T, T],
``cross_attentions`` float16[L, H, T, S], ``decoder_token_ids``, ``decoder_tokens`` and
the top-k arrays for decoder positions (``explorer.core.seq2seq.save_npz``).
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
    parser.add_argument("--target", default=None,
                        help="encoder-decoder models: the text fed to the decoder (default: "
                        "the decoder generates greedily)")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from explorer.backend.engine import analyze
    from explorer.core.result_io import full_dict, save_npz, summary_dict

    prompt = require_prompt(args)
    if args.top_k < 1:
        raise ExplorerError("--top-k must be at least 1.")
    loaded = load(args)
    if loaded.info.encoder_decoder:
        return _run_seq2seq(args, loaded, prompt)
    if args.target is not None:
        raise ExplorerError(f"--target is for encoder-decoder models (T5, BART); "
                            f"'{loaded.info.name}' is not one.")
    result = analyze(loaded, prompt, top_k=args.top_k, attention=args.attention or "auto")
    result = replace(result, timings=dict(result.timings, load_s=loaded.timings.get("load_s", 0.0)))
    try:
        save_npz(result, args.out)
    except OSError as exc:
        raise ExplorerError(f"Cannot write '{args.out}': {exc}") from exc
    print(json.dumps(full_dict(result) if args.json else summary_dict(result), ensure_ascii=False,
                     indent=None if args.json else 2))
    return 0


def _run_seq2seq(args: argparse.Namespace, loaded: Any, prompt: str) -> int:
    from explorer.backend.seq2seq import analyze_seq2seq
    from explorer.core import seq2seq

    if args.attention not in (None, "full"):
        raise ExplorerError("Encoder-decoder runs keep every map (--attention full); lazy and "
                            "none are for decoder-only and encoder models.")
    result = analyze_seq2seq(loaded, prompt, target=args.target, top_k=args.top_k)
    result = replace(result, timings=dict(result.timings, load_s=loaded.timings.get("load_s", 0.0)))
    try:
        seq2seq.save_npz(result, args.out)
    except OSError as exc:
        raise ExplorerError(f"Cannot write '{args.out}': {exc}") from exc
    data = seq2seq.full_dict(result) if args.json else seq2seq.summary_dict(result)
    print(json.dumps(data, ensure_ascii=False, indent=None if args.json else 2))
    return 0

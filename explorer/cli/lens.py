"""`attention-explorer lens`: the logit lens of one prompt, written as a NumPy archive.

    attention-explorer lens --model M (--prompt TEXT | --prompt-file F) --out R.npz [--top-k K]

The archive holds ``lens_ids`` int64[L, T, K] and ``lens_probs`` float32[L, T, K] (the
top-K next tokens after layer l = 0..L-1), ``lens_final_probs`` float32[L, T] (the
probability after each layer of the token the full model ranks first at that position),
``lens_kl`` float32[L, T] (KL(full model ‖ layer l) in nats), and token_ids, tokens,
lens_final_ids, lens_logsumexp, vocab_ids, vocab_pieces (see ``explorer.core.lens``).
Prints, as JSON, every layer's top guesses at the last position. An encoder has no
next-token distribution: error, exit code 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from explorer.cli.common import (
    add_model_options,
    add_prompt_options,
    load,
    require_prompt,
    stderr_progress,
)
from explorer.core.errors import ExplorerError

DEFAULT_TOP_K = 10


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "lens", help="the logit lens: every layer's next-token guesses, as a NumPy archive",
        description="Apply the model's final norm and output head to the residual stream after "
        "every layer; write the top-K guesses, the probability of the model's final first choice "
        "and the KL divergence from the full model per layer and position to a .npz archive.")
    add_model_options(parser)
    add_prompt_options(parser, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output .npz path")
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K,
                        help="guesses kept per layer and position (default: %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from explorer.backend.lens import check_causal, logit_lens
    from explorer.core.lens import save_lens_npz, summary

    prompt = require_prompt(args)
    if args.top_k < 1:
        raise ExplorerError("--top-k must be at least 1.")
    loaded = load(args)
    check_causal(loaded)
    lens = logit_lens(loaded, prompt, top_k=args.top_k, task=stderr_progress())
    try:
        save_lens_npz(lens, args.out)
    except OSError as exc:
        raise ExplorerError(f"Cannot write '{args.out}': {exc}") from exc
    print(json.dumps(dict(summary(lens), out=str(args.out), timings=lens.timings),
                     ensure_ascii=False, indent=1))
    return 0

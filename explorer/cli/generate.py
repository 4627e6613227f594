"""The ``generate`` sub-command: the playground headless.

    attention-explorer generate --model M --prompt TEXT --max-new-tokens N
        [--temperature T --top-k K --top-p P --repetition-penalty R --seed S
         --stop TEXT ... --chat --top-alternatives N] --out RESULT.json

The JSON holds ``text`` (the completion), ``generated_ids`` and ``steps`` (one per
generated token: ``id``, ``token``, ``prob`` after the sampling filters,
``raw_prob`` before them, ``top`` = [[id, token, prob], ...] after the filters and
``raw_top`` before them), plus the prompt, the exact text the model saw
(``model_text``, chat-templated with --chat), the settings (with the seed used),
``stop_reason`` and timings.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from explorer.cli.common import (
    add_model_options,
    add_prompt_options,
    load,
    require_prompt,
    write_json,
)
from explorer.core import sampling
from explorer.core.errors import ExplorerError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "generate", help="generate text and write every token's probabilities as JSON",
        description="Generate a completion token by token and write JSON with the text, the "
        "generated ids and, per token, its probability after and before the sampling filters "
        "and the top alternatives. --temperature 0 is greedy (the same tokens as transformers' "
        "generate); a --seed makes a sampled run reproducible.",
    )
    add_model_options(parser)
    add_prompt_options(parser, required=True)
    parser.add_argument("--max-new-tokens", type=int, default=sampling.DEFAULT_MAX_NEW_TOKENS,
                        help="tokens to generate at most (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=sampling.DEFAULT_TEMPERATURE,
                        help="softmax temperature; 0 = greedy (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=sampling.DEFAULT_TOP_K,
                        help="keep only the K most likely tokens; 0 = off (default: %(default)s)")
    parser.add_argument("--top-p", type=float, default=sampling.DEFAULT_TOP_P,
                        help="nucleus: keep the smallest set of tokens whose probability adds "
                        "up to P; 1 = off (default: %(default)s)")
    parser.add_argument("--repetition-penalty", type=float,
                        default=sampling.DEFAULT_REPETITION_PENALTY,
                        help="divide positive / multiply negative logits of tokens already in "
                        "the text by this; 1 = off (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed; the same seed gives the same tokens "
                        "(default: a fresh one, written to the JSON)")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT",
                        help="stop when the completion contains TEXT (repeatable)")
    parser.add_argument("--chat", action="store_true",
                        help="wrap the prompt in the model's chat template as a user message "
                        "(instruct models); the JSON's model_text shows the exact text")
    parser.add_argument("--top-alternatives", type=int, default=5, metavar="N",
                        help="alternatives listed per token (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="output .json path")
    parser.set_defaults(handler=cmd_generate)


def settings_from_args(args: argparse.Namespace) -> sampling.SamplingSettings:
    return sampling.SamplingSettings(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, repetition_penalty=args.repetition_penalty, seed=args.seed,
        stop=tuple(args.stop), greedy=args.temperature == 0,
    ).validate()


def cmd_generate(args: argparse.Namespace) -> int:
    prompt = require_prompt(args)
    settings = settings_from_args(args)
    if args.top_alternatives < 1:
        raise ExplorerError("--top-alternatives must be at least 1.")
    loaded = load(args)
    from explorer.backend.generation import generate

    result = generate(loaded, prompt, settings, chat=args.chat,
                      top_alternatives=args.top_alternatives)
    data = result.summary_dict()
    data["timings"]["load_s"] = loaded.timings.get("load_s", 0.0)
    write_json(args.out, data)
    print(result.completion)
    return 0

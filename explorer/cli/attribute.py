"""`attention-explorer attribute`: which input tokens matter for one next-token prediction.

    attention-explorer attribute --model M (--prompt T | --prompt-file F) [--position P]
        [--target TOKEN] [--methods grad_x_input,integrated_gradients,rollout,attention]
        [--steps N] [--baseline zero|eos|pad] [--seed S] [--curves-out CURVES.csv] --out R.json

R.json keys: ``tokens``; ``position``; ``target`` {id, token, prob}; ``scores``
{method: [one float per token]}; ``ig`` {steps, baseline, f_x, f_baseline, delta};
``aopc`` {method: {comprehensiveness, sufficiency}}, including ``random``.
CURVES.csv: method,k,deletion_prob,keep_only_prob (the deletion curves behind ``aopc``).
Encoders get rollout only (``target``, ``ig`` null, ``aopc`` empty).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from explorer.cli.common import (
    add_model_options,
    add_prompt_options,
    load,
    require_prompt,
    stderr_progress,
    write_json,
)
from explorer.core.attribution import (
    BASELINES,
    DEFAULT_STEPS,
    METHODS,
    ROLLOUT,
    check_steps,
    parse_methods,
)
from explorer.core.errors import ExplorerError
from explorer.core.faithfulness import DEFAULT_SEED


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "attribute", help="which input tokens matter for a next-token prediction, and how "
        "faithful each explanation is",
        description="Explain f = log p(target | prompt up to the position) with gradient × input, "
        "integrated gradients, attention rollout and last-layer attention; measure each "
        "method's faithfulness (deletion curves, AOPC) against a seeded random ordering.")
    add_model_options(parser)
    add_prompt_options(parser, required=True)
    parser.add_argument("--position", type=int, default=None,
                        help="token index explained (default: the last token; 0 for encoders)")
    parser.add_argument("--target", default=None,
                        help="the next token to explain, exactly one token such as ' Positive' "
                        "(default: the top-1 prediction at the position)")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated, from {','.join(METHODS)} (default: all; "
                        f"{ROLLOUT} for encoders)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help="integrated-gradients steps, midpoint rule (default: %(default)s)")
    parser.add_argument("--baseline", choices=BASELINES, default="zero",
                        help="integrated-gradients baseline and deletion replacement: zero "
                        "embeddings or the eos / pad token's embedding (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="seed of the random ordering (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="output JSON path")
    parser.add_argument("--curves-out", type=Path, default=None,
                        help="also write the deletion curves as CSV")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from explorer.backend.attribution import attribute

    prompt = require_prompt(args)
    check_steps(args.steps)
    if args.methods is not None:
        parse_methods(args.methods)
    if args.seed < 0:
        raise ExplorerError("--seed must be a non-negative integer.")
    loaded = load(args)
    record = attribute(loaded, prompt, position=args.position, target=args.target,
                       methods=args.methods, steps=args.steps, baseline=args.baseline,
                       seed=args.seed, task=stderr_progress())
    write_json(args.out, record.to_json())
    if args.curves_out is not None:
        _write_curves(args.curves_out, record.curves_rows())
    print(json.dumps(_summary(record), ensure_ascii=False, indent=2))
    return 0


def _summary(record: Any) -> dict[str, Any]:
    data = record.to_json()
    top = {m: [[record.tokens[i], round(s, 4)] for i, s in record.ranked(m)[:5]]
           for m in record.scores}
    return {"position": data["position"], "target": data["target"], "top5": top,
            "ig": data["ig"], "aopc": data["aopc"],
            "timings": {k: round(v, 3) for k, v in record.timings.items()}}


def _write_curves(path: Path, rows: list[dict[str, Any]]) -> None:
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, ["method", "k", "deletion_prob", "keep_only_prob"])
            writer.writeheader()
            writer.writerows(rows)
    except OSError as exc:
        raise ExplorerError(f"Cannot write '{path}': {exc}") from exc

"""`attention-explorer ablate`: knock heads out and see what the next-token distribution loses.

    attention-explorer ablate --model M (--prompt T | --prompt-file F) --heads 3.2,5.1 \\
        [--mode zero|mean] [--target TOKEN] [--top-k K] --out R.json
    attention-explorer ablate --model M (--prompt T | --prompt-file F) --scan \\
        [--mode zero|mean] [--target TOKEN] [--position I] --out scan.npz

Heads are LAYER.HEAD, 0-based. R.json: ``base`` and ``ablated``, each {"top": [{"id",
"token", "prob"}]} (after the last token), ``target`` {"id", "token", "base_prob",
"ablated_prob"} (default target: the unablated top-1) and ``kl`` (KL(base ‖ ablated), nats).
scan.npz: ``delta_logprob`` float32[L, H] = log p_ablated(target) - log p(target) with each
head ablated alone, after token ``--position`` (default: the last); the target defaults to
the actual next token, or the top-1 after the last token. Also ``target_id``,
``target_token``, ``position``, ``base_logprob``, ``mode``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from explorer.cli.common import (
    add_model_options,
    add_prompt_options,
    load,
    require_prompt,
    stderr_progress,
    write_json,
)
from explorer.core.ablation import ABLATION_MODES, Ablation, AblationError, parse_heads
from explorer.core.errors import ExplorerError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "ablate", help="knock attention heads out and compare next-token probabilities",
        description="Zero- or mean-ablate attention heads (their output before the output "
        "projection) and write the next-token distribution with and without them as JSON, or "
        "with --scan ablate each head alone and write Δ log p(target) per head as .npz.")
    add_model_options(parser)
    add_prompt_options(parser, required=True)
    parser.add_argument("--heads", help="heads to ablate, LAYER.HEAD separated by commas, "
                        "0-based (e.g. 3.2,5.1)")
    parser.add_argument("--mode", choices=ABLATION_MODES, default="zero",
                        help="zero: the head outputs zeros; mean: its mean over positions "
                        "(default: %(default)s)")
    parser.add_argument("--scan", action="store_true",
                        help="ablate every head alone and write delta_logprob float32[L, H]")
    parser.add_argument("--target", help="the token whose probability is measured (exactly one "
                        "token, e.g. ' Paris'; default: the actual next token, or the top-1)")
    parser.add_argument("--position", type=int, default=None,
                        help="--scan: measure after this token index (default: the last)")
    parser.add_argument("--top-k", type=int, default=10,
                        help="candidates listed in the JSON (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="R.json, or scan.npz with --scan")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    prompt = require_prompt(args)
    if args.scan and args.heads:
        raise AblationError("--scan ablates every head alone: drop --heads.")
    if not args.scan and not args.heads:
        raise AblationError("Give --heads LAYER.HEAD,… to ablate, or --scan.")
    if args.top_k < 1:
        raise ExplorerError("--top-k must be at least 1.")
    heads = parse_heads(args.heads) if args.heads else frozenset()
    ablation = Ablation(heads, args.mode)
    loaded = load(args)
    if not loaded.info.causal:
        raise AblationError(f"{loaded.info.name} is an encoder: it predicts no next token, so "
                            "ablation has no probability to change.")
    ablation.check(loaded.info.layers, loaded.info.heads)
    from explorer.backend.ablation import single_token_id

    target = single_token_id(loaded, args.target) if args.target is not None else None
    if args.scan:
        return _scan(args, loaded, prompt, target)
    return _ablate(args, loaded, prompt, ablation, target)


def _ablate(args: argparse.Namespace, loaded: Any, prompt: str, ablation: Ablation,
            target: int | None) -> int:
    from explorer.backend.engine import analyze
    from explorer.core.ablation import comparison_dict

    task = stderr_progress()
    base = analyze(loaded, prompt, top_k=1, task=task.sub(0.0, 0.5), attention="none")
    ablated = analyze(loaded, prompt, top_k=1, task=task.sub(0.5, 1.0), attention="none",
                      ablation=ablation)
    target = int(np.argmax(base.last_probs)) if target is None else target
    tokenizer = loaded.tokenizer
    report = comparison_dict(base.last_probs, ablated.last_probs, target,
                             lambda i: str(tokenizer.convert_ids_to_tokens(i)), args.top_k)
    write_json(args.out, report)
    print(json.dumps({"heads": ablation.describe(), "mode": ablation.mode, "kl": report["kl"],
                      "target": report["target"]}, ensure_ascii=False, indent=2))
    return 0


def _scan(args: argparse.Namespace, loaded: Any, prompt: str, target: int | None) -> int:
    from explorer.backend.ablation import ablation_scan

    scan = ablation_scan(loaded, prompt, position=args.position, target_id=target,
                         mode=args.mode, task=stderr_progress())
    try:
        if args.out.parent and not args.out.parent.exists():
            args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "wb") as handle:
            np.savez(handle, delta_logprob=scan.delta_logprob,
                     target_id=np.int64(scan.target_id), target_token=np.str_(scan.target_token),
                     position=np.int64(scan.position), base_logprob=np.float64(scan.base_logprob),
                     mode=np.str_(scan.mode))
    except OSError as exc:
        raise ExplorerError(f"Cannot write '{args.out}': {exc}") from exc
    strongest = [{"head": f"{layer}.{head}", "delta_logprob": round(delta, 6)}
                 for layer, head, delta in scan.strongest(5)]
    print(json.dumps({"target": scan.target_token, "target_id": scan.target_id,
                      "position": scan.position, "base_prob": scan.base_prob,
                      "strongest": strongest, "notes": list(scan.notes)},
                     ensure_ascii=False, indent=2))
    return 0

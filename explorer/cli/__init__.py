"""Command line: the GUI by default, and the same analyses headless.

One module per command, each with ``register(sub)`` that adds its sub-parser and sets
``handler``; this module only assembles them (no command imports another)::

    attention-explorer                         open the window on the embedded SmolLM2
    attention-explorer models                  list embedded and locally cached models
    attention-explorer analyze --model M --prompt TEXT --out RESULT.npz [--attention full|lazy|none]
    attention-explorer fewshot …               accuracy per number of demonstrations
    attention-explorer generate …              the playground headless
    attention-explorer ablate …                knock heads out (or --scan every head alone)

Bad input prints ``error: …`` on stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from explorer.cli.common import (
    EXIT_USAGE,
    add_model_options,
    add_prompt_options,
    quiet_transformers,
)
from explorer.core.errors import Cancelled, ExplorerError

COMMAND_MODULES: tuple[str, ...] = ("models", "analyze", "fewshot", "generate", "ablate")
"""Modules of ``explorer.cli`` that each register one sub-command."""

__all__ = ["EXIT_USAGE", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attention-explorer",
        description="Look inside transformer language models: tokens, positions, attention, "
        "next-token probabilities. Without a command, opens the desktop app.",
    )
    add_model_options(parser, default="smollm2")
    add_prompt_options(parser, required=False)
    parser.add_argument("--select-token", type=int, help="GUI: select this token index")
    parser.add_argument("--layer", type=int, help="GUI: select this layer")
    parser.add_argument("--head", type=int, help="GUI: select this head")
    parser.add_argument("--screenshot", type=Path,
                        help="GUI: run, apply the selection, save the window as PNG and exit")
    parser.add_argument("--session", type=Path, help="GUI: open a saved session file")
    parser.set_defaults(handler=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"explorer.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_transformers()
    args = build_parser().parse_args(argv)
    handler = args.handler
    if handler is None:
        from explorer.cli import gui

        handler = gui.run
    try:
        return handler(args)
    except ExplorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

"""Command line: the GUI by default, and the same analysis headless.

    attention-explorer                         open the window on the embedded SmolLM2
    attention-explorer models                  list embedded and locally cached models
    attention-explorer analyze --model M --prompt TEXT --out RESULT.npz [--top-k K] [--json]

Bad input prints ``error: …`` on stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from explorer.core.errors import Cancelled, ExplorerError, PromptError
from explorer.core.progress import TaskState

EXIT_USAGE = 2


def _add_model_options(parser: argparse.ArgumentParser, default: str | None = argparse.SUPPRESS) -> None:
    """--model and the consent flags. Sub-commands take SUPPRESS as default so that
    `attention-explorer --model M analyze …` and `… analyze --model M …` both work."""
    parser.add_argument("--model", default=default,
                        help="embedded alias (smollm2, minilm), model folder, .gguf file or cached hub id "
                        "(default: %(default)s)")
    flag_default = argparse.SUPPRESS if default is argparse.SUPPRESS else False
    parser.add_argument("--trust-remote-code", action="store_true", default=flag_default,
                        help="allow a model folder to run its own Python code")
    parser.add_argument("--allow-pickle", action="store_true", default=flag_default,
                        help="allow loading pickle (.bin) weights, which can run code")


def _add_prompt_options(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--prompt", help="the prompt text")
    group.add_argument("--prompt-file", type=Path, help="read the prompt from this UTF-8 file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attention-explorer",
        description="Look inside transformer language models: tokens, positions, attention, "
        "next-token probabilities. Without a command, opens the desktop app.",
    )
    _add_model_options(parser, default="smollm2")
    _add_prompt_options(parser, required=False)
    parser.add_argument("--select-token", type=int, help="GUI: select this token index")
    parser.add_argument("--layer", type=int, help="GUI: select this layer")
    parser.add_argument("--head", type=int, help="GUI: select this head")
    parser.add_argument("--screenshot", type=Path,
                        help="GUI: run, apply the selection, save the window as PNG and exit")
    parser.add_argument("--session", type=Path, help="GUI: open a saved session file")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    models = sub.add_parser("models", help="list embedded models and models in the local HF cache")
    models.add_argument("--json", action="store_true", help="print JSON")

    analyze = sub.add_parser("analyze", help="run one prompt and write a NumPy archive")
    _add_model_options(analyze)
    _add_prompt_options(analyze, required=True)
    analyze.add_argument("--out", type=Path, required=True, help="output .npz path")
    analyze.add_argument("--top-k", type=int, default=20, help="next-token candidates kept (default 20)")
    analyze.add_argument("--json", action="store_true", help="print the whole result as JSON")

    from explorer import cli_extra

    cli_extra.add_commands(sub, _add_model_options, _add_prompt_options)
    return parser


def read_prompt(args: argparse.Namespace) -> str | None:
    if getattr(args, "prompt_file", None) is not None:
        try:
            return args.prompt_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PromptError(f"Cannot read the prompt file '{args.prompt_file}': {exc}") from exc
    return getattr(args, "prompt", None)


def stderr_progress() -> TaskState:
    """Stage changes on stderr (only on a terminal, so scripts get clean output)."""
    if not sys.stderr.isatty():
        return TaskState()
    last = {"stage": ""}

    def report(fraction: float, message: str) -> None:
        stage = message.split(" (")[0]
        if stage != last["stage"]:
            last["stage"] = stage
            print(f"[{fraction * 100:3.0f}%] {stage}", file=sys.stderr)

    return TaskState(report=report)


def quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load(args: argparse.Namespace):  # -> LoadedModel
    from explorer.backend.loader import load_model

    return load_model(args.model, stderr_progress(), trust_remote_code=args.trust_remote_code,
                      allow_pickle=args.allow_pickle)


def cmd_models(args: argparse.Namespace) -> int:
    from explorer.backend.catalog import embedded_catalog, hub_cache_catalog

    embedded, cached = embedded_catalog(), hub_cache_catalog()
    if args.json:
        print(json.dumps({"embedded": embedded, "hub_cache": cached}, indent=2))
        return 0
    header = f"{'alias':<10} {'architecture':<18} {'layers':>6} {'heads':>5} {'kv':>3} {'context':>7}  positional"
    print("Embedded models:")
    print("  " + header)
    for row in embedded:
        if not row["installed"]:
            print(f"  {row['alias']:<10} not installed: {row['install']}")
            continue
        print(f"  {row['alias']:<10} {row.get('architecture', '?'):<18} {row.get('layers', '?'):>6} "
              f"{row.get('heads', '?'):>5} {row.get('kv_heads', '?'):>3} {row.get('context_length', '?'):>7}  "
              f"{row.get('positional', '?')}")
    print("\nLocal Hugging Face cache:")
    if not cached:
        print("  (none)")
    for row in cached:
        print(f"  {row['hub_id']:<40} {row.get('architecture', '?'):<18} layers={row.get('layers', '?')} "
              f"heads={row.get('heads', '?')} positional={row.get('positional', '?')}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from explorer.backend.engine import analyze
    from explorer.core.result_io import full_dict, save_npz, summary_dict

    prompt = read_prompt(args) or ""
    if not prompt:
        raise PromptError("The prompt is empty. Give --prompt TEXT or a non-empty --prompt-file.")
    if args.top_k < 1:
        raise ExplorerError("--top-k must be at least 1.")
    loaded = load(args)
    result = analyze(loaded, prompt, top_k=args.top_k)
    timings = dict(result.timings, load_s=loaded.timings.get("load_s", 0.0))
    from dataclasses import replace

    result = replace(result, timings=timings)
    try:
        save_npz(result, args.out)
    except OSError as exc:
        raise ExplorerError(f"Cannot write '{args.out}': {exc}") from exc
    print(json.dumps(full_dict(result) if args.json else summary_dict(result), ensure_ascii=False,
                     indent=None if args.json else 2))
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    from explorer.gui.app import run_gui

    return run_gui(args, read_prompt(args))


COMMANDS: dict[str | None, Callable[[argparse.Namespace], int]] = {
    "models": cmd_models,
    "analyze": cmd_analyze,
    None: cmd_gui,
}


def main(argv: Sequence[str] | None = None) -> int:
    quiet_transformers()
    parser = build_parser()
    args = parser.parse_args(argv)
    from explorer import cli_extra

    handler = COMMANDS.get(args.command) or cli_extra.COMMANDS[args.command]
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

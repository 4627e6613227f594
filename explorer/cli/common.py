"""What every command shares: model and prompt options, prompt reading, progress on stderr,
loading the model, and the exit code for bad input."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from explorer.core.errors import PromptError
from explorer.core.progress import TaskState

EXIT_USAGE = 2
"""Exit code for bad input (``error: …`` on stderr, no traceback)."""

MODEL_HELP = ("embedded alias (smollm2, minilm, gemma3), model folder, .gguf file or hub id "
              "(downloaded when online and not cached)")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("float32", "bfloat16", "float16")


def add_model_options(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """--model and the consent flags.

    The top-level parser gives the defaults (``default="smollm2"``); sub-commands leave
    their values unset (SUPPRESS), so `attention-explorer --model M analyze …` and
    `… analyze --model M …` both work. --device and --dtype default to None (auto,
    float32 headless; the GUI then keeps the Model menu's saved choice)."""
    top_level = default is not None
    parser.add_argument("--model", default=default if top_level else argparse.SUPPRESS,
                        help=f"{MODEL_HELP} (default: smollm2)")
    flag_default: Any = False if top_level else argparse.SUPPRESS
    parser.add_argument("--trust-remote-code", action="store_true", default=flag_default,
                        help="allow a model folder to run its own Python code")
    parser.add_argument("--allow-pickle", action="store_true", default=flag_default,
                        help="allow loading pickle (.bin) weights, which can run code")
    parser.add_argument("--device", choices=DEVICES, default=None if top_level else argparse.SUPPRESS,
                        help="where the weights live: auto (CUDA, then MPS, then CPU), cpu, cuda "
                        "or mps (default: auto)")
    parser.add_argument("--dtype", choices=DTYPES, default=None if top_level else argparse.SUPPRESS,
                        help="the weights' precision; probabilities and attention maps are "
                        "computed in float32 either way (default: float32)")


def add_prompt_options(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--prompt", help="the prompt text")
    group.add_argument("--prompt-file", type=Path, help="read the prompt from this UTF-8 file")


def read_prompt(args: argparse.Namespace) -> str | None:
    if getattr(args, "prompt_file", None) is not None:
        try:
            return args.prompt_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PromptError(f"Cannot read the prompt file '{args.prompt_file}': {exc}") from exc
    return getattr(args, "prompt", None)


def require_prompt(args: argparse.Namespace) -> str:
    """The prompt of a headless command; PromptError when it is empty."""
    prompt = read_prompt(args) or ""
    if not prompt.strip():
        raise PromptError("The prompt is empty. Give --prompt TEXT or a non-empty --prompt-file.")
    return prompt


def stderr_progress() -> TaskState:
    """Stage changes on stderr (only on a terminal, so scripts get clean output)."""
    if not sys.stderr.isatty():
        return TaskState()
    last: dict[str, Any] = {"stage": "", "inline": False, "at": 0.0}

    def report(fraction: float, message: str) -> None:
        if message.startswith("Downloading "):  # byte counts: one line, rewritten in place
            now = time.monotonic()
            if now - last["at"] >= 0.2 or fraction >= 1.0:
                last["at"], last["inline"] = now, True
                print(f"\r[{fraction * 100:3.0f}%] {message}\033[K", end="", file=sys.stderr,
                      flush=True)
            return
        stage = message.split(" (")[0]
        if stage != last["stage"]:
            if last["inline"]:
                print(file=sys.stderr)
                last["inline"] = False
            last["stage"] = stage
            print(f"[{fraction * 100:3.0f}%] {stage}", file=sys.stderr)

    return TaskState(report=report)


def quiet_transformers() -> None:
    """Quiet logs. Hub access is left as the user set it (HF_HUB_OFFLINE=1 keeps every
    command offline; otherwise a hub id that is not cached is downloaded)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load(args: argparse.Namespace) -> Any:
    """The model named by --model, loaded with the consent flags (a LoadedModel)."""
    from explorer.backend.loader import load_model

    return load_model(args.model, stderr_progress(), trust_remote_code=args.trust_remote_code,
                      allow_pickle=args.allow_pickle, device=args.device or "auto",
                      dtype=args.dtype or "float32")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as UTF-8 JSON, creating the folder; ExplorerError when it cannot."""
    import json

    from explorer.core.errors import ExplorerError

    try:
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    except OSError as exc:
        raise ExplorerError(f"Cannot write '{path}': {exc}") from exc

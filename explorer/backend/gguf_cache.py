"""Convert a .gguf once into a per-user safetensors cache keyed by the file's content hash.

transformers de-quantizes GGUF weights to float32 on every load (~30 s for
SmolLM2-135M); the cached folder loads in a few seconds. Weights stay float32
(float16 would move logits by up to 0.04).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from explorer.backend.fingerprint import file_sha256
from explorer.backend.paths import cache_root

COMPLETE_MARKER = "explorer-cache.json"
CACHE_FORMAT = 1


def cache_dir_for(gguf_path: Path, digest: str | None = None) -> Path:
    digest = digest or file_sha256(gguf_path)
    return cache_root() / "gguf" / f"{gguf_path.stem}-{digest[:16]}"


def is_complete(folder: Path) -> bool:
    marker = folder / COMPLETE_MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("format") == CACHE_FORMAT
    except (OSError, json.JSONDecodeError):
        return False


def save_converted(model: object, tokenizer: object, target: Path, source: Path, digest: str) -> None:
    """Write model + tokenizer to ``target`` atomically (temp folder, then rename).

    transformers refuses ``save_pretrained`` on a GGUF-loaded model although its
    weights are plain float32 layers; clearing the quantizer bookkeeping lets it save,
    and the reloaded copy gives identical logits.
    """
    model.hf_quantizer = None  # type: ignore[attr-defined]
    config = model.config  # type: ignore[attr-defined]
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        model.save_pretrained(staging)  # type: ignore[attr-defined]
        tokenizer.save_pretrained(staging)  # type: ignore[attr-defined]
        (staging / COMPLETE_MARKER).write_text(
            json.dumps({"format": CACHE_FORMAT, "source": str(source), "sha256": digest})
        )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)

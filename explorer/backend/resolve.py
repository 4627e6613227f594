"""Turn what the user typed (alias, folder, .gguf, hub id) into a concrete model source."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from explorer.backend import hub
from explorer.backend.embedded import EMBEDDED_MODELS, embedded_names
from explorer.core.errors import ModelNotFoundError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass(frozen=True)
class ModelSource:
    """A model that exists on this machine.

    kind: "gguf" (path is the .gguf file), "folder" (path is a transformers folder) or
    "hub" (a hub id to download first; path is where the download will be kept).
    """

    spec: str
    kind: str
    path: Path
    display_name: str
    digest: str | None = None  # the file's sha256 when already checked (assembled embedded model)


def _not_found(spec: str, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"{why}\nEmbedded models: {embedded_names()}. You can also give a local "
        "transformers folder, a .gguf file, or a Hugging Face hub id (downloaded when "
        "online, or already in the local cache). "
        "`attention-explorer models` lists what is available."
    )


def resolve_model(spec: str) -> ModelSource:
    """Find ``spec`` on disk. Raises ModelNotFoundError naming what is available."""
    spec = spec.strip()
    if not spec:
        raise _not_found(spec, "No model given.")
    embedded = EMBEDDED_MODELS.get(spec.lower())
    if embedded is not None:
        return ModelSource(spec, embedded.kind, embedded.prepare(), embedded.alias,
                           digest=embedded.verified_digest())

    path = Path(spec).expanduser()
    if path.exists():
        if path.is_file() and path.suffix.lower() == ".gguf":
            return ModelSource(spec, "gguf", path.resolve(), path.stem)
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise _not_found(spec, f"The folder '{spec}' has no config.json, so it is not a transformers model folder.")
            return ModelSource(spec, "folder", path.resolve(), path.resolve().name)
        raise _not_found(spec, f"'{spec}' is a file but not a .gguf model.")
    if spec.lower().endswith(".gguf") or "\\" in spec or spec.startswith((".", "/", "~")):
        raise _not_found(spec, f"No such file or folder: '{spec}'.")

    if _HUB_ID.match(spec):
        return _hub_source(spec)
    raise _not_found(spec, f"Unknown model '{spec}'.")


def _hub_source(repo_id: str) -> ModelSource:
    """The Hugging Face cache, then Attention Explorer's own downloads; else a download
    (online, owner/name ids only)."""
    cached = _cached_hub_snapshot(repo_id)
    if cached is not None:
        return ModelSource(repo_id, "folder", cached, repo_id)
    done = hub.downloaded(repo_id)
    if done is not None:
        return ModelSource(repo_id, "folder", done, repo_id)
    if "/" not in repo_id:
        raise _not_found(repo_id, (
            f"Unknown model '{repo_id}': not an embedded model, not a file or folder, "
            "and not in the local Hugging Face cache."))
    if hub.offline_mode():
        raise _not_found(repo_id, hub.offline_message(repo_id))
    return ModelSource(repo_id, "hub", hub.download_dir(repo_id), repo_id)


def _cached_hub_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with transformers
        raise _not_found(repo_id, f"Cannot look up hub id '{repo_id}': {exc}") from exc
    try:
        folder = snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    path = Path(folder)
    if not (path / "config.json").is_file():
        raise _not_found(repo_id, f"The cached hub model '{repo_id}' has no config.json.")
    return path

"""Content fingerprints of model files: the GGUF cache key and what a session records."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """sha256 of the file's bytes, hex; remembered per (path, size, mtime) in this process,
    so the GGUF cache lookup and the session fingerprint read a file once."""
    path = Path(path)
    stat = path.stat()
    return _hash_file(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _hash_file(path: str, size: int, mtime_ns: int, chunk_size: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def folder_fingerprint(folder: Path) -> str:
    """sha256 of a model folder's config.json and the names and sizes of its files
    (weights are too large to hash on every load)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for item in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(f"{item.name}:{item.stat().st_size}\n".encode())
    return digest.hexdigest()


def model_fingerprint(path: Path) -> str | None:
    """file_sha256 for a file, folder_fingerprint for a folder, None if it is gone."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    if path.is_dir():
        return folder_fingerprint(path)
    return None

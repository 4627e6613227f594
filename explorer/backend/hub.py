"""Download a hub model that is not cached: config, tokenizer and safetensors files only.

huggingface_hub gives the repository listing (``HfApi.model_info`` with file sizes and the
commit), the file URLs (``hf_hub_url``), the HTTP session with the user's token and its
error types; the transfer loop is ours so that it reports bytes, stops within one chunk
when cancelled and resumes exactly once after a server interruption (huggingface_hub's
own loop retries up to five times per stall, with a one-second sleep each).

Everything is written into a staging folder next to the final one and renamed into place
with a completion marker only when every file arrived, so a cancelled or interrupted
download (even a killed process) leaves nothing that a later load would trust.
Repositories with only pickle weights, or with their own code (``auto_map``), raise
UnsafeModelError before anything is fetched that would need that consent.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.backend import safety
from explorer.backend.paths import cache_root
from explorer.core.errors import Cancelled, DownloadError, ModelNotFoundError, UnsafeModelError
from explorer.core.progress import TaskState

ALLOW_PATTERNS: tuple[str, ...] = (
    "config.json", "generation_config.json", "*tokenizer*.json", "special_tokens_map.json",
    "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt", "*.model", "*.tiktoken",
    "chat_template.jinja", "chat_template.json", "*.safetensors", "*.safetensors.index.json",
)
"""Root-level files fetched: config, tokenizer and safetensors weights."""
PICKLE_PATTERNS: tuple[str, ...] = ("*.bin", "*.bin.index.json")
"""Fetched only with --allow-pickle, when the repository has no safetensors weights."""
CODE_PATTERNS: tuple[str, ...] = ("*.py",)
"""Fetched only with --trust-remote-code, when config.json has ``auto_map``."""
MARKER = "explorer-download.json"
INFO_TIMEOUT_S = 8.0
"""The repository listing must answer within this (offline and typo reports stay < 10 s)."""
CHUNK_BYTES = 1 << 20
ATTEMPTS = 2  # one retry after a server interruption
STALE_STAGING_S = 3600.0


def offline_mode() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, now or when huggingface_hub was imported."""
    from huggingface_hub import constants

    def true(value: str | None) -> bool:
        return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}

    return bool(constants.HF_HUB_OFFLINE) or true(os.environ.get("HF_HUB_OFFLINE")) or true(
        os.environ.get("TRANSFORMERS_OFFLINE"))


def endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def download_dir(repo_id: str) -> Path:
    """Where a downloaded repository lives: <cache>/hub/<owner>--<name>."""
    return cache_root() / "hub" / repo_id.replace("/", "--")


def downloaded(repo_id: str) -> Path | None:
    """The folder of a completed download of ``repo_id``, or None."""
    folder = download_dir(repo_id)
    marker = folder / MARKER
    try:
        data = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("repo_id") != repo_id or not (folder / "config.json").is_file():
        return None
    return folder


def downloaded_repos() -> list[tuple[str, Path]]:
    """(hub id, folder) of every completed download."""
    root = cache_root() / "hub"
    found = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            try:
                repo_id = json.loads((folder / MARKER).read_text()).get("repo_id")
            except (OSError, json.JSONDecodeError):
                continue
            if repo_id:
                found.append((repo_id, folder))
    return found


def offline_message(repo_id: str) -> str:
    return (f"The hub model '{repo_id}' is not in the local Hugging Face cache, and this "
            "machine cannot download it (offline).")


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int | None


@dataclass(frozen=True)
class Listing:
    """A repository at one commit: its root-level files with their sizes."""

    repo_id: str
    commit: str
    files: tuple[RemoteFile, ...]

    def matching(self, patterns: tuple[str, ...]) -> list[RemoteFile]:
        from huggingface_hub.utils import filter_repo_objects

        return list(filter_repo_objects(self.files, allow_patterns=list(patterns),
                                        key=lambda f: f.name))


def list_repository(repo_id: str) -> Listing:
    """The repository's files at its current commit.

    Raises ModelNotFoundError for an unknown id (a typo) or when the hub cannot be
    reached (offline message), DownloadError for gated or disabled repositories."""
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if offline_mode():
        raise ModelNotFoundError(offline_message(repo_id))
    try:
        info = HfApi(endpoint=endpoint()).model_info(repo_id, files_metadata=True,
                                                     timeout=INFO_TIMEOUT_S)
    except GatedRepoError as exc:
        raise DownloadError(
            f"The hub model '{repo_id}' is gated: accept its terms on its hub page, then log in "
            "(`hf auth login`) or set HF_TOKEN, and try again.") from exc
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise ModelNotFoundError(
            f"There is no model '{repo_id}' on the hub (check the spelling: owner/name, "
            "case-sensitive), or it is private and needs HF_TOKEN.") from exc
    except (OfflineModeIsEnabled, httpx2.TransportError, OSError) as exc:
        if isinstance(exc, HfHubHTTPError):
            raise DownloadError(f"The hub refused to list '{repo_id}': {_first_line(exc)}") from exc
        raise ModelNotFoundError(offline_message(repo_id) + f" ({_first_line(exc)})") from exc
    files = tuple(RemoteFile(s.rfilename, s.size) for s in (info.siblings or [])
                  if "/" not in s.rfilename)
    return Listing(repo_id, info.sha or "main", files)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def plan(listing: Listing, *, allow_pickle: bool) -> list[RemoteFile]:
    """The files to fetch; UnsafeModelError when only pickle weights exist (no consent)."""
    names = {f.name for f in listing.files}
    if "config.json" not in names:
        raise ModelNotFoundError(
            f"The hub repository '{listing.repo_id}' has no config.json: it is not a "
            "transformers model (a GGUF-only repository can be downloaded by hand and opened "
            "as a .gguf file).")
    wanted = listing.matching(ALLOW_PATTERNS)
    if any(f.name.endswith(".safetensors") for f in wanted):
        return wanted
    pickles = listing.matching(PICKLE_PATTERNS)
    if not pickles:
        raise ModelNotFoundError(
            f"The hub repository '{listing.repo_id}' has no weights that Attention Explorer can "
            "read (.safetensors or .bin at the top level).")
    if not allow_pickle:
        raise UnsafeModelError(
            f"The hub model '{listing.repo_id}' has only pickle weights (.bin). Unpickling can "
            "run arbitrary code. Use --allow-pickle only if you trust its author.",
            option="allow_pickle")
    return wanted + pickles


def download_model(repo_id: str, task: TaskState | None = None, *, trust_remote_code: bool = False,
                   allow_pickle: bool = False) -> Path:
    """Fetch ``repo_id`` into its download folder and return it (see the module doc).

    Progress: (bytes so far / total, "Downloading NAME: 12.3 / 50.0 MB"). Raises
    Cancelled, UnsafeModelError (consent needed), ModelNotFoundError (typo, offline) or
    DownloadError (interrupted twice, refused)."""
    task = task or TaskState()
    task.progress(0.0, f"Looking up {repo_id} on the hub")
    listing = list_repository(repo_id)
    files = plan(listing, allow_pickle=allow_pickle)
    final = download_dir(repo_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(final)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{final.name}-", dir=final.parent))
    try:
        first = [f for f in files if f.name == "config.json"]
        _fetch_all(listing, first, staging, task.sub(0.0, 0.01))
        config = safety.read_config(staging)
        if safety.needs_remote_code(config):
            if not trust_remote_code:
                raise UnsafeModelError(
                    f"The hub model '{repo_id}' ships its own Python code (config.json has "
                    "'auto_map'). Loading it runs that code. Use --trust-remote-code only if "
                    "you trust its author.", option="trust_remote_code")
            files += listing.matching(CODE_PATTERNS)
        rest = [f for f in files if f.name != "config.json"]
        _fetch_all(listing, rest, staging, task.sub(0.01, 1.0))
        (staging / MARKER).write_text(json.dumps(
            {"repo_id": repo_id, "commit": listing.commit, "endpoint": endpoint(),
             "files": sorted(f.name for f in files)}))
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final


def _remove_stale_staging(final: Path) -> None:
    """Staging folders of this repository left by a killed process (older than an hour)."""
    now = time.time()
    for old in final.parent.glob(f".staging-{final.name}-*"):
        try:
            if now - old.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _fetch_all(listing: Listing, files: list[RemoteFile], folder: Path, task: TaskState) -> None:
    total = sum(f.size or 0 for f in files) or 1
    done = 0
    for item in files:
        def report(received: int, name: str = item.name, before: int = done) -> None:
            task.progress(min(1.0, (before + received) / total),
                          f"Downloading {name}: {_megabytes(before + received)} / {_megabytes(total)}")

        report(0)
        fetch_file(listing.repo_id, listing.commit, item, folder / item.name, report,
                   task.is_cancel_requested)
        done += (folder / item.name).stat().st_size


def fetch_file(repo_id: str, commit: str, item: RemoteFile, target: Path,
               report: Callable[[int], None], is_cancel_requested: Callable[[], bool]) -> None:
    """Stream one file into ``target``; after a server interruption resume once with a
    Range request, then give up with DownloadError. ``report(bytes)`` after each chunk."""
    import httpx2
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(repo_id, item.name, revision=commit, endpoint=endpoint())
    timeout = httpx2.Timeout(INFO_TIMEOUT_S, read=60.0)
    problem: BaseException | None = None
    for _attempt in range(ATTEMPTS):
        have = target.stat().st_size if target.exists() else 0
        headers = build_hf_headers()
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with get_session().stream("GET", url, headers=headers, timeout=timeout,
                                      follow_redirects=True) as response:
                hf_raise_for_status(response)
                mode = "ab" if have and response.status_code == 206 else "wb"
                received = have if mode == "ab" else 0
                with target.open(mode) as handle:
                    for chunk in response.iter_bytes(CHUNK_BYTES):
                        if is_cancel_requested():
                            raise Cancelled("download cancelled")
                        handle.write(chunk)
                        received += len(chunk)
                        report(received)
            expected = item.size if item.size is not None else _content_length(response, have)
            if expected is None or received == expected:
                return
            problem = OSError(f"got {received} of {expected} bytes")
        except httpx2.TransportError as exc:  # reset, closed mid-body, timed out
            problem = exc
        except Exception as exc:
            if _is_http_error(exc):
                raise DownloadError(
                    f"The hub refused {item.name} of '{repo_id}': {_first_line(exc)}") from exc
            raise
    raise DownloadError(
        f"The download of {item.name} from '{repo_id}' was interrupted by the server twice "
        f"({_first_line(problem) if problem else 'incomplete'}). Nothing was kept; check the "
        "connection and try again.")


def _content_length(response: Any, have: int) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    return int(value) + (have if response.status_code == 206 else 0)


def _is_http_error(exc: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    return isinstance(exc, HfHubHTTPError)

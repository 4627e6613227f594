"""Errors a user can act on: shown as a message (GUI) or on stderr with exit code 2 (CLI)."""

from __future__ import annotations


class ExplorerError(Exception):
    """A problem with the user's input or environment, explained in plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ModelNotFoundError(ExplorerError):
    """The model name, path or hub id cannot be resolved to anything on this machine."""


class ModelLoadError(ExplorerError):
    """The model files exist but cannot be read (corrupt, truncated, unsupported)."""


class UnsafeModelError(ExplorerError):
    """Loading would run code (trust_remote_code) or unpickle weights without consent.

    ``option`` names the consent that would allow it: "trust_remote_code" or "allow_pickle".
    """

    def __init__(self, message: str, option: str = "") -> None:
        super().__init__(message)
        self.option = option


class PromptError(ExplorerError):
    """The prompt cannot be analysed (empty, longer than the context window)."""


class AttentionUnavailableError(ExplorerError):
    """The model's attention implementation does not return attention weights."""


class Cancelled(Exception):
    """Raised inside long work when the user asked to cancel it."""


class AttentionDataError(ExplorerError):
    """A result's attention arrays are missing or do not fit together (e.g. a lazy result
    file without ``queries``/``keys``, or shapes that disagree with ``attention_spec``)."""


class DeviceError(ExplorerError):
    """The requested device (cuda, mps) or dtype is not available here."""


class DeviceMemoryError(ExplorerError):
    """The device ran out of memory; the previously loaded model is still usable."""


class DownloadError(ExplorerError):
    """A hub download failed (interrupted twice, refused, or the id does not exist)."""


class ResultIncompleteError(ExplorerError):
    """A run shown early still lacks data the action needs (its next-token rows)."""

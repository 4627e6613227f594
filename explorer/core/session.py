"""Session files: a versioned JSON record of what is on screen, strictly validated.

A session never carries consent: ``trust_remote_code`` and pickle loading are not
stored, so opening a session asks for the same confirmation as loading by hand.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from explorer.core.atomic_write import write_text_atomically
from explorer.core.errors import ExplorerError
from explorer.core.selection import Selection

FORMAT_NAME = "attention-explorer-session"
FORMAT_VERSION = 1
MAX_SESSION_BYTES = 50_000_000
MAX_NUMBER = 2**31 - 1  # what a Qt spin box can hold
MAX_DEPTH = 8


class SessionError(ExplorerError):
    """A session file that cannot be opened (malformed, truncated, from a newer version)."""


@dataclass(frozen=True)
class ModelRef:
    """spec: alias, path or hub id as typed; fingerprint: the loaded model's
    ``ModelInfo.fingerprint`` (sha256 of its file, or of its folder's config and listing)."""

    spec: str
    fingerprint: str | None = None


@dataclass(frozen=True)
class Session:
    model: ModelRef
    prompt: str = ""
    selection: Selection = field(default_factory=Selection)
    comparison: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "model": asdict(self.model),
            "prompt": self.prompt,
            "selection": asdict(self.selection),
            "comparison": self.comparison,
            "generation": self.generation,
        }
        return json.dumps(data, indent=2, ensure_ascii=False)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise SessionError(f"Not a valid session file: {message}.")


def _selection(data: Any) -> Selection:
    _expect(isinstance(data, dict), "'selection' must be an object")
    defaults = asdict(Selection())
    values: dict[str, Any] = {}
    for key, default in defaults.items():
        value = data.get(key, default)
        if isinstance(default, bool):
            _expect(isinstance(value, bool), f"selection.{key} must be true or false")
        else:
            _expect(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                    f"selection.{key} must be a non-negative integer")
        values[key] = value
    return Selection(**values)


def _check_values(value: Any, where: str, depth: int = 0) -> None:
    """Extras hold only plain JSON: finite numbers a spin box can take, bounded nesting."""
    _expect(depth <= MAX_DEPTH, f"'{where}' is nested too deeply")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        _expect(math.isfinite(value) and abs(value) <= MAX_NUMBER, f"'{where}' holds an out-of-range number")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_values(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(item, f"{where}.{key}", depth + 1)


def _non_negative_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


EXTRA_RULES: dict[str, dict[str, tuple[Any, str]]] = {
    "comparison": {
        "layer": (_non_negative_int, "a non-negative integer"),
        "head": (_non_negative_int, "a non-negative integer"),
        "query_token": (_non_negative_int, "a non-negative integer"),
        "seed": (_non_negative_int, "a non-negative integer"),
        "difference": (lambda v: isinstance(v, list) and all(_non_negative_int(i) for i in v),
                       "a list of column numbers"),
        "columns": (lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v), "a list of texts"),
    },
    "generation": {
        "max_new_tokens": (lambda v: _non_negative_int(v) and v >= 1, "a positive integer"),
        "top_k": (_non_negative_int, "a non-negative integer"),
        "seed": (lambda v: v is None or _non_negative_int(v), "a non-negative integer"),
        "temperature": (lambda v: _number(v) and v >= 0, "a number >= 0"),
        "top_p": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
        "repetition_penalty": (lambda v: _number(v) and v > 0, "a number > 0"),
        "prompt": (lambda v: isinstance(v, str), "a string"),
        "branches": (lambda v: isinstance(v, list) and all(isinstance(b, dict) for b in v),
                     "a list of branch recipes (see explorer.core.replay)"),
        "current_branch": (lambda v: v is None or _non_negative_int(v), "a branch number"),
    },
}
"""Values the comparison view and the playground read back; anything else is ignored."""


def _check_extras(section: str, data: dict[str, Any]) -> None:
    _check_values(data, section)
    for key, (valid, what) in EXTRA_RULES[section].items():
        if key in data:
            _expect(valid(data[key]), f"'{section}.{key}' must be {what}")


def _no_constants(name: str) -> Any:
    raise SessionError(f"Not a valid session file: {name} is not a number JSON allows.")


def parse_session(text: str) -> Session:
    """Validate and read a session; raises SessionError with the reason."""
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise SessionError(f"Not a valid session file: it is not complete JSON ({exc.msg} at "
                           f"line {exc.lineno}).") from exc
    _expect(isinstance(data, dict), "the top level must be an object")
    _expect(data.get("format") == FORMAT_NAME, f"'format' must be {FORMAT_NAME!r}")
    version = data.get("version")
    _expect(isinstance(version, int) and not isinstance(version, bool), "'version' must be an integer")
    if version > FORMAT_VERSION:
        raise SessionError(f"This session was saved by a newer Attention Explorer (format version "
                           f"{version}; this one reads up to {FORMAT_VERSION}). Please update.")
    _expect(version >= 1, "'version' must be at least 1")
    model = data.get("model")
    _expect(isinstance(model, dict) and isinstance(model.get("spec"), str) and model["spec"].strip(),
            "'model.spec' must be a non-empty string")
    fp = model.get("fingerprint")
    _expect(fp is None or isinstance(fp, str), "'model.fingerprint' must be a string or null")
    prompt = data.get("prompt", "")
    _expect(isinstance(prompt, str), "'prompt' must be a string")
    comparison = data.get("comparison", {})
    generation = data.get("generation", {})
    _expect(isinstance(comparison, dict), "'comparison' must be an object")
    _expect(isinstance(generation, dict), "'generation' must be an object")
    _check_extras("comparison", comparison)
    _check_extras("generation", generation)
    return Session(ModelRef(model["spec"], fp), prompt, _selection(data.get("selection", {})),
                   comparison, generation)


def read_session(path: str | Path) -> Session:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_SESSION_BYTES:
            raise SessionError(f"'{path}' is too large to be a session file.")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SessionError(f"No such session file: '{path}'.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionError(f"Cannot read the session file '{path}': {exc}") from exc
    return parse_session(text)


def write_session(session: Session, path: str | Path) -> Path:
    """Write atomically (``write_text_atomically``) so a crash never leaves half a session."""
    path = Path(path)
    write_text_atomically(path, session.to_json())
    return path

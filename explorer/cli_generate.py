"""The `generate` sub-command (not built yet)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def register(sub: Any, add_model_options: Callable, add_prompt_options: Callable) -> dict[str, Callable]:
    return {}

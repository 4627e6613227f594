"""Feature hook for the playground view (not built yet)."""

from __future__ import annotations

from typing import Any


def install(window: Any) -> None:
    return None

"""Sub-commands added by later features (few-shot evaluation, generation)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_commands(sub: Any, add_model_options: Callable, add_prompt_options: Callable) -> None:
    return None

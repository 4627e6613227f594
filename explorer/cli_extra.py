"""Sub-commands that live in their own modules (few-shot evaluation, generation).

Each module exposes ``register(sub, add_model_options, add_prompt_options)`` which
adds its sub-parser and returns {command name: handler}.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_commands(sub: Any, add_model_options: Callable, add_prompt_options: Callable) -> None:
    from explorer import cli_fewshot, cli_generate

    for module in (cli_fewshot, cli_generate):
        COMMANDS.update(module.register(sub, add_model_options, add_prompt_options))

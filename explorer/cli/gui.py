"""No command: the desktop app (with --screenshot, a headless capture)."""

from __future__ import annotations

import argparse

from explorer.cli.common import read_prompt


def run(args: argparse.Namespace) -> int:
    from explorer.gui.app import run_gui

    return run_gui(args, read_prompt(args))

"""`--help` works for the program and every command, in a fresh interpreter (as a user runs it)."""

import subprocess
import sys

import pytest

from explorer.cli import COMMAND_MODULES


@pytest.mark.parametrize("command", [None, *COMMAND_MODULES])
def test_help_prints_usage_without_a_traceback(command):
    argv = [sys.executable, "-m", "explorer"] + ([command] if command else []) + ["--help"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith("usage: attention-explorer")
    if command:
        assert f"attention-explorer {command}" in done.stdout


def test_no_command_module_imports_another():
    """explorer/cli is a package of independent command modules (no import cycle)."""
    import ast
    from pathlib import Path

    import explorer.cli

    folder = Path(explorer.cli.__file__).parent
    for name in COMMAND_MODULES:
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
        others = {f"explorer.cli.{other}" for other in COMMAND_MODULES if other != name}
        assert not imported & (others | {"explorer.cli"}), name

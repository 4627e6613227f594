"""The Hypothesis profile CI runs with is derandomised (tests/conftest.py registers it)."""

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
PROBE = ("import tests.conftest\nfrom hypothesis import settings\n"
         "print(settings.default.derandomize, settings.default.database)")


def loaded_profile(**env: str) -> str:
    """What a fresh process that reads tests/conftest.py runs with, under ``env``."""
    environment = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**environment, **env},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_ci_profile_is_derandomised_without_a_database():
    ci = settings.get_profile("ci")
    assert ci.derandomize is True and ci.database is None and ci.deadline is None


def test_ci_environment_loads_the_ci_profile():
    assert loaded_profile(CI="true") == "True None"
    assert loaded_profile().startswith("False")  # developers explore new examples
    assert loaded_profile(HYPOTHESIS_PROFILE="ci") == "True None"

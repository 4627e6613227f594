"""The installable wheel: `pip wheel .` holds the shipped sentiment set and the template, and
an installed (not editable) copy runs `fewshot` with its defaults, `analyze` and the
screenshot capture, offline, from a folder outside the source checkout.

The fresh virtual environment reuses the project environment's packages through a
``.pth`` file (torch, transformers, Qt and the model wheels are not reinstalled), so the
whole check costs the wheel build (~3 s), the venv (~1 s) and the three commands. Skip it
locally with ``-m "not wheel"``.
"""

from __future__ import annotations

import csv
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.wheel
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("explorer/resources/sentiment/reviews.csv", "explorer/resources/sentiment/demos.csv",
           "explorer/resources/sentiment/course.template")


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def _setuptools_new_enough() -> bool:
    """pyproject.toml asks for setuptools>=77; build without isolation when it is here."""
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    """(venv bin folder, environment, a working folder outside the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # build from a copy: the checkout gets no build/ or egg-info
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "explorer", source / "explorer",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    isolation = [] if _setuptools_new_enough() else ["--use-pep517"]  # else fetch setuptools
    run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
         *(isolation or ["--no-build-isolation"]), "-q", "-w", str(work / "dist")], cwd=work)
    wheel = next((work / "dist").glob("attention_explorer-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(SHIPPED) <= names and "explorer/py.typed" in names
    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work)
    target = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    shared = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (target / "project-packages.pth").write_text("\n".join(shared) + "\n")
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], cwd=work)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(HF_HUB_OFFLINE="1", QT_QPA_PLATFORM="offscreen", TOKENIZERS_PARALLELISM="false")
    outside = work / "run"
    outside.mkdir()
    where = run([str(python), "-c", "import explorer; print(explorer.__file__)"], outside, env)
    assert where.stdout.strip().startswith(str(target)), where.stdout  # not the checkout
    return venv / "bin", env, outside


def test_wheel_holds_the_resources_and_fewshot_runs_with_its_defaults(installed):
    """Default model, shipped reviews, demonstrations, template, labels and seed. The
    default shots (0,1,2,4,8: ~2 min on SmolLM2) run with WHEEL_FULL_FEWSHOT=1; CI runs
    shots 0 and 1, which read every shipped file, in ~25 s."""
    bin_dir, env, cwd = installed
    full = os.environ.get("WHEEL_FULL_FEWSHOT") == "1"
    shots = [] if full else ["--shots", "0,1"]
    run([str(bin_dir / "attention-explorer"), "fewshot", *shots, "--out", "fewshot.csv"], cwd, env)
    with (cwd / "fewshot.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["shots"]) for r in rows] == ([0, 1, 2, 4, 8] if full else [0, 1])
    assert all(int(r["n"]) == 64 for r in rows)  # the 64 shipped reviews
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)


def test_installed_analyze_and_screenshot(installed):
    bin_dir, env, cwd = installed
    run([str(bin_dir / "attention-explorer"), "analyze", "--prompt", "I loved this movie!",
         "--out", "run.npz"], cwd, env)
    with np.load(cwd / "run.npz") as data:
        assert data["tokens"].tolist()[:2] == ["I", "Ġloved"]
        assert data["attentions"].shape[:2] == (30, 9)
    run([str(bin_dir / "attention-explorer"), "--prompt", "I loved this movie!",
         "--screenshot", "shot.png"], cwd, env)
    from PySide6.QtGui import QImage

    image = QImage(str(cwd / "shot.png"))
    assert image.width() > 800 and image.height() > 500
    colours = {image.pixel(x, y) for x in range(0, image.width(), 37)
               for y in range(0, image.height(), 37)}
    assert len(colours) > 20  # drawn panels, not a blank window

"""PySide6's import hook answers from the module file and keeps no source in linecache."""

from __future__ import annotations

import importlib
import linecache
import sys
from pathlib import Path
from types import ModuleType

import explorer.gui  # noqa: F401  (lightens the hook on import)
from explorer.gui.import_hook import lighten


def _import_fresh(tmp_path: Path, name: str, text: str) -> ModuleType:
    (tmp_path / f"{name}.py").write_text(text, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        importlib.invalidate_caches()
        return __import__(name)  # an import statement's path: the hook (import_module skips it)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_an_imported_module_leaves_no_lines_in_linecache(tmp_path):
    module = _import_fresh(tmp_path, "ae_plain_module", "VALUE = 1\n" * 200)
    assert module.VALUE == 1
    assert module.__file__ not in linecache.cache


def test_the_hook_still_tells_modules_that_use_pyside_from_others(tmp_path):
    feature = sys.modules["shibokensupport.feature"]
    _import_fresh(tmp_path, "ae_uses_qt", "import PySide6.QtCore\nNAME = 'PySide6'\n")
    _import_fresh(tmp_path, "ae_no_qt", "NAME = 'plain'\n")
    assert feature.pyside_feature_dict["ae_uses_qt"] == 0  # switchable: it uses PySide6
    assert feature.pyside_feature_dict["ae_no_qt"] == -1  # ignored
    assert feature._mod_uses_pyside.reads_file
    assert lighten() is False  # swapped once, on the first import of explorer.gui


def _module(name: str, path: Path | None) -> ModuleType:
    module = ModuleType(name)
    module.__file__ = None if path is None else str(path)
    return module


def test_modules_without_a_readable_source_file_keep_shibokens_answer(tmp_path, monkeypatch):
    feature = ModuleType("shibokensupport.feature")
    feature._mod_uses_pyside = lambda module: f"shiboken on {module.__name__}"
    monkeypatch.setitem(sys.modules, "shibokensupport.feature", feature)
    assert lighten() is True
    check = feature._mod_uses_pyside
    latin = tmp_path / "latin.py"
    latin.write_bytes("# caf\xe9\nimport PySide6\n".encode("latin-1"))
    plain = tmp_path / "plain.py"
    plain.write_text("X = 1\n", encoding="utf-8")
    assert check(_module("latin", latin)) is True  # read as bytes: no decoding needed
    assert check(_module("plain", plain)) is False
    assert check(_module("gone", tmp_path / "gone.py")) == "shiboken on gone"
    assert check(_module("namespace", None)) == "shiboken on namespace"
    assert check(_module("compiled", tmp_path / "x.cpython-311.so")) == "shiboken on compiled"


def test_a_pyside_without_the_check_is_left_alone(monkeypatch):
    monkeypatch.setitem(sys.modules, "shibokensupport.feature", ModuleType("shibokensupport.feature"))
    assert lighten() is False
    monkeypatch.delitem(sys.modules, "shibokensupport.feature")
    assert lighten() is False

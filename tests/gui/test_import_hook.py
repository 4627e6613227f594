"""PySide6's import hook answers from the module file and keeps no source in linecache."""

from __future__ import annotations

import importlib
import linecache
import sys

import explorer.gui  # noqa: F401  (lightens the hook on import)
from explorer.gui.import_hook import lighten


def _import_fresh(tmp_path, name: str, text: str):
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
    assert lighten() is False  # swapped once, on the first import of explorer.gui

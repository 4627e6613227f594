"""Keep PySide6's import hook from holding the source of every module in memory.

shiboken6 replaces ``__import__``. After each import of a Python module it asks whether the
module's source mentions "PySide6" (for its ``__feature__`` switches) through
``inspect.getsource``, and that keeps every line of every imported module in
``linecache``. Torch and transformers imported after PySide6, and a model loaded, kept
60 MB of source text alive in the window's process. Measured with SmolLM2: 735 MB added by
the load against 672 MB without PySide6, and clearing ``linecache`` afterwards gave none of
it back (the lines sat among objects that stay). ``lighten`` answers the same question from
the module file's bytes, which nothing keeps.
"""

from __future__ import annotations

import sys
from types import ModuleType

MARKER = b"PySide6"


def lighten() -> bool:
    """Swap shiboken's source check for one that reads the file; False when this PySide6
    has no such check (or it is swapped already)."""
    import PySide6  # noqa: F401  (installs the hook and its feature module)

    feature = sys.modules.get("shibokensupport.feature")
    original = getattr(feature, "_mod_uses_pyside", None)
    if original is None or getattr(original, "reads_file", False):
        return False

    def uses_pyside(module: ModuleType) -> bool:
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py"):
            return original(module)  # compiled, built in or sourceless: its own answer
        try:
            with open(path, "rb") as source:
                return MARKER in source.read()
        except OSError:
            return original(module)

    uses_pyside.reads_file = True  # type: ignore[attr-defined]
    feature._mod_uses_pyside = uses_pyside  # type: ignore[union-attr]
    return True

"""Keep PySide6's import hook from holding the source of every module in memory.

shiboken6 replaces ``__import__``. After each import of a Python module it asks whether the
module's source mentions "PySide6" (for its ``__feature__`` switches) through
``inspect.getsource``, and that keeps every line of every imported module in
``linecache``: about 60 MB of source text once torch and transformers are imported and a
model is loaded. Measured with SmolLM2 in a thread: loading it added 735 MB after
``import shiboken6`` and 672 MB without; the process with PySide6's widgets imported
ended at 1,058 MB, and at 943 MB with this module's check. Clearing ``linecache``
afterwards gave 9 MB back (the lines sat among objects that stay). ``lighten`` answers the
same question from the module file's bytes, which nothing keeps. Modules without a ``.py``
file (compiled, built in, namespace packages, zip imports) keep shiboken's own answer.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

MARKER = b"PySide6"


def lighten() -> bool:
    """Swap shiboken's source check for one that reads the file; False when this PySide6
    has no such check (or it is swapped already)."""
    import PySide6  # noqa: F401  (installs the hook and its feature module)

    feature = sys.modules.get("shibokensupport.feature")
    original = getattr(feature, "_mod_uses_pyside", None)
    if original is None or getattr(original, "reads_file", False):
        return False

    def uses_pyside(module: ModuleType, *args: Any, **kwargs: Any) -> bool:
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.endswith(".py"):
            try:
                with open(path, "rb") as source:
                    return MARKER in source.read()
            except Exception:  # noqa: BLE001, S110 - any failure: shiboken's own answer
                pass
        return original(module, *args, **kwargs)

    uses_pyside.reads_file = True  # type: ignore[attr-defined]
    feature._mod_uses_pyside = uses_pyside  # type: ignore[union-attr]
    return True

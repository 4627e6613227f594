"""The only layer that imports torch and transformers (lazily, inside functions).

Public API for notebooks and the GUI worker::

    from explorer.backend import load_model, analyze
    model = load_model("smollm2")            # or "minilm", a folder, a .gguf, a cached hub id
    result = analyze(model, "Hello there")   # explorer.core.types.RunResult
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from explorer.backend.engine import analyze
    from explorer.backend.loader import LoadedModel, load_model

__all__ = ["LoadedModel", "analyze", "load_model"]


def __getattr__(name: str) -> Any:
    if name == "analyze":
        from explorer.backend.engine import analyze

        return analyze
    if name in ("load_model", "LoadedModel"):
        from explorer.backend import loader

        return getattr(loader, name)
    raise AttributeError(name)

"""The key/value cache across transformers versions: 5.2x renamed ``past_key_values``
(argument and output) to ``cache``; the old name warns and is due for removal."""

from __future__ import annotations

import inspect
from typing import Any


def cache_argument(model: Any) -> str:
    """The forward() keyword that takes a key/value cache for ``model``."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def returned_cache(outputs: Any) -> Any:
    """The key/value cache a forward returned (None when it returned none)."""
    cache = getattr(outputs, "cache", None)
    return cache if cache is not None else getattr(outputs, "past_key_values", None)

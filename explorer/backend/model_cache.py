"""Extra models kept loaded in the worker next to the main one (comparison columns that
use their own model). The main model stays the controller's; this cache never touches it.

``ModelCache.get(spec)`` loads a model the first time and returns the loaded one after;
at most ``capacity`` extra models stay (the least recently used one is dropped first),
so with the default capacity of one, two models are in memory: the main one and one
other. ``model_bytes`` is the memory a loaded model's weights take.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from explorer.backend.loader import LoadedModel
from explorer.core.progress import TaskState

LoadFunction = Callable[..., Any]
"""``load(spec, task)`` -> LoadedModel (``loader.load_model`` or a test's loader)."""


def model_bytes(loaded: LoadedModel) -> int:
    """Bytes held by the model's parameters and buffers (each tensor counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*loaded.model.parameters(), *loaded.model.buffers()]:
        if tensor.data_ptr() in seen:
            continue  # tied weights (e.g. the input embedding and the output head)
        seen.add(tensor.data_ptr())
        total += tensor.numel() * tensor.element_size()
    return total


@dataclass(frozen=True)
class ModelMemory:
    """One loaded model and the memory its weights use."""

    spec: str
    name: str
    bytes: int
    main: bool = False

    def describe(self) -> str:
        """e.g. 'SmolLM2-135M-Instruct (main) 513 MB' (one decimal below 10 MB)."""
        role = " (main)" if self.main else ""
        megabytes = self.bytes / 2**20
        return f"{self.name}{role} {megabytes:,.1f} MB" if megabytes < 10 else \
            f"{self.name}{role} {megabytes:,.0f} MB"


class ModelCache:
    """Loaded extra models by spec; thread-safe, used from the worker thread."""

    def __init__(self, load: LoadFunction | None = None, capacity: int = 1) -> None:
        self._load = load or _default_load
        self.capacity = capacity
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec: str, task: TaskState | None = None) -> LoadedModel:
        """The model for ``spec``, loading it (and dropping the least recently used one
        beyond ``capacity``) when it is not loaded yet."""
        with self._lock:
            if spec in self._models:
                self._models.move_to_end(spec)
                return self._models[spec]
            while len(self._models) >= self.capacity:
                self._models.popitem(last=False)  # free memory before loading the next
        loaded = self._load(spec, task or TaskState())
        with self._lock:
            self._models[spec] = loaded
        return loaded

    def specs(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def memory(self, main: LoadedModel | None = None) -> list[ModelMemory]:
        """The main model (if given) and every cached one with the bytes its weights use."""
        with self._lock:
            cached = list(self._models.items())
        rows = [] if main is None else [ModelMemory(main.spec, main.info.name, model_bytes(main), True)]
        return rows + [ModelMemory(spec, m.info.name, model_bytes(m)) for spec, m in cached]

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


def _default_load(spec: str, task: TaskState) -> LoadedModel:
    from explorer.backend.loader import load_model

    return load_model(spec, task)

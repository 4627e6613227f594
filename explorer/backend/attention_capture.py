"""Copy each layer's attention weights into one float16 buffer while the forward runs.

transformers collects every layer's float32 weights when asked for
``output_attentions`` and keeps them all until the forward ends (1.1 GB for SmolLM2
at 1024 tokens). Hooks on the attention modules (the same modules transformers records
from, ``_can_record_outputs["attentions"]``) copy each layer into
float16[layer, head, query, key] as soon as it is computed, so the float32 weights of a
layer are freed when the next layer runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from explorer.core.errors import AttentionUnavailableError, Cancelled


def _recorder(model: Any) -> tuple[type, int, str | None] | None:
    spec = (getattr(model, "_can_record_outputs", None) or {}).get("attentions")
    if spec is None:
        return None
    if isinstance(spec, type):
        return spec, 1, None
    target = getattr(spec, "target_class", None)
    if target is None:
        return None
    return target, int(getattr(spec, "index", 1)), getattr(spec, "layer_name", None)


def attention_modules(model: Any, layers: int) -> tuple[list[Any], int] | None:
    """The ``layers`` attention modules transformers records weights from, in order, and
    the index of the weights in their output tuple (filled under eager attention); None
    when the model does not declare them or the count differs."""
    found = _recorder(model)
    if found is None:
        return None
    target, index, layer_name = found
    modules = [m for name, m in model.named_modules()
               if isinstance(m, target) and (not layer_name or name.endswith(layer_name))]
    return (modules, index) if len(modules) == layers else None


class AttentionCapture:
    """Forward hooks filling ``buffer`` float16[L, H, T, T], one layer per call, in order."""

    def __init__(self, modules: list[Any], index: int, buffer: np.ndarray,
                 is_cancel_requested: Callable[[], bool] | None = None) -> None:
        self.buffer = buffer
        self.index = index
        self.is_cancel_requested = is_cancel_requested or (lambda: False)
        self.filled = 0
        self.missing = False
        self._handles = [m.register_forward_hook(self._hook) for m in modules]

    @classmethod
    def attach(cls, model: Any, layers: int, heads: int, tokens: int,
               is_cancel_requested: Callable[[], bool] | None = None) -> AttentionCapture | None:
        """Hooks for ``model``, or None when its attention modules cannot be found
        (the caller then asks transformers for ``output_attentions``). After each layer
        the hook checks ``is_cancel_requested`` and raises Cancelled, so a long forward
        stops within one layer."""
        found = attention_modules(model, layers)
        if found is None:
            return None
        modules, index = found
        return cls(modules, index, np.empty((layers, heads, tokens, tokens), dtype=np.float16),
                   is_cancel_requested)

    def _hook(self, module: Any, args: Any, output: Any) -> None:
        import torch

        weights = output[self.index] if isinstance(output, tuple) and len(output) > self.index else None
        if weights is None or self.filled >= len(self.buffer) or weights.shape[-1] != self.buffer.shape[-1]:
            self.missing = True
            return
        torch.from_numpy(self.buffer[self.filled]).copy_(weights[0])
        self.filled += 1
        if self.is_cancel_requested():
            raise Cancelled("cancelled during the forward pass")

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def result(self, name: str) -> np.ndarray:
        if self.missing or self.filled != len(self.buffer):
            raise AttentionUnavailableError(
                f"The model '{name}' returned no attention weights; it needs eager attention.")
        return self.buffer

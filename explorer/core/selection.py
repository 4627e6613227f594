"""The one selection every linked panel draws from."""

from __future__ import annotations

from dataclasses import dataclass, replace

from explorer.core.types import ModelInfo


@dataclass(frozen=True)
class Selection:
    """What the user is looking at.

    token: query position (index into the run's tokens)
    layer, head: the attention head shown large
    head_mean: show the mean over the layer's heads instead of one head
    hide_first: hide key 0 (attention sink / BOS) and renormalise rows
    textbook_positions: show the sinusoid of Vaswani et al. instead of the model's scheme
    """

    token: int = 0
    layer: int = 0
    head: int = 0
    head_mean: bool = False
    hide_first: bool = False
    textbook_positions: bool = False

    def clamped(self, num_tokens: int, info: ModelInfo | None) -> Selection:
        """The same selection, moved inside the bounds of a run and a model."""
        token = min(max(self.token, 0), max(num_tokens - 1, 0))
        layer, head = self.layer, self.head
        if info is not None:
            layer = min(max(layer, 0), info.layers - 1)
            head = min(max(head, 0), info.heads - 1)
        return replace(self, token=token, layer=layer, head=head)

    def with_(self, **changes: object) -> Selection:
        return replace(self, **changes)  # type: ignore[arg-type]

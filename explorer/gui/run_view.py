"""What the worker hands the GUI for one run: the engine's result plus images precomputed
off the GUI thread (so a new result never blocks the window)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.core.thumbnails import mosaic
from explorer.core.types import RunResult

THUMBNAIL_CELL = 40
THUMBNAIL_GAP = 2
GROUP_GAP = 4


@dataclass(frozen=True)
class RunView:
    """result: the engine's RunResult; mosaics: float32 grid images keyed by hide_first."""

    request_id: int
    result: RunResult
    mosaics: dict[bool, np.ndarray]
    cell: int
    group_size: int

    @classmethod
    def build(cls, request_id: int, result: RunResult) -> RunView:
        group = result.model_info.group_size
        images = {}
        for hide_first in (False, True):
            images[hide_first], cell = mosaic(result, THUMBNAIL_CELL, THUMBNAIL_GAP,
                                              GROUP_GAP, group, hide_first=hide_first)
        return cls(request_id, result, images, cell, group)

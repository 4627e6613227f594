"""sdpa for a sliding-window layer, a block of queries at a time against the keys it sees.

transformers hands a sliding-window layer a [T, T] boolean mask. torch's CPU sdpa turns a
boolean mask into a float one of the same size, and with a mask it multiplies every query
by every key: for Gemma 3 at 32,768 tokens, 4.3 GB per layer call and a square of work
where the layer sees a band. Here the queries go BLOCK rows at a time, each block with only
the keys its rows can see (``core.attention.visible_span``) and that block's slice of the
model's own mask. ``mask_is_window`` first checks, once per mask, that the mask is exactly
the spec's (every key outside those spans hidden), so every row takes the softmax over the
same keys with the same mask as in the whole call; the outputs differ from it by float
rounding only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from explorer.core.attention import LayerSpec, visible_keys, visible_span

BLOCK = 512
"""Query rows per sdpa call (with a 512-token window: 512 × 1,023 keys at most)."""


def bandable(spec: LayerSpec) -> bool:
    """A sliding-window layer with nothing but its mask and scale between its scores and
    the softmax (no soft-cap, no sinks): what the banded kernel can run."""
    return spec.sliding_window is not None and spec.softcap is None and spec.sinks is None


def _blocks(spec: LayerSpec, tokens: int, num_keys: int, block: int,
            ) -> Iterator[tuple[int, int, int, int]]:
    """(start, end, lo, hi): query rows [start, end) and the keys [lo, hi) they can see."""
    if not bandable(spec):
        raise ValueError("banded attention takes sliding-window layers without soft-cap or sinks")
    for start in range(0, tokens, block):
        end = min(tokens, start + block)
        yield (start, end, *visible_span(spec, start, end - 1, num_keys))


def mask_is_window(mask: Any, spec: LayerSpec, block: int = BLOCK) -> bool:
    """Whether the model's ``mask`` (bool, or additive float [.., T, K]) is exactly the
    layer's causal / sliding-window mask under ``spec``: every key outside each block's
    span hidden, and inside it visible where the spec says (0 added when additive) and
    hidden elsewhere. One pass over the mask; then the banded forward is the model's, and
    maps rebuilt from the spec are right in every row, not only in the rows checked."""
    import torch

    tokens, num_keys = mask.shape[-2], mask.shape[-1]
    boolean = mask.dtype == torch.bool

    def shown(part: Any) -> Any:
        return part if boolean else part > torch.finfo(mask.dtype).min / 2

    for start, end, lo, hi in _blocks(spec, tokens, num_keys, block):
        if any(bool(shown(part).any()) for part in (mask[..., start:end, :lo],
                                                     mask[..., start:end, hi:])
               if part.numel()):
            return False
        inside = mask[..., start:end, lo:hi]
        if not torch.equal(shown(inside).expand(*inside.shape[:-2], end - start, hi - lo),
                           _window(spec, start, end, lo, hi, mask.device)
                           .expand(*inside.shape[:-2], end - start, hi - lo)):
            return False
        if not boolean and bool(inside[shown(inside)].any()):  # a bias on a visible key
            return False
    return True


def _window(spec: LayerSpec, start: int, end: int, lo: int, hi: int, device: Any) -> Any:
    """bool[end - start, hi - lo]: which keys lo..hi-1 query rows start..end-1 see."""
    import torch

    visible = visible_keys(spec, np.arange(start, end)[:, None], np.arange(lo, hi)[None, :])
    return torch.from_numpy(visible).to(device)


def banded_sdpa(query: Any, key: Any, value: Any, spec: LayerSpec, mask: Any,
                block: int = BLOCK) -> Any:
    """Attention of a layer with a sliding window, as transformers' sdpa function returns it.

    query: float[1, H, T, D]; key, value: float[1, KV, T, D] (query head h reads key/value
    head ``spec.kv_map[h]``); mask: the model's bool or additive [1, 1 or H, T, T] mask,
    one ``mask_is_window`` accepted. Returns float[1, T, H, Dv] (contiguous)."""
    import torch
    import torch.nn.functional as F

    tokens, num_keys = query.shape[2], key.shape[2]
    kv_index = torch.tensor(spec.kv_map, dtype=torch.long, device=key.device)
    out = query.new_empty((query.shape[0], tokens, query.shape[1], value.shape[3]))
    for start, end, lo, hi in _blocks(spec, tokens, num_keys, block):
        visible = mask[..., start:end, lo:hi]
        keys = key[:, :, lo:hi].index_select(1, kv_index)
        values = value[:, :, lo:hi].index_select(1, kv_index)
        weighted = F.scaled_dot_product_attention(query[:, :, start:end], keys, values,
                                                  attn_mask=visible, scale=spec.scale)
        out[:, start:end] = weighted.transpose(1, 2)
    return out

"""sdpa for a sliding-window layer, a block of queries at a time against the keys it sees.

transformers hands a sliding-window layer a [T, T] boolean mask. torch's CPU sdpa turns a
boolean mask into a float one of the same size, and with a mask it multiplies every query
by every key: for Gemma 3 at 32,768 tokens, 4.3 GB per layer call and a square of work
where the layer sees a band. Here the queries go BLOCK rows at a time, each block with only
the keys its rows can see (``core.attention.visible_span``) and a block-sized mask built
from the layer's spec. Every row takes the softmax over the same keys as with the whole
mask; the outputs differ from that call by float rounding only.
"""

from __future__ import annotations

from typing import Any

from explorer.core.attention import LayerSpec, visible_span

BLOCK = 512
"""Query rows per sdpa call (with a 512-token window: 512 × 1,023 keys at most)."""


def banded_sdpa(query: Any, key: Any, value: Any, spec: LayerSpec, block: int = BLOCK) -> Any:
    """Attention of a layer with a sliding window, as transformers' sdpa function returns it.

    query: float[1, H, T, D]; key, value: float[1, KV, T, D] (query head h reads key/value
    head ``spec.kv_map[h]``). Returns float[1, T, H, Dv] (contiguous)."""
    import torch
    import torch.nn.functional as F

    if spec.sliding_window is None or spec.softcap is not None or spec.sinks is not None:
        raise ValueError("banded_sdpa takes sliding-window layers without soft-cap or sinks")
    tokens, num_keys = query.shape[2], key.shape[2]
    kv_index = torch.tensor(spec.kv_map, dtype=torch.long, device=key.device)
    out = query.new_empty((query.shape[0], tokens, query.shape[1], value.shape[3]))
    for start in range(0, tokens, block):
        end = min(tokens, start + block)
        lo, hi = visible_span(spec, start, end - 1, num_keys)
        rows = torch.arange(start, end, device=query.device)[:, None]
        cols = torch.arange(lo, hi, device=query.device)[None, :]
        visible = (rows - cols).abs() < spec.sliding_window
        if spec.causal:
            visible &= cols <= rows
        keys = key[:, :, lo:hi].index_select(1, kv_index)
        values = value[:, :, lo:hi].index_select(1, kv_index)
        weighted = F.scaled_dot_product_attention(query[:, :, start:end], keys, values,
                                                  attn_mask=visible, scale=spec.scale)
        out[:, start:end] = weighted.transpose(1, 2)
    return out

"""A long prompt's attention mask, built a block of query rows at a time into one array.

transformers' ``sdpa_mask`` evaluates the layer's mask function on broadcast index
tensors. For a sliding-window layer at 32,768 tokens that makes a bool [1, 1, T, T] of
1 GB out of two more of that size (causal, window, then their ``&``). torch frees each
temporary with the interpreter lock held, and unmapping 1 GB of ordinary pages took
70-76 ms here, so the window's thread waited that long for the lock. This mask function
(registered for the fast forward's attention name in ``qk_capture``) gives the same mask,
bool[batch, 1, query, key], but evaluates the mask function on ``ROW_BYTES``-sized blocks
of query rows and writes them into one array that numpy allocates: numpy asks the kernel
for huge pages on large arrays, and freeing such a 1 GB mask took 3 ms here.

Whether a mask is needed at all (sdpa's ``is_causal`` can replace it) is left to
``sdpa_mask`` itself, as are short prompts and vmapped mask functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ROW_BYTES = 16 * 2**20
"""Bytes of one block of mask rows (under glibc's mmap threshold, so blocks reuse memory)."""


class _MaskNeeded(Exception):
    """Raised by a probe mask function: ``sdpa_mask`` did not skip the mask."""


def _probe(*_: Any) -> Any:
    raise _MaskNeeded


def blocked_sdpa_mask(batch_size: int, q_length: int, kv_length: int, *, q_offset: Any = 0,
                      kv_offset: int = 0, mask_function: Any = None, attention_mask: Any = None,
                      use_vmap: bool = False, **kwargs: Any) -> Any:
    """``transformers.masking_utils.sdpa_mask`` with the same (keyword) arguments and mask
    values, built in blocks of rows when the mask is larger than one block (see the module
    docstring). A mask built in blocks is a full bool[batch, 1, query, key] array, where
    ``sdpa_mask`` may return a view broadcast over the batch (the app runs batch 1)."""
    import torch
    from transformers.masking_utils import causal_mask_function, sdpa_mask

    mask_function = causal_mask_function if mask_function is None else mask_function
    common = {"batch_size": batch_size, "kv_length": kv_length, "kv_offset": kv_offset,
              "attention_mask": attention_mask, "use_vmap": use_vmap, **kwargs}
    rows = max(1, ROW_BYTES // max(1, batch_size * kv_length))
    if use_vmap or q_length <= rows or isinstance(q_offset, torch.Tensor):
        return sdpa_mask(q_length=q_length, q_offset=q_offset, mask_function=mask_function, **common)
    try:  # sdpa_mask decides on the whole shape whether a mask is needed at all
        return sdpa_mask(q_length=q_length, q_offset=q_offset, mask_function=_probe, **common)
    except _MaskNeeded:
        pass
    device = torch.device(kwargs.get("device") or "cpu")
    mask = (torch.from_numpy(np.empty((batch_size, 1, q_length, kv_length), np.bool_))
            if device.type == "cpu"
            else torch.empty((batch_size, 1, q_length, kv_length), dtype=torch.bool, device=device))
    block_kwargs = {**common, "allow_is_causal_skip": False, "allow_is_bidirectional_skip": False}
    for start in range(0, q_length, rows):
        stop = min(q_length, start + rows)
        mask[:, :, start:stop] = sdpa_mask(q_length=stop - start, q_offset=q_offset + start,
                                           mask_function=mask_function, **block_kwargs)
    return mask

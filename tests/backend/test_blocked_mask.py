"""A long prompt's mask is built in blocks of rows, equal to transformers' own."""

import numpy as np
import pytest
import torch
from transformers.masking_utils import (
    bidirectional_mask_function,
    causal_mask_function,
    sdpa_mask,
    sliding_window_causal_mask_function,
)

from explorer.backend import blocked_mask
from explorer.backend.blocked_mask import blocked_sdpa_mask
from explorer.backend.engine import analyze
from explorer.core.attention import head_map
from tests.support.tiny_models import loaded

PROMPT = "The cat sat on the mat. The dog sat on the log. Attention is all you need."


def counted(mask_function, calls: list[int]):
    """``mask_function``, noting how many query rows each call is given."""
    def inner(batch, head, q_idx, kv_idx):
        calls.append(q_idx.numel())
        return mask_function(batch, head, q_idx, kv_idx)
    return inner


@pytest.mark.parametrize("case", [
    {"mask_function": sliding_window_causal_mask_function(5), "local_size": 5},
    {"mask_function": sliding_window_causal_mask_function(5), "local_size": 5, "q_offset": 4,
     "kv_length": 27},
    {"mask_function": causal_mask_function,
     "attention_mask": torch.tensor([[0, 0, 1] + [1] * 20, [1] * 23])},
    {"mask_function": bidirectional_mask_function, "allow_is_causal_skip": False,
     "attention_mask": torch.tensor([[1] * 21 + [0, 0], [1] * 23])},
], ids=["sliding", "sliding-offset", "causal-padded", "bidirectional-padded"])
def test_blocked_mask_equals_the_whole_one(monkeypatch, case):
    args = {"batch_size": 2, "q_length": 23, "kv_length": 23, **case}
    if "attention_mask" not in args:
        args["batch_size"] = 1
    whole = sdpa_mask(**args)
    assert whole is not None
    monkeypatch.setattr(blocked_mask, "ROW_BYTES", 5 * args["batch_size"] * args["kv_length"])
    calls: list[int] = []
    blocked = blocked_sdpa_mask(**{**args, "mask_function": counted(args["mask_function"], calls)})
    assert blocked.dtype == torch.bool and blocked.shape == whole.shape
    assert torch.equal(blocked, whole.expand_as(blocked))
    assert calls == [5, 5, 5, 5, 3]  # five blocks of rows, never the whole square


def test_masks_sdpa_can_skip_are_skipped_and_small_ones_built_whole(monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(blocked_mask, "ROW_BYTES", 5 * 23)
        assert blocked_sdpa_mask(batch_size=1, q_length=23, kv_length=23) is None  # is_causal
    calls: list[int] = []
    window = counted(sliding_window_causal_mask_function(5), calls)
    small = blocked_sdpa_mask(batch_size=1, q_length=23, kv_length=23, mask_function=window,
                              local_size=5)
    assert calls == [23]
    assert torch.equal(small, sdpa_mask(batch_size=1, q_length=23, kv_length=23, local_size=5,
                                        mask_function=sliding_window_causal_mask_function(5)))


def test_a_lazy_gemma3_run_builds_its_window_mask_in_blocks(monkeypatch):
    model = loaded("gemma3")  # sliding window of 8 positions, shorter than the prompt
    before = analyze(model, PROMPT, attention="lazy")
    monkeypatch.setattr(blocked_mask, "ROW_BYTES", 7 * before.num_tokens)
    built: list[tuple[int, ...]] = []
    original = blocked_mask.np.empty

    def empty(shape, dtype=float, *args, **kwargs):
        if dtype is np.bool_ and np.shape(shape) == (4,):  # a mask, not any other array
            built.append(tuple(shape))
        return original(shape, dtype, *args, **kwargs)

    monkeypatch.setattr(blocked_mask.np, "empty", empty)
    after = analyze(model, PROMPT, attention="lazy")
    monkeypatch.undo()
    num = after.num_tokens
    assert built == [(1, 1, num, num)]  # the sliding layers' mask, built once, in blocks
    np.testing.assert_array_equal(after.topk_ids, before.topk_ids)
    np.testing.assert_allclose(after.topk_probs, before.topk_probs, atol=1e-6)
    for layer in range(model.info.layers):
        np.testing.assert_allclose(head_map(after, layer, 0), head_map(before, layer, 0), atol=1e-6)

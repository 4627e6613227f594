import pytest

from explorer.core.memory_estimate import estimate_run_bytes
from explorer.core.types import ModelInfo

SMOLLM2 = ModelInfo(name="s", architecture="L", layers=30, heads=9, kv_heads=3, hidden_size=576,
                    vocab_size=49152, context_length=8192, positional_kind="rotary", causal=True,
                    head_dim=64)
TINY_GPT2 = ModelInfo(name="g", architecture="GPT2", layers=2, heads=4, kv_heads=4, hidden_size=32,
                      vocab_size=300, context_length=64, positional_kind="learned", causal=True)


def test_full_estimate_counts_maps_copies_and_logits():
    info = TINY_GPT2  # 2 layers x 4 heads
    t = 10
    assert estimate_run_bytes(info, t) == 2 * 4 * t * t * 2 + 3 * 4 * t * t * 4 + t * info.vocab_size * 4


def test_lazy_estimate_grows_linearly_and_counts_queries_and_keys():
    lazy = [estimate_run_bytes(SMOLLM2, t, "lazy") for t in (2048, 4096, 8192)]
    none = [estimate_run_bytes(SMOLLM2, t, "none") for t in (2048, 4096, 8192)]
    queries_keys = 30 * (9 + 3) * 8192 * 64 * 4
    assert lazy[2] - none[2] == queries_keys
    assert (lazy[2] - lazy[1]) / 4096 == pytest.approx((lazy[1] - lazy[0]) / 2048)  # linear in T
    assert estimate_run_bytes(SMOLLM2, 8192, "full") > 30 * lazy[2]


def test_a_model_with_sliding_windows_counts_their_mask_once_past_the_window():
    from dataclasses import replace

    gemma = replace(SMOLLM2, layers=6, layer_windows=(512,) * 5 + (None,))
    plain = replace(SMOLLM2, layers=6)
    for mode in ("lazy", "none"):  # transformers builds the mask from the window's length
        assert estimate_run_bytes(gemma, 511, mode) == estimate_run_bytes(plain, 511, mode)
        assert estimate_run_bytes(gemma, 512, mode) - estimate_run_bytes(plain, 512, mode) \
            == 512 ** 2
        t = 32_768  # the mask is built in blocks of rows: one [T, T] mask at a time
        assert estimate_run_bytes(gemma, t, mode) - estimate_run_bytes(plain, t, mode) == t ** 2

import pytest

from explorer.backend.engine import analyze
from explorer.backend.memory import check_memory, describe_estimate, estimate_run_bytes
from explorer.core.errors import PromptError
from explorer.core.types import ModelInfo
from tests.support.tiny_models import loaded

SMOLLM2 = ModelInfo(name="s", architecture="L", layers=30, heads=9, kv_heads=3, hidden_size=576,
                    vocab_size=49152, context_length=8192, positional_kind="rotary", causal=True,
                    head_dim=64)


def test_full_estimate_counts_maps_copies_and_logits():
    info = loaded("gpt2").info  # 2 layers x 4 heads
    t = 10
    assert estimate_run_bytes(info, t) == 2 * 4 * t * t * 2 + 3 * 4 * t * t * 4 + t * info.vocab_size * 4


def test_lazy_estimate_grows_linearly_and_counts_queries_and_keys():
    lazy = [estimate_run_bytes(SMOLLM2, t, "lazy") for t in (2048, 4096, 8192)]
    none = [estimate_run_bytes(SMOLLM2, t, "none") for t in (2048, 4096, 8192)]
    queries_keys = 30 * (9 + 3) * 8192 * 64 * 4
    assert lazy[2] - none[2] == queries_keys
    assert (lazy[2] - lazy[1]) / 4096 == pytest.approx((lazy[1] - lazy[0]) / 2048)  # linear in T
    assert estimate_run_bytes(SMOLLM2, 8192, "full") > 30 * lazy[2]


def test_too_large_run_is_refused_before_running(monkeypatch):
    lm = loaded("gpt2")
    monkeypatch.setenv("ATTENTION_EXPLORER_MAX_RUN_BYTES", "20000")
    with pytest.raises(PromptError, match="shorten the prompt"):
        analyze(lm, "The cat sat on the mat. The dog sat on the log.")
    monkeypatch.delenv("ATTENTION_EXPLORER_MAX_RUN_BYTES")
    assert analyze(lm, "The cat").num_tokens > 0


def test_smollm2_at_its_full_context_needs_lazy_attention():
    """With 8 GB to spare (injected, not read from this machine): 36 GB of float16 maps (plus
    copies and logits) are refused and the message names lazy attention; lazy mode fits and
    says what it uses."""
    limit = 8 * 10**9
    with pytest.raises(PromptError, match=r"4\d\.\d GB.*lazy attention"):
        check_memory(SMOLLM2, 8192, "full", limit=limit)
    used = check_memory(SMOLLM2, 8192, "lazy", limit=limit)
    assert 0.5e9 < used < 2e9
    assert describe_estimate(SMOLLM2, 8192, "lazy").startswith("lazy attention, about 1.")
    check_memory(SMOLLM2, 256, "full", limit=limit)

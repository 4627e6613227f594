import pytest

from explorer.backend.engine import analyze
from explorer.backend.memory import available_bytes, check_memory, estimate_run_bytes
from explorer.core.errors import PromptError
from tests.support.tiny_models import loaded


def test_estimate_counts_maps_copies_and_logits():
    info = loaded("gpt2").info  # 2 layers x 4 heads
    t = 10
    assert estimate_run_bytes(info, t) == 2 * 4 * t * t * 2 + 3 * 4 * t * t * 4 + t * info.vocab_size * 4


def test_too_large_run_is_refused_before_running(monkeypatch):
    lm = loaded("gpt2")
    monkeypatch.setenv("ATTENTION_EXPLORER_MAX_RUN_BYTES", "20000")
    with pytest.raises(PromptError, match="Shorten the prompt"):
        analyze(lm, "The cat sat on the mat. The dog sat on the log.")
    monkeypatch.delenv("ATTENTION_EXPLORER_MAX_RUN_BYTES")
    assert analyze(lm, "The cat").num_tokens > 0


def test_smollm2_at_its_full_context_would_not_fit_here():
    # 30 layers x 9 heads x 8192^2 x 2 bytes ~ 36 GB of float16 maps: refused on a laptop
    from explorer.core.types import ModelInfo

    info = ModelInfo(name="s", architecture="L", layers=30, heads=9, kv_heads=3, hidden_size=576,
                     vocab_size=49152, context_length=8192, positional_kind="rotary", causal=True)
    assert available_bytes() is not None
    with pytest.raises(PromptError, match="GB"):
        check_memory(info, 8192)
    check_memory(info, 256)

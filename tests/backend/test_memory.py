import pytest

from explorer.backend.engine import analyze
from explorer.backend.memory import check_memory
from explorer.core.errors import PromptError
from explorer.core.memory_estimate import describe_estimate
from tests.core.test_memory_estimate import SMOLLM2
from tests.support.tiny_models import loaded


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

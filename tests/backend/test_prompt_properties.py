"""Property tests: arbitrary text never breaks the engine; offsets stay inside the text."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.backend.engine import analyze
from explorer.core.errors import PromptError
from explorer.core.tokens import display_piece
from tests.support.tiny_models import loaded

NASTY = st.sampled_from([
    "\u0000", "\u202e", "\u200f", "\u0301", "\u0338", "🙂", "👩‍👩‍👧", "🇫🇷", "\t", "\r\n", "\x07",
    "مرحبا بالعالم", "שלום", "é", "ﷺ", "\ufeff", " ", "\u2028", "𝔘𝔫𝔦", "a\u0301\u0302\u0303",
])
PROMPTS = st.one_of(
    st.text(min_size=1, max_size=60),
    st.lists(NASTY, min_size=1, max_size=12).map("".join),
    st.text(alphabet=" \t\n", min_size=1, max_size=20),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "🙂", "ab "]), st.integers(20, 50)),
)

MODELS = {kind: loaded(kind) for kind in ("gpt2", "bert")}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=PROMPTS, kind=st.sampled_from(sorted(MODELS)))
def test_any_prompt_gives_consistent_arrays_or_a_clear_error(prompt, kind):
    lm = MODELS[kind]
    try:
        result = analyze(lm, prompt, top_k=5)
    except PromptError as exc:  # e.g. past the tiny model's 64 positions
        assert "context window" in str(exc) or "no tokens" in str(exc)
        return
    n = result.num_tokens
    assert result.offsets.shape == (n, 2)
    spans = result.offsets[result.offsets[:, 0] >= 0]
    assert np.all((spans[:, 0] >= 0) & (spans[:, 0] <= spans[:, 1]) & (spans[:, 1] <= len(prompt)))
    rows = result.attentions.astype(np.float32).sum(-1)
    np.testing.assert_allclose(rows, 1.0, atol=5e-3)
    assert np.all(np.isfinite(result.topk_probs))
    for piece in result.tokens:
        assert display_piece(piece, lm.info.piece_style)

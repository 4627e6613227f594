"""Attention rollout and last-layer attention against an independent numpy product."""

import numpy as np
import pytest

from explorer.core.rollout import last_layer_attention_row, rollout_row


def random_attention(layers, heads, tokens, causal, seed=0):
    """float16[L, H, T, T] rows that sum to 1 (zero above the diagonal when causal)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(layers, heads, tokens, tokens)) * 2
    if causal:
        logits = np.where(np.tril(np.ones((tokens, tokens), bool)), logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return weights.astype(np.float16)


def full_rollout(attentions):
    """R = Â_L ⋯ Â_1 with Â = 0.5·mean_heads(A) + 0.5·I, rows renormalised (all rows)."""
    a = attentions.astype(np.float64)
    eye = np.eye(a.shape[-1])
    hats = []
    for layer in a:
        hat = 0.5 * layer.mean(axis=0) + 0.5 * eye
        hats.append(hat / hat.sum(axis=1, keepdims=True))
    return np.linalg.multi_dot(hats[::-1]) if len(hats) > 1 else hats[0]


@pytest.mark.parametrize("causal", [True, False])
def test_rollout_row_equals_the_full_matrix_product(causal):
    attentions = random_attention(4, 3, 7, causal)
    data = {"attentions": attentions, "token_ids": np.arange(7)}
    expected = full_rollout(attentions)
    for position in range(7):
        row = rollout_row(data, position)
        assert row.dtype == np.float32 and row.shape == (7,)
        np.testing.assert_allclose(row, expected[position], rtol=1e-5, atol=1e-6)
        assert row.sum() == pytest.approx(1.0, abs=1e-5)
        if causal:
            assert not row[position + 1:].any()


def test_one_layer_rollout_is_half_attention_half_identity():
    attentions = random_attention(1, 2, 5, causal=True, seed=3)
    row = rollout_row({"attentions": attentions, "token_ids": np.arange(5)}, 3)
    expected = 0.5 * attentions[0, :, 3].astype(np.float64).mean(0)
    expected[3] += 0.5
    np.testing.assert_allclose(row, expected / expected.sum(), rtol=1e-5)  # float16 rows ~ 1


def test_last_layer_attention_is_the_head_mean_of_the_row():
    attentions = random_attention(3, 4, 6, causal=True, seed=1)
    data = {"attentions": attentions, "token_ids": np.arange(6)}
    for position in range(6):
        np.testing.assert_allclose(last_layer_attention_row(data, position),
                                   attentions[2, :, position].astype(np.float32).mean(0), rtol=1e-6)


def test_position_outside_the_prompt_is_refused():
    data = {"attentions": random_attention(2, 1, 4, True), "token_ids": np.arange(4)}
    with pytest.raises(IndexError):
        rollout_row(data, 4)
    with pytest.raises(IndexError):
        last_layer_attention_row(data, -1)

"""Head scores of real (tiny) models equal the formulas applied to plain transformers'
attention weights; the induction probe is the fixed-seed repeated random sequence."""

import numpy as np
import pytest
import torch

from explorer.backend.engine import analyze
from explorer.backend.head_scores import induction_probe, probe_tokens, score_prompt
from explorer.core import head_scores as hs
from explorer.core.head_scores import SCORE_NAMES, score_heads
from tests.support.head_formulas import loop_scores
from tests.support.tiny_models import loaded

PROMPT = "The cat sat on the mat. The dog sat on the log. The cat sat on the mat."


def plain_attentions(lm, ids):
    with torch.no_grad():
        out = lm.model(input_ids=torch.tensor([ids]), output_attentions=True)
    return np.stack([a[0].double().numpy() for a in out.attentions])


def reference_scores(lm, ids):
    maps = plain_attentions(lm, ids)
    return np.array([[loop_scores(maps[layer, head], ids) for head in range(maps.shape[1])]
                     for layer in range(maps.shape[0])]).transpose(2, 0, 1)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gemma3"])
@pytest.mark.parametrize("mode, atol", [("lazy", 2e-5), ("full", 5e-5)])
def test_scores_equal_the_formulas_on_plain_transformers(kind, mode, atol, monkeypatch):
    monkeypatch.setattr(hs, "ROW_BLOCK_VALUES", 4 * 7 * 40)  # a few rows per block
    lm = loaded(kind)
    result = analyze(lm, PROMPT, attention=mode)
    assert result.attention_mode == mode
    ids = result.token_ids.tolist()
    assert len(set(ids)) < len(ids) - 5  # the prompt repeats tokens
    scores = score_heads(result)
    expected = reference_scores(lm, ids)
    assert scores.values.shape == expected.shape == (6, lm.info.layers, lm.info.heads)
    for index, name in enumerate(SCORE_NAMES):
        tolerance = atol * 4 if name == "entropy_bits" else atol  # float16 maps: log terms
        np.testing.assert_allclose(scores.values[index], expected[index], atol=tolerance, err_msg=name)
    group = lm.info.group_size
    assert scores.kv_heads.tolist() == [[h // group for h in range(lm.info.heads)]] * lm.info.layers


def test_kv_head_column_follows_grouped_query_attention():
    scores = score_prompt(loaded("llama"), PROMPT)
    assert scores.kv_heads[0].tolist() == [0, 0, 1, 1]
    assert scores.source == "prompt" and scores.model_name == "tiny-llama"


def test_probe_is_a_fixed_random_sequence_repeated_once():
    lm = loaded("llama")
    ids = probe_tokens(lm)
    assert ids == probe_tokens(lm)  # fixed seed
    half = len(ids) // 2
    assert len(ids) == 100 and ids[:half] == ids[half:]
    assert len(set(ids[:half])) == half
    assert not set(ids) & set(lm.tokenizer.all_special_ids)
    assert probe_tokens(lm, seed=1) != ids
    bert = loaded("bert")
    framed = probe_tokens(bert)
    assert framed[0] == bert.tokenizer.cls_token_id and framed[-1] == bert.tokenizer.sep_token_id


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_probe_scores_equal_the_formulas_on_the_probe_sequence(kind):
    lm = loaded(kind)
    scores = induction_probe(lm)
    ids = probe_tokens(lm)
    assert scores.token_ids.tolist() == ids
    assert "repeated once" in scores.source
    np.testing.assert_allclose(scores.values, reference_scores(lm, ids), atol=1e-5)

"""Head scores equal the formulas, written out as plain loops."""

import math

import numpy as np
import pytest

from explorer.core import head_scores as hs
from explorer.core.errors import Cancelled, ExplorerError
from explorer.core.head_scores import (
    CSV_COLUMNS,
    SCORE_NAMES,
    latest_earlier,
    read_csv,
    score_heads,
    write_csv,
)
from explorer.core.progress import TaskState
from tests.support.head_formulas import loop_scores


def random_maps(layers, heads, tokens, seed=0, causal=True):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(layers, heads, tokens, tokens)) * 3
    if causal:
        logits = np.where(np.tril(np.ones((tokens, tokens), bool)), logits, -np.inf)
    maps = np.exp(logits - logits.max(-1, keepdims=True))
    return (maps / maps.sum(-1, keepdims=True)).astype(np.float32)


IDS = np.array([5, 7, 9, 5, 7, 2, 9, 9, 5, 1, 7, 3])


@pytest.mark.parametrize("causal", [True, False])
def test_scores_equal_the_formulas(causal, monkeypatch):
    monkeypatch.setattr(hs, "ROW_BLOCK_VALUES", 3 * len(IDS) * 5)  # 5 rows per block
    maps = random_maps(2, 3, len(IDS), causal=causal)
    scores = score_heads({"attentions": maps, "token_ids": IDS}, group_size=3, model_name="m")
    assert scores.values.shape == (len(SCORE_NAMES), 2, 3)
    for layer in range(2):
        for head in range(3):
            expected = loop_scores(maps[layer, head].astype(np.float64), IDS.tolist())
            np.testing.assert_allclose(scores.values[:, layer, head], expected, rtol=1e-5, atol=1e-7)
    assert scores.kv_heads.tolist() == [[0, 0, 0], [0, 0, 0]]
    assert scores.model_name == "m"


def test_hand_made_heads_score_one_on_their_own_behaviour():
    ids = np.array([3, 4, 5, 3, 4, 5])
    t = len(ids)
    previous = np.zeros((t, t), np.float32)
    previous[0, 0] = 1
    previous[np.arange(1, t), np.arange(t - 1)] = 1
    induction = np.eye(t, dtype=np.float32)
    for i, j in enumerate(latest_earlier(ids)):
        if j >= 0:
            induction[i] = 0
            induction[i, j + 1] = 1
    uniform = np.tril(np.ones((t, t), np.float32))
    uniform /= uniform.sum(-1, keepdims=True)
    maps = np.stack([previous, induction, uniform])[None]
    scores = score_heads({"attentions": maps, "token_ids": ids})
    assert scores.score("previous_token")[0, 0] == 1.0
    assert scores.score("induction")[0, 1] == 1.0 and scores.score("duplicate_token")[0, 1] == 0.0
    assert scores.score("self")[0, 1] == pytest.approx(0.5)  # the first three rows are self
    assert scores.score("entropy_bits")[0, 0] == 0.0
    expected_entropy = np.mean([math.log2(i + 1) for i in range(t)])
    assert scores.score("entropy_bits")[0, 2] == pytest.approx(expected_entropy, rel=1e-6)
    assert scores.top("induction", 1) == [(0, 1, 1.0)]


def test_no_repeats_give_nan_and_sort_last():
    ids = np.arange(6)
    scores = score_heads({"attentions": random_maps(1, 2, 6), "token_ids": ids})
    assert np.isnan(scores.score("duplicate_token")).all() and np.isnan(scores.score("induction")).all()
    assert not np.isnan(scores.score("previous_token")).any()


def test_latest_earlier():
    assert latest_earlier(np.array([1, 2, 1, 1, 3, 2])).tolist() == [-1, -1, 0, 2, -1, 1]


def test_csv_has_the_contract_columns_and_reads_back(tmp_path):
    maps = random_maps(2, 2, len(IDS), seed=1)
    scores = score_heads({"attentions": maps, "token_ids": IDS}, group_size=2)
    path = write_csv(scores, tmp_path / "sub" / "heads.csv")
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header == "layer,head,kv_head,first_token,previous_token,self,duplicate_token,induction,entropy_bits"
    assert tuple(header.split(",")) == CSV_COLUMNS
    rows = read_csv(path)
    assert [(r["layer"], r["head"], r["kv_head"]) for r in rows] == [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0)]
    for row in rows:
        for name in SCORE_NAMES:
            expected = scores.score(name)[int(row["layer"]), int(row["head"])]
            assert row[name] == pytest.approx(expected, rel=1e-5)


def test_progress_cancel_and_bad_input():
    maps = random_maps(3, 2, 8)
    ids = np.arange(8)
    seen = []
    score_heads({"attentions": maps, "token_ids": ids}, TaskState(report=lambda f, m: seen.append(f)))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    with pytest.raises(Cancelled):
        score_heads({"attentions": maps, "token_ids": ids},
                    TaskState(is_cancel_requested=lambda: True))
    with pytest.raises(ExplorerError, match="span"):
        score_heads({"attentions": maps, "token_ids": ids[:5]})

import json

import numpy as np
import pytest

from explorer.core.result_io import load_npz, save_npz, summary_dict
from explorer.core.types import ModelInfo, RunResult

INFO = ModelInfo(name="t", architecture="X", layers=1, heads=2, kv_heads=1, hidden_size=8,
                 vocab_size=10, context_length=16, positional_kind="rotary", causal=True)


def make_result(n: int = 3) -> RunResult:
    att = np.tril(np.ones((1, 2, n, n), np.float32))
    att /= att.sum(-1, keepdims=True)
    return RunResult(
        prompt="a b c", token_ids=np.arange(n), tokens=("a", "Ġb", "Ġc")[:n],
        offsets=np.array([[0, 1], [1, 3], [3, 5]])[:n], attentions=att,
        topk_ids=np.zeros((n, 2)), topk_probs=np.full((n, 2), 0.4), topk_logits=np.ones((n, 2)),
        topk_tokens=[["x", "y"]] * n, positional=np.zeros((n, 4)), positional_kind="rotary",
        model_info=INFO, timings={"run_s": 0.5},
    )


def test_round_trip_keeps_names_dtypes_and_values(tmp_path):
    result = make_result()
    path = save_npz(result, tmp_path / "sub" / "r.npz")
    with np.load(path) as data:  # allow_pickle=False by default: strings must not need pickle
        assert data["attentions"].dtype == np.float16
        assert data["attentions"].shape == (1, 2, 3, 3)
        assert data["tokens"].tolist() == ["a", "Ġb", "Ġc"]
        assert data["topk_ids"].dtype == np.int64 and data["topk_probs"].dtype == np.float32
        assert str(data["positional_kind"]) == "rotary"
        assert json.loads(str(data["model_info"]))["heads"] == 2
    again = load_npz(path)
    assert again.tokens == result.tokens
    np.testing.assert_array_equal(again.attentions, result.attentions)
    assert again.model_info == INFO


def test_records_are_read_only_and_validated():
    result = make_result()
    with pytest.raises(ValueError):
        result.attentions[0, 0, 0, 0] = 1
    with pytest.raises(ValueError):
        RunResult(**{**result.__dict__, "attentions": np.zeros((1, 2, 2, 2))})


def test_summary_has_top5_and_timings():
    summary = summary_dict(make_result())
    assert summary["tokens"] == ["a", "Ġb", "Ġc"]
    assert [t["token"] for t in summary["top5_next"]] == ["x", "y"]
    assert summary["timings"] == {"run_s": 0.5}

"""head_map and the lazy attention data model, against a direct numpy formula."""

import numpy as np
import pytest

from explorer.core.attention import (
    LAZY_FROM_TOKENS,
    AttentionSpec,
    LayerSpec,
    check_lazy_arrays,
    default_mode,
    head_map,
    layer_maps,
    mean_map,
    rebuild_rows,
    resolve_mode,
)
from explorer.core.errors import AttentionDataError


def naive(q, k, spec: LayerSpec, head: int) -> np.ndarray:
    """The textbook formula, one query at a time, in float64."""
    t = len(k)
    out = np.zeros((t, t))
    for i in range(t):
        logits = np.array([q[i] @ k[j] * spec.scale for j in range(t)], dtype=np.float64)
        if spec.softcap is not None:
            logits = spec.softcap * np.tanh(logits / spec.softcap)
        visible = np.ones(t, bool)
        if spec.causal:
            visible &= np.arange(t) <= i
        if spec.sliding_window is not None:
            visible &= np.abs(i - np.arange(t)) < spec.sliding_window
        weights = np.where(visible, np.exp(logits - logits[visible].max()), 0.0)
        total = weights.sum()
        if spec.sinks is not None:
            total += np.exp(spec.sinks[head] - logits[visible].max())
        out[i] = weights / total
    return out


SPECS = {
    "causal": LayerSpec(0.3, True, (0,)),
    "bidirectional": LayerSpec(0.3, False, (0,)),
    "window": LayerSpec(0.3, True, (0,), sliding_window=5),
    "softcap": LayerSpec(0.9, True, (0,), softcap=2.0),
    "sinks": LayerSpec(0.3, True, (0,), sinks=(1.5,)),
    "bidirectional window": LayerSpec(0.3, False, (0,), sliding_window=4),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_rebuild_rows_equals_the_formula(name):
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((23, 8)), rng.standard_normal((23, 8))
    spec = SPECS[name]
    expected = naive(q, k, spec, 0)
    full = rebuild_rows(q, k, spec, 0, np.arange(23))
    np.testing.assert_allclose(full, expected, atol=2e-6)
    rows = np.array([17, 3, 22, 0])  # any order: rows come back in the order asked for
    np.testing.assert_allclose(rebuild_rows(q, k, spec, 0, rows), expected[rows], atol=2e-6)
    if spec.sinks is None:
        np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-5)
    else:
        assert np.all(full.sum(axis=1) < 1.0)  # the sink takes its share


def test_rebuild_rows_uses_blocks_without_changing_numbers(monkeypatch):
    import explorer.core.attention as attention

    rng = np.random.default_rng(2)
    q, k = rng.standard_normal((40, 4)), rng.standard_normal((40, 4))
    spec = LayerSpec(0.5, True, (0,), sliding_window=7)
    whole = rebuild_rows(q, k, spec, 0, np.arange(40))
    monkeypatch.setattr(attention, "_ROW_BLOCK", 3)
    np.testing.assert_allclose(rebuild_rows(q, k, spec, 0, np.arange(40)), whole, atol=1e-6)


def lazy_arrays(layers=2, heads=4, kv=2, t=9, d=8, seed=0):
    rng = np.random.default_rng(seed)
    spec = AttentionSpec(tuple(LayerSpec(d ** -0.5, True, (0, 0, 1, 1)) for _ in range(layers)))
    return {"token_ids": np.arange(t), "queries": rng.standard_normal((layers, heads, t, d)),
            "keys": rng.standard_normal((layers, kv, t, d)), "attention_spec": spec.to_json(),
            "attention_mode": "lazy"}


def test_head_map_on_saved_arrays_reads_the_kv_head_of_each_query_head():
    data = lazy_arrays()
    spec = AttentionSpec.from_json(data["attention_spec"]).layers[1]
    for head in range(4):
        expected = naive(data["queries"][1, head], data["keys"][1, head // 2], spec, head)
        np.testing.assert_allclose(head_map(data, 1, head), expected, atol=2e-6)
        np.testing.assert_allclose(head_map(data, 1, head, rows=[8]), expected[[8]], atol=2e-6)
    stacked = layer_maps(data, 1)
    assert stacked.shape == (4, 9, 9)
    np.testing.assert_allclose(mean_map(data, 1), stacked.mean(axis=0), atol=1e-6)


def test_head_map_on_full_arrays_returns_the_stored_map():
    att = np.random.default_rng(0).random((2, 3, 5, 5)).astype(np.float16)
    data = {"token_ids": np.arange(5), "attentions": att}
    np.testing.assert_array_equal(head_map(data, 1, 2), att[1, 2].astype(np.float32))
    np.testing.assert_array_equal(head_map(data, 1, 2, rows=[4, 0]), att[1, 2][[4, 0]].astype(np.float32))
    with pytest.raises(IndexError):
        head_map(data, 2, 0)


@pytest.mark.parametrize("damage,message", [
    (lambda d: d.pop("queries"), "no queries"),
    (lambda d: d.pop("keys"), "no keys"),
    (lambda d: d.pop("attention_spec"), "no attention_spec"),
    (lambda d: d.update(keys=d["keys"][:, :, :5]), "disagree"),
    (lambda d: d.update(queries=d["queries"][:1], keys=d["keys"][:1]), "describes 2 layers"),
    (lambda d: d.update(keys=d["keys"][:, :1]), "key/value heads"),
    (lambda d: d.update(attention_spec="{not json"), "not valid JSON"),
    (lambda d: d.update(attention_spec='{"layers": [{"scale": 1}]}'), "needs scale, causal"),
])
def test_broken_lazy_arrays_are_refused_with_a_clear_message(damage, message):
    data = lazy_arrays()
    damage(data)
    with pytest.raises(AttentionDataError, match=message):
        head_map(data, 0, 0)


def test_none_mode_has_no_maps():
    with pytest.raises(AttentionDataError, match="no attention"):
        head_map({"token_ids": np.arange(3), "attention_mode": "none"}, 0, 0)


def test_spec_json_round_trip():
    spec = AttentionSpec((LayerSpec(0.125, True, (0, 0, 1), 512, 50.0, (0.5, 1.0, -2.0)),
                          LayerSpec(0.2, False, (0, 1, 2))))
    text = spec.to_json()
    assert AttentionSpec.from_json(text) == spec
    import json

    layer = json.loads(text)["layers"][0]
    assert set(layer) == {"scale", "causal", "kv_map", "sliding_window", "softcap", "sinks"}
    assert json.loads(text)["layers"][1]["sliding_window"] is None


def test_default_mode_switches_at_the_threshold():
    assert default_mode(LAZY_FROM_TOKENS - 1) == "full"
    assert default_mode(LAZY_FROM_TOKENS) == "lazy"
    assert resolve_mode("auto", 10) == "full" and resolve_mode("none", 10) == "none"
    with pytest.raises(AttentionDataError):
        resolve_mode("sparse", 10)


def test_check_lazy_arrays_checks_the_token_count():
    data = lazy_arrays()
    spec = AttentionSpec.from_json(data["attention_spec"])
    check_lazy_arrays(data["queries"], data["keys"], spec, 9)
    with pytest.raises(AttentionDataError, match="9 tokens but the run has 10"):
        check_lazy_arrays(data["queries"], data["keys"], spec, 10)


@pytest.mark.parametrize("name", list(SPECS))
def test_a_column_from_log_norms_equals_the_map_column(name):
    from explorer.core.attention import column

    rng = np.random.default_rng(3)
    q, k = rng.standard_normal((19, 6)), rng.standard_normal((19, 6))
    spec = SPECS[name]
    norms = np.empty(19, np.float32)
    full = rebuild_rows(q, k, spec, 0, np.arange(19), log_norms=norms)
    for key in (0, 7, 18):
        np.testing.assert_allclose(column(q, k, spec, key, norms), full[:, key], atol=1e-6)


def test_head_column_and_log_norms_on_lazy_and_full_results():
    from explorer.core.attention import head_column, head_log_norms

    data = lazy_arrays()
    norms = head_log_norms(data, 1, 2)
    full_map = head_map(data, 1, 2)
    np.testing.assert_allclose(head_column(data, 1, 2, 4, norms), full_map[:, 4], atol=1e-6)
    np.testing.assert_allclose(head_column(data, 1, 2, 4), full_map[:, 4], atol=1e-6)
    stored = {"token_ids": np.arange(9), "attentions": full_map[None, None].astype(np.float16)}
    assert head_log_norms(stored, 0, 0) is None
    np.testing.assert_allclose(head_column(stored, 0, 0, 4), full_map[:, 4], atol=1e-3)

"""The large map's data: exact or block-pooled, curves and zoomed windows, against head_map."""

import numpy as np
import pytest

from explorer.core.attention import head_map, mean_map
from explorer.core.map_view import MapKey, detail_map, exact_window, selected_curves
from tests.core.test_attention import lazy_arrays


def full_arrays(t=9):
    data = lazy_arrays(t=t)
    maps = np.stack([np.stack([head_map(data, layer, h) for h in range(4)]) for layer in range(2)])
    return {"token_ids": np.arange(t), "attentions": maps.astype(np.float32)}


def drawn(data, key):
    matrix = mean_map(data, key.layer) if key.head is None else head_map(data, key.layer, key.head)
    if key.hide_first:
        matrix = matrix.copy()
        matrix[:, 0] = 0
        rest = matrix.sum(axis=1, keepdims=True)
        matrix = np.where(rest > 0, matrix / np.where(rest > 0, rest, 1), 0)
    return matrix


KEYS = [MapKey(1, 2), MapKey(1, None), MapKey(0, 3, hide_first=True), MapKey(0, None, True)]


@pytest.mark.parametrize("source", ["lazy", "full"])
@pytest.mark.parametrize("key", KEYS)
def test_small_maps_are_exact_and_curves_are_the_row_and_column(source, key):
    data = lazy_arrays(t=9) if source == "lazy" else full_arrays(9)
    view = detail_map(data, key, size=64)
    expected = drawn(data, key)
    assert view.block == 1 and view.describe() == "exact"
    np.testing.assert_allclose(view.image, expected, atol=1e-5)
    for token in (0, 4, 8):
        row, col = selected_curves(data, view, token)
        np.testing.assert_allclose(row, expected[token], atol=1e-5)
        np.testing.assert_allclose(col, expected[:, token], atol=1e-5)


@pytest.mark.parametrize("how", ["max", "mean"])
def test_long_maps_are_block_pooled_without_the_full_map(how):
    data = lazy_arrays(t=50)
    key = MapKey(1, 1, how=how)
    view = detail_map(data, key, size=8)  # 50 tokens in 8 px: blocks of 7 tokens
    assert view.block == 7 and view.image.shape == (8, 8)
    assert view.describe() == f"{how}-pooled 7×7-token blocks"
    full = drawn(data, key)
    for r in range(8):
        for c in range(8):
            cells = full[r * 7:(r + 1) * 7, c * 7:(c + 1) * 7]
            expected = cells.max() if how == "max" else cells.mean()
            assert view.image[r, c] == pytest.approx(expected, abs=1e-6)
    np.testing.assert_allclose(exact_window(data, key, (10, 20), (3, 12)), full[10:20, 3:12], atol=1e-6)
    row, col = selected_curves(data, view, 33)
    np.testing.assert_allclose(row, full[33], atol=1e-6)
    np.testing.assert_allclose(col, full[:, 33], atol=1e-6)


def windowed_arrays(t=103):
    """Three layers: causal with a sliding window of 13 (and a sink), causal, and a
    bidirectional window of 9, so that bands see keys starting far from column 0."""
    from explorer.core.attention import AttentionSpec, LayerSpec

    data = lazy_arrays(layers=3, t=t, seed=3)
    spec = AttentionSpec((LayerSpec(8 ** -0.5, True, (0, 0, 1, 1), 13, None, (0.5, -1, 0, 2)),
                          LayerSpec(8 ** -0.5, True, (0, 0, 1, 1)),
                          LayerSpec(8 ** -0.5, False, (0, 0, 1, 1), 9)))
    return dict(data, attention_spec=spec.to_json())


@pytest.mark.parametrize("how", ["max", "mean"])
@pytest.mark.parametrize("key", [MapKey(0, 1), MapKey(0, None, True), MapKey(1, 3, True),
                                 MapKey(2, 2), MapKey(2, None, True)])
def test_pooled_bands_only_rebuild_visible_keys_and_match_the_map(monkeypatch, how, key):
    from explorer.core import map_view

    monkeypatch.setattr(map_view, "_BAND", 16)  # many bands: every band's own key window
    data = windowed_arrays()
    key = MapKey(key.layer, key.head, key.hide_first, how)
    view = detail_map(data, key, size=10)  # 103 tokens in 10 px: blocks of 11
    assert view.block == 11 and view.image.shape == (10, 10)
    full = drawn(data, key)
    padded = np.zeros((110, 110), np.float32)
    padded[:103, :103] = full
    cells = padded.reshape(10, 11, 10, 11).transpose(0, 2, 1, 3)
    if how == "max":
        expected = cells.max(axis=(2, 3))
    else:
        counts = np.outer(np.minimum(11, 103 - np.arange(10) * 11), np.minimum(11, 103 - np.arange(10) * 11))
        expected = cells.sum(axis=(2, 3)) / counts
    np.testing.assert_allclose(view.image, expected, atol=1e-6)
    row, col = selected_curves(data, view, 60)
    np.testing.assert_allclose(row, full[60], atol=1e-6)
    np.testing.assert_allclose(col, full[:, 60], atol=1e-6)

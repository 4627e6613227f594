import numpy as np
import pytest

from explorer.core import analysis
from explorer.core.attention import mean_map


def test_softmax_matches_direct_formula_and_survives_large_logits():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 0.0]])
    probs = analysis.softmax(logits)
    np.testing.assert_allclose(probs[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum(), rtol=1e-6)
    np.testing.assert_allclose(probs[1], [0.5, 0.5, 0.0], atol=1e-7)


def test_top_k_sorted_descending_with_right_ids():
    probs = np.array([[0.1, 0.5, 0.05, 0.35], [0.25, 0.25, 0.4, 0.1]])
    ids, values = analysis.top_k(probs, 2)
    assert ids.tolist() == [[1, 3], [2, 0]]
    np.testing.assert_allclose(values, [[0.5, 0.35], [0.4, 0.25]])


def test_drop_first_and_renormalise():
    rows = np.array([[1.0, 0.0, 0.0], [0.5, 0.25, 0.25], [0.8, 0.2, 0.0]])
    out = analysis.drop_first_and_renormalise(rows)
    np.testing.assert_allclose(out, [[0, 0, 0], [0, 0.5, 0.5], [0, 1.0, 0]])


def test_head_mean_and_entropy():
    att = np.zeros((1, 2, 2, 2), np.float16)
    att[0, 0] = [[1, 0], [0.5, 0.5]]
    att[0, 1] = [[1, 0], [1, 0]]
    np.testing.assert_allclose(mean_map({"attentions": att}, 0), [[1, 0], [0.75, 0.25]])
    assert analysis.entropy_bits(np.array([0.5, 0.5])) == pytest.approx(1.0)
    assert analysis.entropy_bits(np.array([1.0, 0.0])) == pytest.approx(0.0)


def test_segment_sums_and_rank():
    row = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(analysis.segment_sums(row, [(0, 1), (1, 3), (3, 4)]), [0.1, 0.5, 0.4])
    assert analysis.rank_of(row, 3) == 1 and analysis.rank_of(row, 0) == 4

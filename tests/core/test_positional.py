import math

import numpy as np
import pytest

from explorer.core import positional as pos


def test_sinusoidal_matches_the_paper_formula_elementwise():
    table = pos.sinusoidal_table(50, 16)
    assert table.shape == (50, 16) and table.dtype == np.float32
    for p in (0, 1, 7, 49):
        for i in range(8):
            angle = p / 10000 ** (2 * i / 16)
            assert table[p, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[p, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoidal_odd_dimension_keeps_shape():
    assert pos.sinusoidal_table(3, 5).shape == (3, 5)


def test_rope_angles_are_position_times_theta():
    inv = pos.rope_inverse_frequencies(64, 100000.0)
    assert inv.shape == (32,)
    assert inv[0] == 1.0 and inv[1] == pytest.approx(100000.0 ** (-2 / 64))
    angles = pos.rope_angles(10, inv)
    assert angles.shape == (10, 32)
    np.testing.assert_allclose(angles[7], 7 * inv, rtol=1e-6)
    cos, sin = pos.rope_cos_sin(angles)
    np.testing.assert_allclose(cos**2 + sin**2, 1.0, atol=1e-6)


def test_alibi_slopes_match_paper_for_8_heads_and_interleave_for_12():
    np.testing.assert_allclose(pos.alibi_slopes(8), [2.0 ** -(i + 1) for i in range(8)], rtol=1e-6)
    twelve = pos.alibi_slopes(12)
    assert len(twelve) == 12
    np.testing.assert_allclose(twelve[:8], pos.alibi_slopes(8))
    np.testing.assert_allclose(twelve[8:], pos.alibi_slopes(16)[0::2][:4])
    bias = pos.alibi_bias(4, pos.alibi_slopes(2))
    assert bias.shape == (4, 2) and bias[3, 0] == pytest.approx(-3 * pos.alibi_slopes(2)[0])


def test_cosine_similarity_diagonal_is_one_and_symmetric():
    rows = np.random.default_rng(0).normal(size=(6, 5))
    sim = pos.cosine_similarity_matrix(rows)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-6)
    np.testing.assert_allclose(sim, sim.T, atol=1e-7)


def test_rows_at_chosen_positions_follow_the_formulas():
    positions = np.array([0, 7, 300, 4095])
    i = np.arange(32)
    rows = pos.sinusoidal_rows(positions, 64)
    np.testing.assert_allclose(rows[:, 0::2], np.sin(positions[:, None] / 10000 ** (2 * i / 64)), atol=1e-6)
    np.testing.assert_allclose(rows[:, 1::2], np.cos(positions[:, None] / 10000 ** (2 * i / 64)), atol=1e-6)
    inv = 10000.0 ** (-2 * i / 64)
    np.testing.assert_allclose(pos.rope_angles_at(positions, inv), positions[:, None] * inv, rtol=1e-6)
    vectors = np.random.default_rng(0).normal(size=(12, 5))
    left, right = vectors[[2, 9]], vectors[[0, 4, 11]]
    expected = [[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in right] for a in left]
    np.testing.assert_allclose(pos.cosine_similarity_matrix(left, right), expected, atol=1e-6)

"""k grid, orderings, masks and AOPC of the faithfulness measures."""

import math

import numpy as np
import pytest

from explorer.core.faithfulness import (
    GRID_POINTS,
    FaithfulnessCurve,
    deletion_masks,
    importance_order,
    k_grid,
    keep_only_masks,
    random_order,
)


@pytest.mark.parametrize("n", [1, 2, 7, 10])
def test_short_prompts_use_every_k(n):
    assert k_grid(n).tolist() == list(range(n + 1))


@pytest.mark.parametrize("n", [11, 23, 64, 257])
def test_long_prompts_use_eleven_rounded_fractions(n):
    expected = sorted({math.floor(n * i / GRID_POINTS + 0.5) for i in range(GRID_POINTS + 1)})
    assert k_grid(n).tolist() == expected
    assert expected[0] == 0 and expected[-1] == n


def test_importance_order_is_highest_first_with_ties_by_position():
    assert importance_order(np.array([0.1, 0.5, -2.0, 0.5, 0.0])).tolist() == [1, 3, 0, 4, 2]


def test_random_order_is_seeded_and_reproducible():
    first, again = random_order(50, seed=7), random_order(50, seed=7)
    assert np.array_equal(first, again)
    assert sorted(first.tolist()) == list(range(50))
    assert not np.array_equal(first, random_order(50, seed=8))
    assert not np.array_equal(first, np.arange(50))


def test_masks_replace_the_top_k_or_all_but_them():
    order = np.array([2, 0, 3, 1])
    ks = np.array([0, 1, 3, 4])
    deletion = deletion_masks(order, ks)
    assert deletion.tolist() == [[False] * 4,
                                 [False, False, True, False],
                                 [True, False, True, True],
                                 [True] * 4]
    assert np.array_equal(keep_only_masks(order, ks), ~deletion)


def test_aopc_averages_the_drops_after_k_zero():
    curve = FaithfulnessCurve("m", order=[1, 0, 2], ks=[0, 1, 2, 3],
                              deletion=[0.8, 0.5, 0.2, 0.1], keep_only=[0.3, 0.6, 0.7, 0.8])
    assert curve.comprehensiveness == pytest.approx(((0.8 - 0.5) + (0.8 - 0.2) + (0.8 - 0.1)) / 3)
    assert curve.sufficiency == pytest.approx(((0.8 - 0.6) + (0.8 - 0.7) + 0.0) / 3)
    with pytest.raises(ValueError):
        FaithfulnessCurve("m", order=[0], ks=[0, 1], deletion=[0.1], keep_only=[0.1, 0.2])

"""The sampling filters against hand computations (numpy only, no torch)."""

import subprocess
import sys

import numpy as np
import pytest

from explorer.core.errors import ExplorerError
from explorer.core.sampling import (
    SamplingSettings,
    apply_repetition_penalty,
    filtered_distribution,
    filtered_support,
    find_stop,
    sample_from,
)

LOGITS = np.array([2.0, 1.0, 0.5, -1.0, 3.0, 0.0], np.float32)


def settings(**kw):
    base = dict(temperature=1.0, top_k=0, top_p=1.0)
    base.update(kw)
    return SamplingSettings(**base)


def softmax(x):
    e = np.exp(np.asarray(x, np.float64) - np.max(x))
    return e / e.sum()


def test_no_filters_is_plain_softmax():
    np.testing.assert_allclose(filtered_distribution(LOGITS, settings()), softmax(LOGITS),
                               rtol=1e-6)


def test_temperature_divides_the_logits():
    np.testing.assert_allclose(filtered_distribution(LOGITS, settings(temperature=0.5)),
                               softmax(LOGITS / 0.5), rtol=1e-6)


def test_top_k_keeps_k_largest_and_renormalises():
    got = filtered_distribution(LOGITS, settings(temperature=2.0, top_k=3))
    # by hand: the three largest logits are ids 4 (3.0), 0 (2.0), 1 (1.0)
    e = np.exp(np.array([3.0, 2.0, 1.0]) / 2.0)
    expected = np.zeros(6)
    expected[[4, 0, 1]] = e / e.sum()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_top_p_keeps_smallest_prefix_reaching_p():
    probs = softmax(LOGITS)
    order = np.argsort(-probs)  # 4, 0, 1, 2, 5, 3
    cum = np.cumsum(probs[order])
    # p just below the mass of the first two -> exactly two kept
    got = filtered_distribution(LOGITS, settings(top_p=float(cum[1]) - 1e-4))
    expected = np.zeros(6)
    expected[order[:2]] = probs[order[:2]] / probs[order[:2]].sum()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # p just above that mass -> a third token is needed
    got = filtered_distribution(LOGITS, settings(top_p=float(cum[1]) + 1e-4))
    assert np.count_nonzero(got) == 3


def test_top_p_always_keeps_one_token():
    got = filtered_distribution(LOGITS, settings(top_p=1e-9))
    assert np.count_nonzero(got) == 1 and got[4] == pytest.approx(1.0)


def test_top_k_then_top_p_then_temperature_together():
    t, k, p = 0.8, 4, 0.7
    got = filtered_distribution(LOGITS, settings(temperature=t, top_k=k, top_p=p))
    # independent: softmax(logits / T), zero all but the k largest, renormalise,
    # keep the nucleus, renormalise again
    q = softmax(LOGITS / t)
    q[np.argsort(-q)[k:]] = 0
    q /= q.sum()
    order = np.argsort(-q)
    keep, total = [], 0.0
    for i in order:
        keep.append(i)
        total += q[i]
        if total >= p:
            break
    expected = np.zeros_like(q)
    expected[keep] = q[keep] / q[keep].sum()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got.sum() == pytest.approx(1.0, abs=1e-6)


def test_top_k_keeps_ties_with_the_kth():
    logits = np.array([1.0, 2.0, 2.0, 0.0], np.float32)
    got = filtered_distribution(logits, settings(top_k=1))
    np.testing.assert_allclose(got, [0, 0.5, 0.5, 0], rtol=1e-6)


@pytest.mark.parametrize("kw", [dict(temperature=0.0), dict(greedy=True, temperature=1.5)])
def test_greedy_puts_all_mass_on_the_argmax(kw):
    got = filtered_distribution(LOGITS, settings(**kw))
    assert got[4] == 1.0 and got.sum() == 1.0


def test_repetition_penalty_like_transformers():
    got = apply_repetition_penalty(LOGITS, [0, 3, 3, 5], 2.0)
    # positive logits divided, negative multiplied, zero unchanged, others untouched
    np.testing.assert_allclose(got, [1.0, 1.0, 0.5, -2.0, 3.0, 0.0])


def test_repetition_penalty_can_change_the_greedy_choice():
    logits = np.array([3.0, 2.0, 0.0], np.float32)
    assert filtered_distribution(logits, settings(temperature=0), [0])[0] == 1.0
    got = filtered_distribution(logits, settings(temperature=0, repetition_penalty=2.0), [0])
    assert got[1] == 1.0


def test_support_is_sorted_and_sums_to_one():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=1000).astype(np.float32) * 3
    ids, probs = filtered_support(logits, settings(temperature=0.7, top_k=50, top_p=0.9))
    assert 1 <= len(ids) <= 50
    assert np.all(np.diff(probs) <= 0)
    assert probs.sum() == pytest.approx(1.0)
    dense = filtered_distribution(logits, settings(temperature=0.7, top_k=50, top_p=0.9))
    np.testing.assert_allclose(dense[ids], probs, rtol=1e-6)


def test_sampling_follows_the_distribution_and_the_seed():
    ids, probs = np.array([7, 3, 9]), np.array([0.6, 0.3, 0.1])
    draws = [sample_from(ids, probs, np.random.default_rng(0)) for _ in range(3)]
    assert len(set(draws)) == 1  # same seed, same draw
    rng = np.random.default_rng(5)
    counts = {i: 0 for i in ids.tolist()}
    for _ in range(4000):
        counts[sample_from(ids, probs, rng)] += 1
    assert counts[7] / 4000 == pytest.approx(0.6, abs=0.03)
    assert counts[9] / 4000 == pytest.approx(0.1, abs=0.02)


@pytest.mark.parametrize("kw", [dict(max_new_tokens=0), dict(temperature=-1.0),
                                dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5),
                                dict(repetition_penalty=0.0), dict(seed=-3)])
def test_bad_settings_are_explained(kw):
    with pytest.raises(ExplorerError):
        SamplingSettings(**kw).validate()


def test_stop_sequences():
    assert find_stop("Hello.\nUser:", ("User:", "\n\n")) == "User:"
    assert find_stop("Hello", ("User:",)) is None
    assert SamplingSettings(stop=("", "x")).stop == ("x",)


def test_core_generation_modules_do_not_import_torch():
    code = ("import sys, explorer.core.sampling, explorer.core.generation_types; "
            "print('torch' in sys.modules, 'PySide6' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("scale", [0.5, 3.0, 8.0])
@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.999])
def test_top_p_on_a_large_vocabulary_matches_a_full_sort(scale, top_p):
    rng = np.random.default_rng(int(scale * 10))
    logits = (rng.normal(size=49152) * scale).astype(np.float32)
    got = filtered_distribution(logits, settings(top_p=top_p))
    probs = softmax(logits)
    order = np.argsort(-probs, kind="stable")
    before = np.cumsum(probs[order]) - probs[order]
    kept = order[before < top_p]
    expected = np.zeros_like(probs)
    expected[kept] = probs[kept] / probs[kept].sum()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)

"""Ablation records: head lists, checks, KL and the report layout (numpy only)."""

import math

import numpy as np
import pytest

from explorer.core.ablation import (
    Ablation,
    AblationError,
    AblationScan,
    comparison_dict,
    kl_divergence,
    parse_heads,
    top_entries,
)


def test_parse_heads_reads_layer_dot_head_pairs():
    assert parse_heads("3.2,5.1") == {(3, 2), (5, 1)}
    assert parse_heads(" 0.0 , 12.7 ") == {(0, 0), (12, 7)}
    assert parse_heads("3.2,3.2") == {(3, 2)}


@pytest.mark.parametrize("text", ["", "3", "3.", ".2", "3.x", "3.2,,5.1", "-1.2", "3.2.1",
                                  "3:2", "three.two", "3.2;5.1", "٣.2"])
def test_malformed_heads_are_refused_with_the_bad_part(text):
    with pytest.raises(AblationError, match="LAYER.HEAD"):
        parse_heads(text)


def test_check_names_an_unknown_head_and_the_model_size():
    Ablation(frozenset({(29, 8)})).check(30, 9)
    with pytest.raises(AblationError, match=r"Head 30\.1 does not exist.*30 layers \(0-29\)"):
        Ablation(frozenset({(30, 1), (2, 2)})).check(30, 9)
    with pytest.raises(AblationError, match=r"Head 2\.9 does not exist"):
        Ablation(frozenset({(2, 9)})).check(30, 9)


def test_unknown_mode_is_refused():
    with pytest.raises(AblationError, match="zero or mean"):
        Ablation(frozenset(), "resample")


def test_toggle_and_group_by_layer():
    ablation = Ablation().toggled(3, 2).toggled(1, 0).toggled(3, 0)
    assert ablation.by_layer() == {1: (0,), 3: (0, 2)}
    assert ablation.toggled(3, 2).heads == {(1, 0), (3, 0)}
    assert ablation.describe() == "1.0, 3.0, 3.2"
    assert parse_heads(ablation.describe().replace(" ", "")) == ablation.heads
    assert Ablation().empty and not ablation.empty
    assert ablation.with_mode("mean").heads == ablation.heads


def test_kl_matches_the_definition_term_by_term():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(50)).astype(np.float32)
    q = rng.dirichlet(np.ones(50)).astype(np.float32)
    p[3] = 0.0
    p /= p.sum()
    expected = sum(float(a) * (math.log(float(a)) - math.log(float(b)))
                   for a, b in zip(p, q, strict=True) if a > 0)
    assert kl_divergence(p, q) == pytest.approx(expected, rel=1e-9)
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    q[5] = 0.0  # an underflowed probability stays finite
    assert math.isfinite(kl_divergence(p, q))


def test_comparison_dict_has_exactly_the_contract_keys():
    base = np.array([0.1, 0.6, 0.3], np.float32)
    ablated = np.array([0.5, 0.2, 0.3], np.float32)
    report = comparison_dict(base, ablated, 2, lambda i: f"t{i}", k=2)
    assert set(report) == {"base", "ablated", "target", "kl"}
    assert report["base"]["top"] == [{"id": 1, "token": "t1", "prob": pytest.approx(0.6)},
                                     {"id": 2, "token": "t2", "prob": pytest.approx(0.3)}]
    assert [e["id"] for e in report["ablated"]["top"]] == [0, 2]
    assert set(report["target"]) == {"id", "token", "base_prob", "ablated_prob"}
    assert report["target"]["ablated_prob"] == pytest.approx(0.3)
    assert report["kl"] == pytest.approx(0.1 * math.log(0.1 / 0.5) + 0.6 * math.log(0.6 / 0.2), rel=1e-6)


def test_top_entries_sorts_descending():
    ids, probs = top_entries(np.array([0.2, 0.5, 0.05, 0.25], np.float32), 3)
    assert ids.tolist() == [1, 3, 0] and probs.tolist() == pytest.approx([0.5, 0.25, 0.2])


def test_scan_record_freezes_and_ranks_the_strongest_heads():
    delta = np.array([[0.0, -0.5, 0.1], [-2.0, 0.3, -0.1]], np.float32)
    scan = AblationScan(delta, 4, 7, "x", math.log(0.25))
    assert not scan.delta_logprob.flags.writeable
    assert scan.strongest(3) == [(1, 0, -2.0), (0, 1, -0.5), (1, 2, pytest.approx(-0.1))]
    assert scan.base_prob == pytest.approx(0.25)
    with pytest.raises(ValueError):
        AblationScan(np.zeros(3), 0, 0, "x", 0.0)

"""The attribution record: checked inputs and the exact JSON of the attribute command."""

import json

import numpy as np
import pytest

from explorer.core.attribution import (
    METHODS,
    Attribution,
    AttributionError,
    IntegratedGradientsSummary,
    Target,
    check_baseline,
    check_steps,
    parse_methods,
)
from explorer.core.faithfulness import FaithfulnessCurve


def record():
    scores = {"grad_x_input": [0.5, -0.25, 0.0], "rollout": [0.2, 0.8, 0.0]}
    curve = FaithfulnessCurve("random", [1, 0], [0, 1, 2], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5])
    ig = IntegratedGradientsSummary(steps=8, baseline="zero", f_x=-0.7, f_baseline=-2.0, delta=0.05)
    return Attribution(("a", "b", "c"), [5, 6, 7], 1, Target(9, "Ġx", 0.5), scores, ig=ig,
                       faithfulness={"random": curve})


def test_json_has_exactly_the_contract_keys():
    data = json.loads(json.dumps(record().to_json()))
    assert list(data) == ["tokens", "position", "target", "scores", "ig", "aopc"]
    assert data["target"] == {"id": 9, "token": "Ġx", "prob": 0.5}
    assert set(data["ig"]) == {"steps", "baseline", "f_x", "f_baseline", "delta"}
    assert data["scores"]["grad_x_input"] == [0.5, -0.25, 0.0]
    assert data["aopc"]["random"] == {"comprehensiveness": pytest.approx((0.1 + 0.4) / 2),
                                      "sufficiency": pytest.approx((0.2 + 0.0) / 2)}


def test_ranked_lists_tokens_up_to_the_position():
    assert record().ranked("grad_x_input") == [(0, 0.5), (1, -0.25)]
    assert record().ranked("rollout") == [(1, pytest.approx(0.8)), (0, pytest.approx(0.2))]


def test_an_encoder_ranks_every_token():
    encoder = Attribution(("a", "b", "c"), [5, 6, 7], 0, None, {"rollout": [0.5, 0.1, 0.4]},
                          causal=False)
    assert encoder.scored_tokens == 3
    assert [i for i, _ in encoder.ranked("rollout")] == [0, 2, 1]
    assert record().scored_tokens == 2


def test_scores_must_have_one_value_per_token():
    with pytest.raises(ValueError):
        Attribution(("a", "b"), [1, 2], 0, None, {"rollout": [1.0]})
    with pytest.raises(ValueError):
        Attribution(("a", "b"), [1, 2], 2, None, {})
    frozen = record().scores["rollout"]
    assert frozen.dtype == np.float32 and not frozen.flags.writeable


def test_methods_steps_and_baselines_are_checked():
    assert parse_methods("rollout, grad_x_input,rollout") == ("rollout", "grad_x_input")
    assert parse_methods(list(METHODS)) == METHODS
    for bad in ("", "saliency", "rollout,lime"):
        with pytest.raises(AttributionError):
            parse_methods(bad)
    with pytest.raises(AttributionError, match="encoder"):
        parse_methods("rollout,attention", causal=False)
    assert parse_methods("rollout", causal=False) == ("rollout",)
    for bad in (0, -3, 10**6):
        with pytest.raises(AttributionError):
            check_steps(bad)
    assert check_steps(64) == 64
    with pytest.raises(AttributionError):
        check_baseline("mask")


def test_relative_gap():
    ig = IntegratedGradientsSummary(32, "zero", f_x=-1.0, f_baseline=-3.0, delta=-0.5)
    assert ig.completeness_gap == 0.5 and ig.relative_gap == 0.25

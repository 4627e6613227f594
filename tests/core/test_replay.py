"""Branch recipes: what a session stores to regenerate the Playground's text."""

import pytest

from explorer.core.replay import BranchRecipe, read_recipes
from explorer.core.sampling import SamplingSettings


def recipe(**changes):
    base = BranchRecipe("Once", False, SamplingSettings(max_new_tokens=9, temperature=0.7, seed=42,
                                                        stop=("\n\n",)),
                        None, 0, 0, (5, 6, 7), False)
    return BranchRecipe(**{**base.__dict__, **changes})


def test_round_trip_through_plain_json_values():
    items = [recipe().to_dict(), recipe(parent=0, index=1, token_id=9, stopped=True).to_dict()]
    assert read_recipes(items) == [recipe(), recipe(parent=0, index=1, token_id=9, stopped=True)]


def test_a_stopped_run_replays_exactly_as_many_tokens_as_it_made():
    assert recipe(stopped=True).replay_settings().max_new_tokens == 3
    assert recipe().replay_settings().max_new_tokens == 9


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(parent=0), "parent must be an earlier branch"),
    (lambda d: d["settings"].pop("seed"), "needs the seed"),
    (lambda d: d["settings"].update(top_p=3.0), "top-p"),
    (lambda d: d["settings"].update(greedy=1), "greedy has the wrong type"),
    (lambda d: d.update(generated_ids=[1, -2]), "generated_ids"),
    (lambda d: d.update(prompt=None), "text prompt"),
    (lambda d: d.update(index=True), "index and token_id"),
])
def test_malformed_recipes_are_refused_with_the_reason(change, message):
    data = recipe().to_dict()
    change(data)
    with pytest.raises(ValueError, match=message):
        read_recipes([data])

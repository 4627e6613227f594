"""The lens record: shapes are checked, the archive reads back, pieces are looked up."""

import numpy as np
import pytest

from explorer.core.errors import ExplorerError
from explorer.core.lens import LensResult, load_lens_npz, save_lens_npz, summary, vocabulary_table


def make(layers=3, tokens=4, k=2, vocab=20, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(layers, tokens, vocab))
    lse = np.log(np.exp(logits).sum(-1))
    probs = np.exp(logits - lse[..., None])
    order = np.argsort(-probs, -1)[..., :k]
    final = probs[-1].argmax(-1)
    ids, pieces = vocabulary_table(np.concatenate([order.ravel(), final]), lambda xs: [f"t{x}" for x in xs])
    kl = (probs[-1][None] * (np.log(probs[-1][None]) - np.log(probs))).sum(-1)
    lens = LensResult(
        token_ids=np.arange(tokens), tokens=[f"p{i}" for i in range(tokens)], lens_ids=order,
        lens_probs=np.take_along_axis(probs, order, -1), lens_final_ids=final,
        lens_final_probs=probs[:, np.arange(tokens), final], lens_kl=kl, lens_logsumexp=lse,
        vocab_ids=ids, vocab_pieces=pieces, model_name="m", timings={"lens_s": 1.5})
    return lens, logits, probs


def test_round_trip_through_npz(tmp_path):
    lens, _, _ = make()
    path = save_lens_npz(lens, tmp_path / "a" / "lens.npz")
    with np.load(path) as data:  # no pickle needed
        assert {"lens_ids", "lens_probs", "lens_final_probs", "lens_kl"} <= set(data.files)
    back = load_lens_npz(path)
    for name in ("token_ids", "lens_ids", "lens_probs", "lens_final_ids", "lens_final_probs",
                 "lens_kl", "lens_logsumexp", "vocab_ids"):
        np.testing.assert_array_equal(getattr(back, name), getattr(lens, name))
    assert back.tokens == lens.tokens and back.vocab_pieces == lens.vocab_pieces
    assert back.model_name == "m" and back.timings == {"lens_s": 1.5}


def test_arrays_are_read_only_and_shapes_checked():
    lens, _, _ = make()
    assert not lens.lens_probs.flags.writeable
    with pytest.raises(ValueError, match="lens_kl"):
        LensResult(**{**lens.__dict__, "lens_kl": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="K"):
        LensResult(**{**lens.__dict__, "lens_probs": np.zeros((3, 4, 5))})


def test_pieces_and_typed_token_probabilities():
    lens, logits, probs = make()
    assert lens.pieces(lens.lens_ids[1, 2]) == [f"t{i}" for i in lens.lens_ids[1, 2]]
    with pytest.raises(KeyError):
        lens.pieces([999])
    token = 7
    np.testing.assert_allclose(lens.token_probs(logits[..., token]), probs[..., token], rtol=1e-5)


def test_summary_lists_every_layer_at_a_position():
    lens, _, probs = make()
    view = summary(lens, position=-1, shown=2)
    assert view["position"] == 3 and len(view["by_layer"]) == 3
    assert view["by_layer"][0]["top"][0]["prob"] == pytest.approx(probs[0, 3].max(), rel=1e-6)
    assert view["final_token"]["token"] == f"t{probs[-1, 3].argmax()}"


def test_not_a_lens_archive(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, something=np.zeros(3))
    with pytest.raises(ExplorerError, match="not a logit-lens archive"):
        load_lens_npz(path)

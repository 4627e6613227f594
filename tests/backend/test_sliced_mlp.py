"""A long forward's MLP blocks run on slices of positions, with the model's own output."""

import numpy as np
import pytest
import torch

from explorer.backend import sliced_mlp
from explorer.backend.engine import analyze
from explorer.backend.sliced_mlp import mlps_in_slices, sliceable_mlps
from tests.support.tiny_models import loaded, tiny_gemma3, tiny_gpt2, tiny_llama

PROMPT = "The cat sat on the mat. The dog sat on the log. Attention is all you need."


def recorded_mlp_lengths(monkeypatch, model) -> list[int]:
    """The sequence lengths every MLP block's own forward is called with, from now on."""
    lengths: list[int] = []
    cls = type(sliceable_mlps(model)[0])
    original = cls.forward

    def forward(self, hidden):
        lengths.append(hidden.shape[1])
        return original(self, hidden)

    monkeypatch.setattr(cls, "forward", forward)
    return lengths


@pytest.mark.parametrize("build", [tiny_gpt2, tiny_llama, tiny_gemma3])
def test_sliced_mlps_give_the_whole_forward_logits(monkeypatch, build):
    model = build()
    ids = torch.randint(0, 200, (1, 23), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        whole = model(input_ids=ids).logits
        lengths = recorded_mlp_lengths(monkeypatch, model)
        with mlps_in_slices(model, rows=5) as wrapped:
            sliced = model(input_ids=ids).logits
    layers = model.config.num_hidden_layers
    assert wrapped == layers
    assert lengths == [5, 5, 5, 5, 3] * layers  # every block ran on slices, none whole
    torch.testing.assert_close(sliced, whole, rtol=0, atol=1e-5)
    assert all("forward" not in vars(m) for m in sliceable_mlps(model))  # put back


def test_short_inputs_and_other_calls_run_whole(monkeypatch):
    model = tiny_llama()
    lengths = recorded_mlp_lengths(monkeypatch, model)
    with torch.inference_mode(), mlps_in_slices(model, rows=50):
        model(input_ids=torch.arange(1, 24)[None])
    assert lengths == [23] * 3


def test_a_lazy_run_slices_its_mlps_and_keeps_its_numbers(monkeypatch):
    model = loaded("llama")
    whole = analyze(model, PROMPT, attention="lazy")
    monkeypatch.setattr(sliced_mlp, "ROWS", 7)
    lengths = recorded_mlp_lengths(monkeypatch, model.model)
    sliced = analyze(model, PROMPT, attention="lazy")
    assert lengths and max(lengths) == 7
    np.testing.assert_array_equal(sliced.topk_ids, whole.topk_ids)
    np.testing.assert_allclose(sliced.topk_probs, whole.topk_probs, atol=1e-6)
    np.testing.assert_allclose(sliced.queries, whole.queries, atol=1e-5)

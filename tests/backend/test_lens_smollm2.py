"""Integration on the embedded SmolLM2: the lens equals transformers' own hidden states
read out by hand, and the induction probe finds induction heads."""

import numpy as np
import pytest
import torch

from explorer.backend.engine import analyze
from explorer.backend.head_scores import induction_probe
from explorer.backend.lens import logit_lens
from explorer.core.head_scores import score_heads

pytestmark = pytest.mark.embedded

PROMPT = ("The capital of France is Paris. The capital of Germany is Berlin. "
          "The capital of Italy is Rome. The capital of France is")


def test_lens_equals_hidden_states_through_norm_and_head(smollm2):
    lens = logit_lens(smollm2, PROMPT, top_k=5)
    model = smollm2.model
    ids = lens.token_ids.tolist()
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        own = torch.log_softmax(out.logits[0].double(), -1)
        # hidden_states[l + 1] is the residual after layer l, except the last entry, which
        # transformers has already normed: the last layer is the model's own output
        for layer in range(smollm2.info.layers):
            if layer < smollm2.info.layers - 1:
                logits = model.lm_head(model.model.norm(out.hidden_states[layer + 1][0])).double()
            else:
                logits = model.lm_head(out.hidden_states[-1][0]).double()
            logp = torch.log_softmax(logits, -1)
            top = torch.topk(logp, 5, dim=-1)
            np.testing.assert_array_equal(lens.lens_ids[layer], top.indices.numpy())
            np.testing.assert_allclose(lens.lens_probs[layer], top.values.exp().numpy(), atol=2e-5)
            best = own.argmax(-1)
            np.testing.assert_allclose(lens.lens_final_probs[layer],
                                       logp.gather(1, best[:, None])[:, 0].exp().numpy(), atol=2e-5)
            kl = (own.exp() * (own - logp)).sum(-1).numpy()
            np.testing.assert_allclose(lens.lens_kl[layer], kl, atol=1e-4, rtol=1e-4)
    last = own.exp().numpy()
    np.testing.assert_allclose(lens.lens_final_probs[-1], last.max(-1), atol=1e-4)
    assert lens.pieces([lens.lens_final_ids[-1]]) == ["ĠParis"]
    # the answer forms late: early layers put little mass on it and are far from the output
    assert lens.lens_final_probs[:5, -1].max() < 0.05 < lens.lens_final_probs[-1, -1]
    assert lens.lens_kl[:5, -1].min() > lens.lens_kl[-3:, -1].max()


def test_induction_probe_finds_induction_heads(smollm2):
    scores = induction_probe(smollm2)
    induction = scores.score("induction")
    top = scores.top("induction", 5)
    print("SmolLM2 induction heads (layer, head, score):", top)
    assert top[0][2] > 0.5  # a real induction head puts most of its attention on j + 1
    assert np.median(induction) < 0.1  # … and most heads do not
    assert all(layer > 0 for layer, _, _ in top)  # induction needs an earlier layer's help
    # on the probe's second half, the top head attends to the token after the earlier copy
    assert scores.top("induction", 1)[0][:2] != scores.top("previous_token", 1)[0][:2]


def test_head_scores_of_lazy_and_full_runs_agree(smollm2):
    full = score_heads(analyze(smollm2, PROMPT, attention="full"))
    lazy = score_heads(analyze(smollm2, PROMPT, attention="lazy"))
    np.testing.assert_allclose(lazy.values, full.values, atol=2e-4)
    assert lazy.kv_heads[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]

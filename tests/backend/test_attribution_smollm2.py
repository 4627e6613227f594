"""Integrated gradients on the embedded SmolLM2: what happens to the completeness gap as the
steps grow. Measured here (docs/attribution.md): it does NOT shrink. The path from a zero
(or eos) baseline runs through 30 RMSNorm layers, whose output changes abruptly where the
interpolated embeddings are tiny, so the midpoint sums jump around instead of converging:
zero baseline |δ| = 3.4, 2.2, 26.6 nats at 8, 32, 128 steps (f(x) − f(b) ≈ 10 nats).
This test pins that down honestly rather than hiding it.

Run under the shared lock: flock /work/heavy.lock .venv/bin/python -m pytest -m embedded …
"""

import numpy as np
import pytest
import torch

from explorer.backend.attribution import attribute

pytestmark = pytest.mark.embedded
DEFAULT_PROMPT = ("Classify this review:\nI loved this movie!\nSentiment: Positive\n\n"
                  "Classify this review:\nI don't like this chair.\nSentiment:")  # the app's default
STEPS = (8, 32, 128)


@pytest.mark.parametrize("baseline", ["zero", "eos"])
def test_completeness_gap_stays_wide_as_steps_grow(smollm2, baseline):
    records = [attribute(smollm2, DEFAULT_PROMPT, methods=["integrated_gradients"], steps=steps,
                         baseline=baseline, faithfulness=False) for steps in STEPS]
    ids = smollm2.tokenizer(DEFAULT_PROMPT)["input_ids"]
    with torch.no_grad():
        logits = smollm2.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    plain = float(logits.log_softmax(-1)[records[0].target.id])
    print(f"\n{baseline} baseline, target {records[0].target.token!r}, f(x) = {plain:.4f}")
    for record in records:
        ig = record.ig
        total = float(record.scores["integrated_gradients"].astype(np.float64).sum())
        print(f"  {ig.steps:4d} steps: f(b) = {ig.f_baseline:.4f}  Σ scores = {total:.4f}  "
              f"delta = {ig.delta:+.4f} ({100 * ig.relative_gap:.0f}% of f(x) − f(b))")
        # the reported numbers are consistent, whatever the steps
        assert ig.delta == pytest.approx(total - (ig.f_x - ig.f_baseline), abs=1e-6)
        assert ig.f_x == pytest.approx(plain, abs=1e-4)
        assert ig.f_baseline == pytest.approx(records[0].ig.f_baseline, abs=1e-5)
        assert abs(ig.f_x - ig.f_baseline) > 5.0  # a real change to explain
        # documented behaviour: the gap stays wide (over 10% and over a nat) at every N
        assert ig.relative_gap > 0.10 and ig.completeness_gap > 1.0
    gaps = [r.ig.completeness_gap for r in records]
    # and it does not shrink steadily: 128 steps are no better than 32
    assert gaps[2] > gaps[1]

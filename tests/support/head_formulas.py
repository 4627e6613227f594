"""The head-score formulas of issue 10 as plain loops (the tests' independent reference)."""

import math

import numpy as np


def loop_scores(a, ids):
    """Every score of one head's map ``a`` [T, T], straight from the definitions."""
    t = len(ids)
    first = sum(a[i, 0] for i in range(t)) / t
    previous = sum(a[i, i - 1] for i in range(1, t)) / (t - 1)
    self_ = sum(a[i, i] for i in range(t)) / t
    dup, ind = [], []
    for i in range(t):
        earlier = [j for j in range(i) if ids[j] == ids[i]]
        if earlier:
            j = max(earlier)
            dup.append(a[i, j])
            ind.append(a[i, j + 1])
    entropy = sum(-sum(float(x) * math.log2(float(x)) for x in a[i] if x > 0) for i in range(t)) / t
    return [first, previous, self_, np.mean(dup) if dup else np.nan,
            np.mean(ind) if ind else np.nan, entropy]

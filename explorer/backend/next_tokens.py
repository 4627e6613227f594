"""Next-token arrays of a run, from its logits, filled in chunks of positions.

The output head's logits for every position are the largest tensor of a long run
([T, V]: 1,024 x 49,152 float32 is 0.2 GB, at 8,192 tokens 1.6 GB), so they are never
built whole: rows come from a function (start, end) -> logits [end - start, V] and only
the top-k, the log-sum-exp and the prompt's own next token of each row are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from explorer.core.errors import Cancelled

Arrays = tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, np.ndarray, np.ndarray]


class NextTokenArrays:
    """The next-token arrays of a prompt of T tokens, K candidates, vocabulary V:

    top_ids int64[T, K], top_probs float32[T, K], top_logits float32[T, K] (sorted
    descending), last_probs float32[V] (the distribution after the last token), probs
    float32[T] and ranks int64[T] of the prompt's own next token (1-based rank in the full
    distribution; NaN / -1 at the last position).

    The last position is computed on construction (it is what a run shows first); the
    others by ``fill_next(count)`` (in order) or ``fill_all``. Rows not computed yet
    hold ids -1, NaN probabilities and logits, NaN / -1 for the next token.

    ``logits``: a tensor [T, V] or a function (start, end) -> rows [start:end] (any float
    dtype; everything is computed in float32).
    """

    def __init__(self, logits: Any, ids: list[int], k: int) -> None:
        import torch

        self._rows: Callable[[int, int], Any] = logits if callable(logits) else \
            (lambda start, end: logits[start:end])
        self.num = len(ids)
        with torch.inference_mode():
            last = self._rows(self.num - 1, self.num).float()
        self.vocab = int(last.shape[-1])
        k = max(1, min(k, self.vocab))
        self.top_ids = np.full((self.num, k), -1, np.int64)
        self.top_probs = np.full((self.num, k), np.nan, np.float32)
        self.top_logits = np.full((self.num, k), np.nan, np.float32)
        self.probs = np.full(self.num, np.nan, np.float32)
        self.ranks = np.full(self.num, -1, np.int64)
        self._following = torch.tensor(ids[1:] + [0], dtype=torch.long)
        with torch.inference_mode():
            log_norm = self._write(self.num - 1, last)
            self.last_probs = torch.exp(last[-1] - log_norm[-1]).cpu().numpy().astype(np.float32)
        self.filled = 0
        """Positions 0..filled-1 are computed (and the last one, always)."""

    @property
    def done(self) -> bool:
        """Every position's row is computed."""
        return self.filled >= self.num - 1

    def fill_next(self, count: int) -> bool:
        """Compute the next ``count`` positions not computed yet; True when all are."""
        import torch

        if not self.done:
            end = min(self.filled + max(1, count), self.num - 1)
            with torch.inference_mode():  # also when called after the forward's own block
                self._write(self.filled, self._rows(self.filled, end).float())
            self.filled = end
        return self.done

    def fill_all(self, chunk: int = 256,
                 is_cancel_requested: Callable[[], bool] | None = None) -> None:
        """Compute every position not computed yet, ``chunk`` at a time (Cancelled between
        chunks when ``is_cancel_requested``)."""
        while not self.done:
            if is_cancel_requested is not None and is_cancel_requested():
                raise Cancelled("cancelled while computing next-token probabilities")
            self.fill_next(chunk)

    @property
    def arrays(self) -> Arrays:
        """(top_ids, top_probs, top_logits), last_probs, probs, ranks (the arrays
        themselves, not copies)."""
        return (self.top_ids, self.top_probs, self.top_logits), self.last_probs, self.probs, self.ranks

    def _write(self, start: int, block: Any) -> Any:
        """Store the rows of float32 logits ``block`` [n, V] for positions start..start+n-1;
        returns their log-sum-exp [n, 1]."""
        import torch

        end = start + block.shape[0]
        k = self.top_ids.shape[1]
        log_norm = torch.logsumexp(block, dim=-1, keepdim=True)
        values, indices = torch.topk(block, k, dim=-1)
        self.top_ids[start:end] = indices.cpu().numpy()
        self.top_logits[start:end] = values.cpu().numpy()
        self.top_probs[start:end] = torch.exp(values - log_norm).cpu().numpy()
        real = min(end, self.num - 1) - start  # rows that have a following token
        if real > 0:
            following = self._following[start : start + real, None].to(block.device)
            chosen = block[:real].gather(1, following)
            self.probs[start : start + real] = (chosen - log_norm[:real])[:, 0].exp().cpu().numpy()
            self.ranks[start : start + real] = ((block[:real] > chosen).sum(dim=-1) + 1).cpu().numpy()
        return log_norm


def next_token_arrays(logits: Any, ids: list[int], k: int, chunk: int = 256,
                      is_cancel_requested: Callable[[], bool] | None = None) -> Arrays:
    """Every position's next-token arrays at once (see ``NextTokenArrays``):
    (top_ids, top_probs, top_logits), last_probs, probs, ranks."""
    arrays = NextTokenArrays(logits, ids, k)
    arrays.fill_all(chunk, is_cancel_requested)
    return arrays.arrays

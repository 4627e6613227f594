"""Tables the panels export: the selected head's attention and the probability bars."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from explorer.core.tokens import display_piece
from explorer.core.types import RunResult


def unique_labels(result: RunResult) -> list[str]:
    """Readable token labels, made unique with their position: "3:␣the"."""
    style = result.model_info.piece_style
    return [f"{i}:{display_piece(p, style)}" for i, p in enumerate(result.tokens)]


def write_attention_csv(matrix: np.ndarray, result: RunResult, path: str | Path) -> Path:
    """float[query, key] as CSV: first row = key labels, first column = query labels."""
    labels = unique_labels(result)
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query \\ key", *labels])
        for label, row in zip(labels, np.asarray(matrix, dtype=np.float64), strict=True):
            writer.writerow([label, *(f"{v:.6g}" for v in row)])
    return path


def write_probabilities_csv(result: RunResult, position: int, path: str | Path) -> Path:
    """The top-k after ``position``: rank, token_id, token, probability, logit."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "token_id", "token", "probability", "logit"])
        for k in range(result.top_k):
            writer.writerow([k + 1, int(result.topk_ids[position, k]), result.topk_tokens[position][k],
                             f"{float(result.topk_probs[position, k]):.8g}",
                             f"{float(result.topk_logits[position, k]):.6g}"])
    return path

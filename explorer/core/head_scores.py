"""The head atlas: one number per head and behaviour, read from the attention maps.

A = one head's attention map (rows = queries, columns = keys), read through
``explorer.core.attention.layer_maps`` so full and lazy runs are scored the same way.

    first_token      mean over queries i of A[i, 0]
    previous_token   mean over i ≥ 1 of A[i, i−1]
    self             mean over queries of A[i, i]
    duplicate_token  over the queries i whose token occurred earlier, with j the latest
                     earlier position of that token: mean of A[i, j]
    induction        over the same queries: mean of A[i, j+1]
    entropy_bits     mean over queries of −Σ_k A[i, k]·log₂ A[i, k]

``duplicate_token`` and ``induction`` are NaN when no token repeats. Rows are read in
chunks (a lazy map at thousands of tokens is rebuilt a block of rows at a time), with
progress and cancellation through a ``TaskState``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from explorer.core.attention import attention_shape, layer_maps, token_count
from explorer.core.errors import ExplorerError
from explorer.core.progress import TaskState

SCORE_NAMES: tuple[str, ...] = ("first_token", "previous_token", "self", "duplicate_token",
                                "induction", "entropy_bits")
CSV_COLUMNS: tuple[str, ...] = ("layer", "head", "kv_head", *SCORE_NAMES)
"""Columns of ``attention-explorer heads --out heads.csv``, in this order (a contract)."""
ROW_BLOCK_VALUES = 1_000_000
"""Rows per chunk are chosen so a layer's [head, rows, keys] block holds about this many values."""


@dataclass(frozen=True)
class HeadScores:
    """Scores of every head.

    values:   float32[score, layer, head], scores in SCORE_NAMES order
    kv_heads: int64[layer, head]  the key/value head each query head reads
    source:   what was scored ("prompt", or the induction probe's description)
    token_ids: int64[T] the scored sequence
    """

    values: np.ndarray
    kv_heads: np.ndarray
    token_ids: np.ndarray
    source: str = "prompt"
    model_name: str = ""

    def __post_init__(self) -> None:
        for name, dtype in (("values", np.float32), ("kv_heads", np.int64), ("token_ids", np.int64)):
            array = np.ascontiguousarray(getattr(self, name), dtype=dtype)
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        if self.values.ndim != 3 or self.values.shape[0] != len(SCORE_NAMES):
            raise ValueError(f"values must be [{len(SCORE_NAMES)}, L, H], got {self.values.shape}")
        if self.kv_heads.shape != self.values.shape[1:]:
            raise ValueError("kv_heads must be [L, H] like the scores")

    @property
    def shape(self) -> tuple[int, int]:
        """(layers, heads)."""
        return int(self.values.shape[1]), int(self.values.shape[2])

    def score(self, name: str) -> np.ndarray:
        """float32[layer, head] of one score."""
        if name not in SCORE_NAMES:
            raise KeyError(f"unknown score {name!r}; one of {', '.join(SCORE_NAMES)}")
        return self.values[SCORE_NAMES.index(name)]

    def rows(self) -> list[dict[str, float | int]]:
        """One dict per head (layer-major), keys CSV_COLUMNS."""
        layers, heads = self.shape
        out = []
        for layer in range(layers):
            for head in range(heads):
                row: dict[str, float | int] = {"layer": layer, "head": head,
                                               "kv_head": int(self.kv_heads[layer, head])}
                for index, name in enumerate(SCORE_NAMES):
                    row[name] = float(self.values[index, layer, head])
                out.append(row)
        return out

    def top(self, name: str, count: int = 5) -> list[tuple[int, int, float]]:
        """The ``count`` highest-scoring heads for ``name``: (layer, head, score), NaN last."""
        values = self.score(name)
        flat = np.where(np.isnan(values), -np.inf, values).reshape(-1)
        order = np.argsort(-flat, kind="stable")[:count]
        heads = values.shape[1]
        return [(int(i // heads), int(i % heads), float(values.reshape(-1)[i])) for i in order]


def latest_earlier(token_ids: np.ndarray) -> np.ndarray:
    """int64[T]: for each position the latest earlier position holding the same token id,
    -1 where the token has not occurred before."""
    seen: dict[int, int] = {}
    out = np.full(len(token_ids), -1, dtype=np.int64)
    for i, token in enumerate(np.asarray(token_ids).tolist()):
        if token in seen:
            out[i] = seen[token]
        seen[token] = i
    return out


def kv_head_table(layers: int, heads: int, group_size: int = 1, spec: Any = None) -> np.ndarray:
    """int64[layer, head]: the key/value head of every query head, from a lazy run's
    AttentionSpec when there is one, else ``head // group_size`` (grouped-query attention;
    identity without it)."""
    if spec is not None:
        return np.asarray([list(layer.kv_map) for layer in spec.layers], dtype=np.int64)
    return np.tile(np.arange(heads, dtype=np.int64) // max(1, group_size), (layers, 1))


def score_heads(result: Any, task: TaskState | None = None, *, source: str = "prompt",
                group_size: int | None = None, model_name: str | None = None) -> HeadScores:
    """Score every head of ``result``: a RunResult in any attention mode, or a mapping with
    ``attentions`` float[L, H, T, T] and ``token_ids`` int[T] (then ``group_size`` and
    ``model_name`` describe the model)."""
    task = task or TaskState()
    if getattr(result, "key_tokens", None) is not None:
        raise ExplorerError("Head scores need self-attention; this run's keys are other tokens "
                            "(cross-attention).")
    token_ids = np.asarray(result["token_ids"] if isinstance(result, Mapping) else result.token_ids)
    layers, heads = attention_shape(result)
    num = token_count(result)
    if num != len(token_ids):
        raise ExplorerError(f"The maps span {num} tokens but the run has {len(token_ids)}.")
    values = score_maps(lambda layer, rows: layer_maps(result, layer, rows=rows), token_ids,
                        layers, heads, task)
    info = getattr(result, "model_info", None)
    if group_size is None:
        group_size = info.group_size if info is not None else 1
    if model_name is None:
        model_name = info.name if info is not None else ""
    kv_heads = kv_head_table(layers, heads, group_size, getattr(result, "attention_spec", None))
    return HeadScores(values, kv_heads, token_ids, source, model_name)


def score_maps(maps: Callable[[int, np.ndarray], np.ndarray], token_ids: np.ndarray, layers: int,
               heads: int, task: TaskState | None = None) -> np.ndarray:
    """float32[score, layer, head] from ``maps(layer, rows) -> float32[head, len(rows), T]``."""
    task = task or TaskState()
    num = len(token_ids)
    if num == 0:
        raise ExplorerError("There are no tokens to score.")
    earlier = latest_earlier(token_ids)
    repeats = int((earlier >= 0).sum())
    sums = np.zeros((len(SCORE_NAMES), layers, heads), dtype=np.float64)
    block = max(1, min(num, ROW_BLOCK_VALUES // max(1, heads * num)))
    chunks = math.ceil(num / block)
    for layer in range(layers):
        for index, start in enumerate(range(0, num, block)):
            rows = np.arange(start, min(start + block, num), dtype=np.int64)
            block_maps = np.asarray(maps(layer, rows), dtype=np.float32)
            if block_maps.shape != (heads, len(rows), num):
                raise ExplorerError(f"The maps span {block_maps.shape[-1]} keys but the scored "
                                    f"sequence has {num} tokens.")
            sums[:, layer] += _block_sums(block_maps, rows, earlier)
            task.progress((layer * chunks + index + 1) / (layers * chunks),
                          f"Scoring heads: layer {layer + 1}/{layers}")
    counts = np.array([num, num - 1, num, repeats, repeats, num], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / np.where(counts > 0, counts, np.nan)[:, None, None]
    return means.astype(np.float32)


def _block_sums(maps: np.ndarray, rows: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """float64[score, head]: each score's sum over the query ``rows`` of one layer's
    ``maps`` float32[head, rows, keys]."""
    local = np.arange(len(rows))
    out = np.zeros((len(SCORE_NAMES), maps.shape[0]), dtype=np.float64)
    out[0] = maps[:, :, 0].sum(axis=1, dtype=np.float64)
    after_first = rows >= 1
    out[1] = maps[:, local[after_first], rows[after_first] - 1].sum(axis=1, dtype=np.float64)
    out[2] = maps[:, local, rows].sum(axis=1, dtype=np.float64)
    repeated = earlier[rows] >= 0
    j = earlier[rows][repeated]
    out[3] = maps[:, local[repeated], j].sum(axis=1, dtype=np.float64)
    out[4] = maps[:, local[repeated], j + 1].sum(axis=1, dtype=np.float64)
    logs = np.zeros_like(maps)
    np.log2(maps, out=logs, where=maps > 0)
    logs *= maps
    out[5] = -logs.sum(axis=(1, 2), dtype=np.float64)
    return out


def write_csv(scores: HeadScores, path: str | Path) -> Path:
    """Write one row per head with CSV_COLUMNS (scores with 6 significant digits)."""
    path = Path(path)
    try:
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for row in scores.rows():
                writer.writerow([row["layer"], row["head"], row["kv_head"],
                                 *(_number(row[name]) for name in SCORE_NAMES)])
    except OSError as exc:
        raise ExplorerError(f"Cannot write '{path}': {exc}") from exc
    return path


def _number(value: float | int) -> str:
    return "nan" if isinstance(value, float) and math.isnan(value) else f"{value:.6g}"


def read_csv(path: str | Path) -> list[dict[str, float]]:
    """The rows of a heads CSV as dicts of floats (for notebooks and tests)."""
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]

"""The engine's file formats: the ``.npz`` archive and the JSON views of a run.

Array names in the archive are a contract with users' notebooks:
token_ids, tokens, offsets, attentions, topk_ids, topk_probs, topk_logits,
topk_tokens, positional, positional_kind, model_info, prompt, timings,
last_probs, actual_next_probs, actual_next_ranks, attention_mode, notes;
a lazy run writes queries float16[L, H, T, D], keys float16[L, KV, T, D] and
attention_spec (JSON) instead of attentions, and a ``none`` run writes no attention.
An export from the window adds export_context (JSON: model, prompt_sha256, position,
layer, head and the view options on screen; see ``explorer.core.export``).
Strings are stored as numpy unicode arrays, so ``np.load(path)`` works with
the default ``allow_pickle=False``.

Queries and keys are written as float16 (half the size). Maps rebuilt from the file
differ from maps rebuilt in memory (float32) by rounding: at most 3.3e-3 on SmolLM2 at
1,500 tokens, measured by ``tests/backend/test_lazy_attention.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from explorer.core.attention import AttentionSpec
from explorer.core.types import ModelInfo, RunResult

FORMAT_VERSION = 2  # 2: attention_mode, lazy queries/keys, notes


def save_npz(result: RunResult, path: str | Path, context: dict[str, str] | None = None) -> Path:
    """Write a run as an uncompressed NumPy archive; returns the path written.

    ``context`` (what was on screen) is stored as the JSON string ``export_context``."""
    result.require_next_tokens("save the run")
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    topk_tokens = np.array(result.topk_tokens, dtype=str) if result.top_k else np.zeros(
        (result.num_tokens, 0), dtype="<U1"
    )
    attention: dict[str, np.ndarray] = {}
    if result.attention_mode == "full":
        attention["attentions"] = result.attentions  # type: ignore[assignment]
    elif result.attention_mode == "lazy":
        assert result.queries is not None and result.keys is not None
        assert result.attention_spec is not None
        attention["queries"] = result.queries.astype(np.float16)
        attention["keys"] = result.keys.astype(np.float16)
        attention["attention_spec"] = np.array(result.attention_spec.to_json())
    extra = {} if context is None else {
        "export_context": np.array(json.dumps(context, ensure_ascii=False))}
    with path.open("wb") as handle:
        np.savez(
            handle,
            token_ids=result.token_ids,
            tokens=np.array(result.tokens, dtype=str),
            offsets=result.offsets,
            **attention,
            attention_mode=np.array(result.attention_mode),
            notes=np.array(json.dumps(list(result.notes))),
            topk_ids=result.topk_ids,
            topk_probs=result.topk_probs,
            topk_logits=result.topk_logits,
            topk_tokens=topk_tokens,
            positional=result.positional,
            positional_kind=np.array(result.positional_kind),
            model_info=np.array(result.model_info.to_json()),
            prompt=np.array(result.prompt),
            timings=np.array(json.dumps(result.timings)),
            last_probs=result.last_probs,
            actual_next_probs=result.actual_next_probs,
            actual_next_ranks=result.actual_next_ranks,
            format_version=np.array(FORMAT_VERSION, dtype=np.int64),
            **extra,
        )
    return path


def load_npz(path: str | Path) -> RunResult:
    """Read an archive written by :func:`save_npz` back into a RunResult.

    Raises AttentionDataError when a lazy archive lacks queries, keys or attention_spec,
    or their shapes disagree."""
    with np.load(Path(path), allow_pickle=False) as data:
        names = set(data.files)
        mode = str(data["attention_mode"]) if "attention_mode" in names else "full"
        spec = (AttentionSpec.from_json(str(data["attention_spec"]))
                if "attention_spec" in names else None)
        return RunResult(
            prompt=str(data["prompt"]),
            token_ids=data["token_ids"],
            tokens=tuple(str(t) for t in data["tokens"]),
            offsets=data["offsets"],
            attentions=data["attentions"] if "attentions" in names else None,
            topk_ids=data["topk_ids"],
            topk_probs=data["topk_probs"],
            topk_logits=data["topk_logits"],
            topk_tokens=tuple(tuple(str(t) for t in row) for row in data["topk_tokens"]),
            positional=data["positional"],
            positional_kind=str(data["positional_kind"]),
            model_info=ModelInfo.from_json(str(data["model_info"])),
            timings=json.loads(str(data["timings"])),
            last_probs=data["last_probs"],
            actual_next_probs=data["actual_next_probs"],
            actual_next_ranks=data["actual_next_ranks"],
            attention_mode=mode,
            queries=data["queries"] if "queries" in names else None,
            keys=data["keys"] if "keys" in names else None,
            attention_spec=spec,
            notes=tuple(json.loads(str(data["notes"]))) if "notes" in names else (),
        )


def read_export_context(path: str | Path) -> dict[str, str] | None:
    """The ``export_context`` of an archive exported from the window (None if absent)."""
    with np.load(Path(path), allow_pickle=False) as data:
        if "export_context" not in data.files:
            return None
        return json.loads(str(data["export_context"]))


def _top_after_last(result: RunResult, n: int) -> list[dict[str, Any]]:
    if not result.top_k:
        return []
    last = result.num_tokens - 1
    return [
        {
            "id": int(result.topk_ids[last, i]),
            "token": result.topk_tokens[last][i],
            "prob": round(float(result.topk_probs[last, i]), 6),
        }
        for i in range(min(n, result.top_k))
    ]


def summary_dict(result: RunResult) -> dict[str, Any]:
    """The short JSON summary the CLI prints: tokens, top-5 after the last token, timings."""
    return {
        "model": result.model_info.name,
        "num_tokens": result.num_tokens,
        "tokens": list(result.tokens),
        "top5_next": _top_after_last(result, 5),
        "attention_mode": result.attention_mode,
        **_attention_shapes(result),
        "positional_kind": result.positional_kind,
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "notes": list(result.notes),
    }


def _attention_shapes(result: RunResult) -> dict[str, list[int]]:
    shapes = {"attentions_shape": result.attentions, "queries_shape": result.queries,
              "keys_shape": result.keys}
    return {name: list(array.shape) for name, array in shapes.items() if array is not None}


def full_dict(result: RunResult) -> dict[str, Any]:
    """Every array of the run as JSON-ready lists (large: T*T*L*H attention values)."""
    result.require_next_tokens("write every array of the run")
    return {
        "prompt": result.prompt,
        "model_info": json.loads(result.model_info.to_json()),
        "token_ids": result.token_ids.tolist(),
        "tokens": list(result.tokens),
        "offsets": result.offsets.tolist(),
        "attention_mode": result.attention_mode,
        **_attention_lists(result),
        "topk_ids": result.topk_ids.tolist(),
        "topk_probs": result.topk_probs.tolist(),
        "topk_logits": result.topk_logits.tolist(),
        "topk_tokens": [list(row) for row in result.topk_tokens],
        "positional": result.positional.tolist(),
        "positional_kind": result.positional_kind,
        "last_probs": result.last_probs.tolist(),
        "actual_next_probs": [None if np.isnan(p) else float(p) for p in result.actual_next_probs],
        "actual_next_ranks": result.actual_next_ranks.tolist(),
        "timings": result.timings,
        "notes": list(result.notes),
    }


def _attention_lists(result: RunResult) -> dict[str, Any]:
    if result.attention_mode == "full":
        return {"attentions": result.attentions.astype(np.float32).round(5).tolist()}  # type: ignore[union-attr]
    if result.attention_mode == "lazy":
        return {"queries": result.queries.astype(np.float32).round(5).tolist(),  # type: ignore[union-attr]
                "keys": result.keys.astype(np.float32).round(5).tolist(),  # type: ignore[union-attr]
                "attention_spec": json.loads(result.attention_spec.to_json())}  # type: ignore[union-attr]
    return {}

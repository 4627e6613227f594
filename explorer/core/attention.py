"""Attention maps as data: stored in full, or rebuilt exactly from queries and keys.

A run keeps its attention in one of three modes (``RunResult.attention_mode``):

- ``full``: every map, ``attentions`` float16[layer, head, query, key];
- ``lazy``: per layer the post-positional queries float32|float16[layer, head, token, dim]
  and keys float32|float16[layer, kv_head, token, dim] recorded during a fast forward,
  plus an ``AttentionSpec`` (scale, causal flag, sliding window, soft-cap, sinks and the
  query-head -> key/value-head map of every layer). Any map is
  softmax(q·kᵀ·scale + mask), rebuilt on demand;
- ``none``: no attention at all (tokens and probabilities only).

Every view reads attention through :func:`head_map` (or :func:`layer_maps` /
:func:`mean_map` for all heads of a layer), never by indexing ``attentions``, so the
same code serves short prompts kept in full and long prompts kept lazily.

numpy only: a notebook can rebuild maps from a saved ``.npz`` without torch::

    from explorer.core.result_io import load_npz
    from explorer.core.attention import head_map
    result = load_npz("run.npz")
    head_map(result, layer=3, head=2)               # float32[query, key]
    head_map(result, 3, 2, rows=[result.num_tokens - 1])  # one row: float32[1, key]
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from explorer.core.errors import AttentionDataError

ATTENTION_MODES: tuple[str, ...] = ("full", "lazy", "none")
LAZY_FROM_TOKENS = 1024
"""``auto`` keeps every map below this many tokens and switches to lazy at and above it."""
SPEC_VERSION = 1
_ROW_BLOCK = 512  # rows rebuilt per numpy call (bounds the float32 temporaries)


def default_mode(num_tokens: int) -> str:
    """The mode ``auto`` picks: ``full`` below LAZY_FROM_TOKENS tokens, ``lazy`` from there."""
    return "full" if num_tokens < LAZY_FROM_TOKENS else "lazy"


def resolve_mode(requested: str, num_tokens: int) -> str:
    """``auto`` -> default_mode(num_tokens); a named mode is checked and returned."""
    if requested == "auto":
        return default_mode(num_tokens)
    if requested not in ATTENTION_MODES:
        raise AttentionDataError(
            f"Unknown attention mode {requested!r}; use one of {', '.join(ATTENTION_MODES)} or auto.")
    return requested


@dataclass(frozen=True)
class LayerSpec:
    """How one layer turns queries and keys into weights.

    scale:          multiplies q·kᵀ (1/sqrt(head_dim), or the model's own)
    causal:         key j is visible to query i only when j <= i
    kv_map:         int[head]: the key/value head each query head reads (grouped-query attention)
    sliding_window: key j is visible only when i - j < window (None = no window)
    softcap:        logits become softcap·tanh(logits / softcap) before the mask (None = off)
    sinks:          float[head]: a learned logit per head that joins the softmax's denominator
                    and takes no key (None = no sinks)
    """

    scale: float
    causal: bool
    kv_map: tuple[int, ...]
    sliding_window: int | None = None
    softcap: float | None = None
    sinks: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LayerSpec:
        if not isinstance(data, Mapping):
            raise AttentionDataError(f"attention_spec: {where} is not an object.")
        try:
            scale = float(data["scale"])
            causal = data["causal"]
            kv_map = tuple(int(v) for v in data["kv_map"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AttentionDataError(
                f"attention_spec: {where} needs scale, causal and kv_map ({exc}).") from exc
        if not isinstance(causal, bool) or not np.isfinite(scale) or not kv_map:
            raise AttentionDataError(f"attention_spec: {where} has an invalid scale, causal or kv_map.")
        window, softcap, sinks = data.get("sliding_window"), data.get("softcap"), data.get("sinks")
        try:
            return cls(scale, causal, kv_map,
                       None if window is None else int(window),
                       None if softcap is None else float(softcap),
                       None if sinks is None else tuple(float(s) for s in sinks))
        except (TypeError, ValueError) as exc:
            raise AttentionDataError(f"attention_spec: {where} has a bad value ({exc}).") from exc


@dataclass(frozen=True)
class AttentionSpec:
    """One LayerSpec per layer; stored in ``.npz`` files as the JSON string ``attention_spec``."""

    layers: tuple[LayerSpec, ...]

    @property
    def heads(self) -> int:
        return len(self.layers[0].kv_map) if self.layers else 0

    def to_json(self) -> str:
        return json.dumps({"version": SPEC_VERSION, "layers": [s.to_dict() for s in self.layers]})

    @classmethod
    def from_json(cls, text: str) -> AttentionSpec:
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise AttentionDataError(f"attention_spec is not valid JSON ({exc}).") from exc
        if not isinstance(data, Mapping) or not isinstance(data.get("layers"), list):
            raise AttentionDataError("attention_spec must be an object with a 'layers' list.")
        if data.get("version", SPEC_VERSION) > SPEC_VERSION:
            raise AttentionDataError(
                f"attention_spec version {data['version']} is newer than this program reads "
                f"({SPEC_VERSION}); update Attention Explorer.")
        return cls(tuple(LayerSpec.from_dict(d, f"layer {i}") for i, d in enumerate(data["layers"])))


def check_lazy_arrays(queries: Any, keys: Any, spec: AttentionSpec | None, num_tokens: int) -> None:
    """Raise AttentionDataError unless queries [L, H, T, D], keys [L, KV, T, D] and the
    spec fit together and with the run's T tokens."""
    if queries is None or keys is None or spec is None:
        missing = [n for n, v in (("queries", queries), ("keys", keys), ("attention_spec", spec))
                   if v is None]
        raise AttentionDataError(
            f"This lazy result has no {', '.join(missing)}: its attention cannot be rebuilt. "
            "Run the prompt again, or analyze with --attention full.")
    q, k = np.shape(queries), np.shape(keys)
    if len(q) != 4 or len(k) != 4:
        raise AttentionDataError(f"queries must be [L, H, T, D] and keys [L, KV, T, D]; got {q} and {k}.")
    layers, heads, tokens, dim = q
    if (k[0], k[2], k[3]) != (layers, tokens, dim):
        raise AttentionDataError(f"queries {q} and keys {k} disagree on layers, tokens or dims.")
    if tokens != num_tokens:
        raise AttentionDataError(f"queries and keys hold {tokens} tokens but the run has {num_tokens}.")
    if len(spec.layers) != layers:
        raise AttentionDataError(
            f"attention_spec describes {len(spec.layers)} layers but queries hold {layers}.")
    for index, layer in enumerate(spec.layers):
        if len(layer.kv_map) != heads or not all(0 <= v < k[1] for v in layer.kv_map):
            raise AttentionDataError(
                f"attention_spec layer {index} maps {len(layer.kv_map)} query heads onto key/value "
                f"heads {sorted(set(layer.kv_map))}, but queries have {heads} heads and keys {k[1]}.")
        if layer.sinks is not None and len(layer.sinks) != heads:
            raise AttentionDataError(f"attention_spec layer {index} has {len(layer.sinks)} sinks "
                                     f"for {heads} heads.")


# --------------------------------------------------------------------------- the one access


@dataclass(frozen=True)
class _Source:
    mode: str
    num_tokens: int
    attentions: Any = None
    queries: Any = None
    keys: Any = None
    spec: AttentionSpec | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(layers, heads)."""
        if self.mode == "full":
            return int(self.attentions.shape[0]), int(self.attentions.shape[1])
        return int(self.queries.shape[0]), int(self.queries.shape[1])

    @property
    def num_keys(self) -> int:
        """S, the keys every map row spans (T except for cross-attention)."""
        if self.mode == "full":
            return int(self.attentions.shape[-1])
        return self.num_tokens


def _source(result: Any) -> _Source:
    """The attention arrays of a RunResult, or of a mapping such as ``np.load(path)``."""
    if isinstance(result, Mapping) or hasattr(result, "files"):
        return _source_from_arrays(result)
    mode = getattr(result, "attention_mode", "full")
    n = int(result.num_tokens)
    if mode == "full":
        return _Source("full", n, attentions=result.attentions)
    if mode == "lazy":
        return _Source("lazy", n, queries=result.queries, keys=result.keys,
                       spec=result.attention_spec)
    return _Source(mode, n)


def _source_from_arrays(data: Any) -> _Source:
    names = set(getattr(data, "files", None) or data.keys())
    n = int(np.shape(data["token_ids"])[0]) if "token_ids" in names else -1
    if "attentions" in names:
        attentions = np.asarray(data["attentions"])
        return _Source("full", attentions.shape[-1] if n < 0 else n, attentions=attentions)
    mode = str(np.asarray(data["attention_mode"])) if "attention_mode" in names else "lazy"
    if mode == "none":
        return _Source("none", n)
    queries = np.asarray(data["queries"]) if "queries" in names else None
    keys = np.asarray(data["keys"]) if "keys" in names else None
    spec = (AttentionSpec.from_json(str(np.asarray(data["attention_spec"])))
            if "attention_spec" in names else None)
    if n < 0 and queries is not None:
        n = int(queries.shape[2])
    check_lazy_arrays(queries, keys, spec, n)
    return _Source("lazy", n, queries=queries, keys=keys, spec=spec)


def _rows_index(rows: Sequence[int] | np.ndarray | slice | None, n: int) -> np.ndarray:
    if rows is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(rows, slice):
        return np.arange(n, dtype=np.int64)[rows]
    index = np.asarray(rows, dtype=np.int64).reshape(-1)
    if index.size and (index.min() < -n or index.max() >= n):
        raise IndexError(f"rows {index.min()}..{index.max()} outside 0..{n - 1}")
    return np.where(index < 0, index + n, index)


def _check_head(source: _Source, layer: int, head: int | None) -> None:
    if source.mode == "none":
        raise AttentionDataError(
            "This run kept no attention (--attention none); run it again with full or lazy "
            "attention to see maps.")
    layers, heads = source.shape
    if not 0 <= layer < layers:
        raise IndexError(f"layer {layer} outside 0..{layers - 1}")
    if head is not None and not 0 <= head < heads:
        raise IndexError(f"head {head} outside 0..{heads - 1}")


def visible_span(spec: LayerSpec, first: int, last: int, num_keys: int) -> tuple[int, int]:
    """[lo, hi): the keys that query rows ``first``..``last`` can see under the layer's
    masks (every other key of those rows has weight 0)."""
    lo, hi = 0, num_keys
    if spec.causal:
        hi = min(num_keys, last + 1)
    if spec.sliding_window is not None:
        lo = max(0, first - spec.sliding_window + 1)
        if not spec.causal:
            hi = min(num_keys, last + spec.sliding_window)
    return lo, hi


def rebuild_rows(queries: np.ndarray, keys: np.ndarray, spec: LayerSpec, head: int,
                 rows: np.ndarray, log_norms: np.ndarray | None = None,
                 cols: tuple[int, int] | None = None) -> np.ndarray:
    """softmax(q·kᵀ·scale + mask) for some query rows of one head: float32[R, T], or only
    the key columns ``cols`` = [lo, hi) (float32[R, hi - lo]; they must hold every key the
    rows can see, see ``visible_span``).

    queries: float[T, D] of this head; keys: float[T, D] of its key/value head;
    rows: int64[R] query positions. Soft-capping, the causal and sliding-window masks and
    the head's sink (``spec.sinks[head]``) are applied as the model does. Rows are taken in
    blocks of nearby positions and only the keys a block can see are multiplied (a causal
    map costs half a square, a sliding-window map a band). ``log_norms`` (float32[R], if
    given) receives each row's log softmax denominator, from which ``column`` rebuilds any
    key's column without another pass.
    """
    t = keys.shape[0]
    first_col, last_col = (0, t) if cols is None else cols
    out = np.zeros((len(rows), last_col - first_col), dtype=np.float32)
    if not len(rows):
        return out
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    in_order = bool(np.all(order == np.arange(len(rows))))
    sink = None if spec.sinks is None else np.float32(spec.sinks[head])
    scale = np.float32(spec.scale)
    lo_all, hi_all = visible_span(spec, int(sorted_rows[0]), int(sorted_rows[-1]), t)
    if not first_col <= lo_all <= hi_all <= last_col and lo_all < hi_all:
        raise ValueError(f"columns {cols} do not hold the visible keys [{lo_all}, {hi_all})")
    keys32 = np.asarray(keys[lo_all:hi_all], dtype=np.float32)  # converted once for all blocks
    for start in range(0, len(rows), _ROW_BLOCK):
        block = sorted_rows[start:start + _ROW_BLOCK]
        lo, hi = visible_span(spec, int(block[0]), int(block[-1]), t)
        logits = (np.asarray(queries[block], dtype=np.float32) * scale) @ keys32[lo - lo_all:hi - lo_all].T
        if spec.softcap is not None:
            cap = np.float32(spec.softcap)
            logits /= cap
            np.tanh(logits, out=logits)
            logits *= cap
        # only keys near the block's rows can be hidden: mask that band, not the whole block
        first = int(block[0])
        band_lo = lo
        if spec.sliding_window is None and spec.causal:
            band_lo = max(lo, first)
        band = slice(band_lo - lo, hi - lo)
        positions = np.arange(band_lo, hi, dtype=np.int64)
        hidden = ~visible_keys(spec, block[:, None], positions[None, :])
        np.copyto(logits[:, band], -np.inf, where=hidden)
        peak = logits.max(axis=1, keepdims=True)
        if sink is not None:
            peak = np.maximum(peak, sink)
        peak[~np.isfinite(peak)] = 0.0
        logits -= peak
        np.exp(logits, out=logits)
        total = logits.sum(axis=1, keepdims=True)
        if sink is not None:
            total += np.exp(sink - peak)
        with np.errstate(divide="ignore"):
            inverse = np.where(total > 0, np.float32(1.0) / total, np.float32(0.0))
        columns = slice(lo - first_col, hi - first_col)
        if in_order:
            where: slice | np.ndarray = slice(start, start + len(block))
            np.multiply(logits, inverse, out=out[where, columns])  # a view: written in place
        else:
            where = order[start:start + len(block)]
            logits *= inverse
            out[where, columns] = logits
        if log_norms is not None:
            with np.errstate(divide="ignore"):
                log_norms[where] = (peak + np.log(total))[:, 0]
    return out


def visible_keys(spec: LayerSpec, rows: Any, keys: Any) -> np.ndarray:
    """Which keys the query rows see under the layer's causal and sliding-window masks:
    bool, of the shape ``rows`` and ``keys`` (int positions) broadcast to, e.g. rows [R, 1]
    and keys [1, K] give [R, K]; one key gives [R]. The one statement of the rule (the
    rebuilt maps, their columns, and the check of a model's own mask use it)."""
    rows, keys = np.asarray(rows), np.asarray(keys)
    visible = np.ones(np.broadcast_shapes(rows.shape, keys.shape), dtype=bool)
    if spec.causal:
        visible &= keys <= rows
    if spec.sliding_window is not None:
        visible &= np.abs(rows - keys) < spec.sliding_window
    return visible


def column(queries: np.ndarray, keys: np.ndarray, spec: LayerSpec, key: int,
           log_norms: np.ndarray) -> np.ndarray:
    """The weight every query puts on one key, float32[T], from the rows' log softmax
    denominators (``rebuild_rows(..., log_norms=)`` over all rows): O(T·D) instead of a
    full map."""
    rows = np.arange(queries.shape[0], dtype=np.int64)
    logits = np.asarray(queries, dtype=np.float32) @ np.asarray(keys[key], dtype=np.float32)
    logits *= np.float32(spec.scale)
    if spec.softcap is not None:
        cap = np.float32(spec.softcap)
        logits = np.tanh(logits / cap) * cap
    out = np.exp(logits - log_norms).astype(np.float32)
    out[~visible_keys(spec, rows, key)] = 0.0
    return out


def head_map(result: Any, layer: int, head: int, rows: Sequence[int] | np.ndarray | slice | None = None,
             ) -> np.ndarray:
    """One head's attention map, float32[query, key] (rows = query positions), or only the
    query ``rows`` asked for (float32[len(rows), key]).

    ``result`` is a RunResult (any attention mode) or a mapping of its arrays, such as
    ``np.load("run.npz")``. Full results return the stored map; lazy results rebuild it
    exactly from the recorded queries and keys. Raises AttentionDataError when the result
    kept no attention or its lazy arrays are missing or inconsistent.
    """
    source = _source(result)
    _check_head(source, layer, head)
    index = _rows_index(rows, source.num_tokens)
    if source.mode == "full":
        return np.asarray(source.attentions[layer, head][index], dtype=np.float32)
    spec = source.spec.layers[layer]  # type: ignore[union-attr]
    return rebuild_rows(source.queries[layer, head], source.keys[layer, spec.kv_map[head]],
                        spec, head, index)


def layer_maps(result: Any, layer: int, rows: Sequence[int] | np.ndarray | slice | None = None,
               ) -> np.ndarray:
    """Every head of one layer: float32[head, query, key] (or [head, len(rows), key])."""
    source = _source(result)
    _check_head(source, layer, None)
    index = _rows_index(rows, source.num_tokens)
    if source.mode == "full":
        return np.asarray(source.attentions[layer][:, index], dtype=np.float32)
    spec = source.spec.layers[layer]  # type: ignore[union-attr]
    heads = source.shape[1]
    return np.stack([rebuild_rows(source.queries[layer, h], source.keys[layer, spec.kv_map[h]],
                                  spec, h, index) for h in range(heads)])


def mean_map(result: Any, layer: int, rows: Sequence[int] | np.ndarray | slice | None = None,
             ) -> np.ndarray:
    """The mean over a layer's heads: float32[query, key] (or [len(rows), key])."""
    source = _source(result)
    _check_head(source, layer, None)
    index = _rows_index(rows, source.num_tokens)
    if source.mode == "full":
        return np.asarray(source.attentions[layer][:, index], dtype=np.float32).mean(axis=0)
    spec = source.spec.layers[layer]  # type: ignore[union-attr]
    heads = source.shape[1]
    total = np.zeros((len(index), source.num_tokens), dtype=np.float32)
    for h in range(heads):
        total += rebuild_rows(source.queries[layer, h], source.keys[layer, spec.kv_map[h]],
                              spec, h, index)
    return total / np.float32(heads)


def head_rows_and_norms(result: Any, layer: int, head: int, rows: np.ndarray,
                        cols: tuple[int, int] | None = None,
                        ) -> tuple[np.ndarray, np.ndarray | None]:
    """``head_map(result, layer, head, rows)`` (or only its key columns ``cols`` = [lo, hi),
    which must hold every key the rows can see: ``rows_span``) and, for a lazy result, the
    rows' log softmax denominators float32[R] (None for a full result), in one pass."""
    source = _source(result)
    _check_head(source, layer, head)
    index = _rows_index(rows, source.num_tokens)
    if source.mode == "full":
        stored = source.attentions[layer, head][index]
        if cols is not None:
            stored = stored[:, cols[0]:cols[1]]
        return np.asarray(stored, dtype=np.float32), None
    spec = source.spec.layers[layer]  # type: ignore[union-attr]
    norms = np.empty(len(index), dtype=np.float32)
    maps = rebuild_rows(source.queries[layer, head], source.keys[layer, spec.kv_map[head]], spec,
                        head, index, log_norms=norms, cols=cols)
    return maps, norms


def rows_span(result: Any, layer: int, first: int, last: int) -> tuple[int, int]:
    """[lo, hi): the key columns query rows ``first``..``last`` of ``layer`` can have weight
    on (every key for a full result, whose masks are not recorded)."""
    source = _source(result)
    if source.mode != "lazy":
        return 0, source.num_keys
    return visible_span(source.spec.layers[layer], first, last,  # type: ignore[union-attr]
                        source.num_keys)


def head_log_norms(result: Any, layer: int, head: int) -> np.ndarray | None:
    """float32[T]: each query row's log softmax denominator for a lazy result (one full pass
    over the map), or None for a full result (its columns are stored)."""
    source = _source(result)
    _check_head(source, layer, head)
    if source.mode == "full":
        return None
    spec = source.spec.layers[layer]  # type: ignore[union-attr]
    norms = np.empty(source.num_tokens, dtype=np.float32)
    rebuild_rows(source.queries[layer, head], source.keys[layer, spec.kv_map[head]], spec, head,
                 np.arange(source.num_tokens, dtype=np.int64), log_norms=norms)
    return norms


def head_column(result: Any, layer: int, head: int, key: int,
                log_norms: np.ndarray | None = None) -> np.ndarray:
    """The weight every query of one head puts on ``key``: float32[T] (a column of the map).
    Lazy results need the rows' ``log_norms`` (``head_log_norms``; computed here when not
    given, which costs one pass over the map)."""
    source = _source(result)
    _check_head(source, layer, head)
    if source.mode == "full":
        return np.asarray(source.attentions[layer, head][:, key], dtype=np.float32)
    spec = source.spec.layers[layer]  # type: ignore[union-attr]
    if log_norms is None:
        log_norms = head_log_norms(result, layer, head)
    return column(source.queries[layer, head], source.keys[layer, spec.kv_map[head]], spec, key,
                  log_norms)  # type: ignore[arg-type]


def has_attention(result: Any) -> bool:
    """True when maps can be read (full or lazy), False for ``none``."""
    return _source(result).mode != "none"


def token_count(result: Any) -> int:
    """T, the number of tokens the result's maps span."""
    return _source(result).num_tokens


def key_count(result: Any) -> int:
    """S, the number of keys every map row spans (T except for cross-attention)."""
    return _source(result).num_keys


def attention_shape(result: Any) -> tuple[int, int]:
    """(layers, heads) of the result's attention."""
    return _source(result).shape

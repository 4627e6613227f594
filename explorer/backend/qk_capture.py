"""Record every layer's post-positional queries and keys during a fast (sdpa) forward.

transformers' attention modules compute their queries and keys (rotated by RoPE,
normalised where the model does so) and hand them to an attention function looked up
by name in ``AttentionInterface``. This module registers one more name: a function that
copies the queries and keys, notes how the layer turns them into weights (scale, causal
flag, sliding window, soft-cap, sinks, query-head -> key/value-head map), and then runs
the real kernel: torch's sdpa, which never builds the T x T matrix, or the model's own
eager function where sdpa cannot do the layer (soft-capping, sinks). No architecture code
is copied: the model calls us with exactly what it would give any kernel. A sliding-window
layer whose mask matched its spec runs as ``banded_attention.banded_sdpa`` instead: the
same softmax over the same keys, without the [T, T] mask's square of work. The masks
for this name are transformers' own, built in blocks of rows
(``blocked_mask.blocked_sdpa_mask``).

Each kind of layer checks itself: a few query rows are rebuilt with
``core.attention.rebuild_rows`` from the recorded spec and compared with the same rows
computed from the mask the model actually passed. A model whose mask carries something the
spec does not describe (a position bias, chunked attention, custom code) is reported as
NotReproducible, and the engine falls back to full capture. The check runs once per kind
(``layer_kind``: the module's class, its spec, and the very mask and bias tensors it was
given), since layers of one kind turn their own queries and keys into weights the same way:
SmolLM2's 30 layers are one kind, Gemma 3's sliding and full layers two.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from explorer.backend.banded_attention import bandable, banded_sdpa, mask_is_window
from explorer.backend.blocked_mask import blocked_sdpa_mask
from explorer.core.attention import AttentionSpec, LayerSpec, rebuild_rows
from explorer.core.errors import Cancelled

CAPTURE_NAME = "explorer_qk_capture"
VERIFY_TOLERANCE = 1e-4
_state = threading.local()
_registered = False
_register_lock = threading.Lock()


class NotReproducible(Exception):
    """The model's attention cannot be rebuilt from queries and keys (reason in the message)."""


def _register() -> None:
    global _registered
    with _register_lock:
        if _registered:
            return
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface

        AttentionInterface.register(CAPTURE_NAME, _dispatch)
        AttentionMaskInterface.register(CAPTURE_NAME, blocked_sdpa_mask)
        _registered = True


def _dispatch(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any,
              ) -> tuple[Any, Any]:
    recorder: QueryKeyRecorder | None = getattr(_state, "recorder", None)
    if recorder is None:  # our name is set but nobody records (should not happen): plain sdpa
        return _sdpa(module, query, key, value, attention_mask, **kwargs)
    return recorder.attend(module, query, key, value, attention_mask, **kwargs)


def _sdpa(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(*args, **kwargs)


def _model_eager(module: Any) -> Callable[..., tuple[Any, Any]] | None:
    """The eager attention function of the module's own modelling file, if it has one."""
    return getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)


class QueryKeyRecorder:
    """The attention function's state for one forward.

    queries: float32[L, H, T, D]; keys: float32[L, KV, T, D] (only when ``record``);
    specs: one LayerSpec per layer, filled as the layers run (also without ``record``: a
    checked sliding-window layer then runs as ``banded_sdpa``). ``problem`` names the
    first reason the attention cannot be rebuilt (None while all is well).
    """

    def __init__(self, layers: int, heads: int, kv_heads: int, head_dim: int, tokens: int,
                 record: bool = True, is_cancel_requested: Callable[[], bool] | None = None,
                 ) -> None:
        self.layers, self.tokens, self.record = layers, tokens, record
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.is_cancel_requested = is_cancel_requested or (lambda: False)
        shape_q, shape_k = (layers, heads, tokens, head_dim), (layers, kv_heads, tokens, head_dim)
        self.queries = _buffer(shape_q) if record else None
        self.keys = _buffer(shape_k) if record else None
        self.specs: list[LayerSpec | None] = [None] * layers
        # layer kinds whose rows were checked, with the mask and bias tensors they name:
        # held, so that no later tensor can take the same address during this forward
        self.checked: dict[tuple, tuple[Any, Any]] = {}
        self.calls = 0
        self.problem: str | None = None

    # -- during the forward --------------------------------------------------------------
    def attend(self, module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
               **kwargs: Any) -> tuple[Any, Any]:
        layer = self.calls
        self.calls += 1
        if self.problem is None:  # (the spec also picks the kernel when nothing is kept)
            try:
                self._record(layer, module, query, key, attention_mask, kwargs)
            except Exception as exc:  # noqa: BLE001  (nothing kept: the model's own kernel)
                if self.record:
                    raise
                self.problem = f"layer {layer} could not be checked ({exc})"
        if self._banded(layer, query, key, attention_mask, kwargs):
            output = banded_sdpa(query, key, value, self.specs[layer], attention_mask)
            if self.is_cancel_requested():
                raise Cancelled("cancelled during the forward pass")
            return output, None
        needs_eager = kwargs.get("softcap") is not None or kwargs.get("s_aux") is not None
        kernel = _model_eager(module) if needs_eager else _sdpa
        if kernel is None:
            raise NotReproducible(f"{type(module).__name__} needs its own attention kernel.")
        output = kernel(module, query, key, value, attention_mask, **kwargs)
        if self.is_cancel_requested():
            raise Cancelled("cancelled during the forward pass")
        return output[0], None

    def _banded(self, layer: int, query: Any, key: Any, attention_mask: Any,
                kwargs: dict[str, Any]) -> bool:
        """Whether this call can run as ``banded_sdpa``: a sliding-window layer whose mask
        is its spec's window (checked once per mask in ``_record``), one sequence attending
        to itself, nothing but the mask and the scale between its scores and the softmax."""
        spec = self.specs[layer] if layer < self.layers else None
        return (self.problem is None and spec is not None and bandable(spec)
                and attention_mask is not None and kwargs.get("position_bias") is None and not kwargs.get("dropout")
                and query.shape[2] == key.shape[2] == self.tokens
                and tuple(attention_mask.shape[-2:]) == (self.tokens, self.tokens))

    def _record(self, layer: int, module: Any, query: Any, key: Any, attention_mask: Any,
                kwargs: dict[str, Any]) -> None:
        import torch

        if layer >= self.layers or query.shape[0] != 1 or query.shape[2] != self.tokens \
                or key.shape[2] != self.tokens:
            self.problem = (f"attention call {layer} has queries {tuple(query.shape)} and keys "
                            f"{tuple(key.shape)}, not one {self.tokens}-token sequence per layer")
            return
        heads, kv_heads = query.shape[1], key.shape[1]
        if (heads, kv_heads, query.shape[3]) != (self.heads, self.kv_heads, self.head_dim):
            self.problem = f"layer {layer} has {heads} heads / {kv_heads} key-value heads of " \
                           f"{query.shape[3]} dims, not what the config says"
            return
        if self.record:
            with torch.no_grad():
                torch.from_numpy(self.queries[layer]).copy_(query[0])
                torch.from_numpy(self.keys[layer]).copy_(key[0])
        spec = layer_spec(module, query, key, attention_mask, kwargs)
        self.specs[layer] = spec
        kind = layer_kind(module, spec, attention_mask, kwargs)
        if kind in self.checked:
            return
        self.checked[kind] = (attention_mask, kwargs.get("position_bias"))
        problem = self._verify(layer, query, key, attention_mask, kwargs, spec)
        if not problem and bandable(spec) and attention_mask is not None \
                and not mask_is_window(attention_mask, spec):
            problem = (f"layer {layer}: its mask is not a {spec.sliding_window}-token "
                       "sliding window in every row")
        if problem:
            self.problem = problem

    def _verify(self, layer: int, query: Any, key: Any, attention_mask: Any,
                kwargs: dict[str, Any], spec: LayerSpec) -> str | None:
        """Rebuild a few rows from the spec and compare them with the rows the model's own
        mask (and position bias, soft-cap, sinks) gives."""
        t = self.tokens
        rows = sorted({0, t // 2, t - 1, min(t - 1, spec.sliding_window or 0)})
        expected = reference_rows(query, key, attention_mask, kwargs, spec, rows)
        if self.record:  # the very numbers the maps will be rebuilt from
            queries, keys = self.queries[layer], self.keys[layer]
        else:
            queries, keys = (x[0].detach().float().cpu().numpy() for x in (query, key))
        for head in range(query.shape[1]):
            rebuilt = rebuild_rows(queries[head], keys[spec.kv_map[head]],
                                   spec, head, np.asarray(rows, dtype=np.int64))
            diff = float(np.max(np.abs(rebuilt - expected[head])))
            if not diff <= VERIFY_TOLERANCE:
                return (f"layer {layer}, head {head}: weights rebuilt from queries and keys "
                        f"differ from the model's by {diff:.2g} (its mask or bias is not a "
                        "causal / sliding-window mask)")
        return None

    # -- after the forward ---------------------------------------------------------------
    def spec(self) -> AttentionSpec:
        if self.problem is None and self.calls != self.layers:
            self.problem = f"the attention function ran {self.calls} times for {self.layers} layers"
        if self.problem is not None:
            raise NotReproducible(self.problem)
        return AttentionSpec(tuple(s for s in self.specs if s is not None))


def _buffer(shape: tuple[int, ...]) -> np.ndarray:
    """float32 array of ``shape`` from torch's allocator. numpy asks the kernel for huge
    pages on large arrays, and faulting those in here cost 0.10 s for SmolLM2's queries and
    keys at 1,024 tokens against 0.04 s for ordinary pages."""
    import torch

    return torch.empty(shape, dtype=torch.float32).numpy()


def layer_kind(module: Any, spec: LayerSpec, attention_mask: Any, kwargs: dict[str, Any]) -> tuple:
    """What decides how a layer's queries and keys become weights, besides the queries and
    keys themselves: its class, its spec, and the identity of the mask and position-bias
    tensors it was passed (transformers builds one mask per layer type and forward)."""

    def identity(tensor: Any) -> tuple | None:
        if tensor is None:
            return None
        return (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), str(tensor.dtype))

    return (type(module), spec, identity(attention_mask), identity(kwargs.get("position_bias")))


def layer_spec(module: Any, query: Any, key: Any, attention_mask: Any,
               kwargs: dict[str, Any]) -> LayerSpec:
    """How this layer turns queries and keys into weights, from what the model passed."""
    heads, kv_heads, dim = query.shape[1], key.shape[1], query.shape[3]
    scale = kwargs.get("scaling")
    scale = float(dim ** -0.5 if scale is None else scale)
    causal_flag = kwargs.get("is_causal")
    causal = bool(getattr(module, "is_causal", True) if causal_flag is None else causal_flag)
    if attention_mask is None and query.shape[2] == 1:
        causal = False
    window = kwargs.get("sliding_window")
    if window is None:
        window = getattr(module, "sliding_window", None)
    softcap = kwargs.get("softcap")
    sinks = kwargs.get("s_aux")
    group = max(1, heads // max(1, kv_heads))
    return LayerSpec(
        scale=scale, causal=causal, kv_map=tuple(h // group for h in range(heads)),
        sliding_window=None if window is None else int(window),
        softcap=None if softcap is None else float(softcap),
        sinks=None if sinks is None else tuple(float(s) for s in sinks.detach().float().reshape(-1)),
    )


def reference_rows(query: Any, key: Any, attention_mask: Any, kwargs: dict[str, Any],
                   spec: LayerSpec, rows: list[int]) -> np.ndarray:
    """float32[head, row, key]: the weights of some query rows from the model's own inputs
    (the mask tensor it passed, its position bias, soft-cap and sinks), in torch."""
    import torch

    with torch.no_grad():
        index = torch.tensor(rows, dtype=torch.long, device=query.device)
        q = query[0][:, index].float()
        k = key[0][torch.tensor(spec.kv_map, dtype=torch.long, device=key.device)].float()
        logits = q @ k.transpose(-1, -2) * spec.scale
        if spec.softcap is not None:
            logits = torch.tanh(logits / spec.softcap) * spec.softcap
        bias = kwargs.get("position_bias")
        if bias is not None:
            logits = logits + bias[0][:, index].float()
        if attention_mask is None:
            causal_flag = kwargs.get("is_causal")
            module_causal = spec.causal if causal_flag is None else bool(causal_flag)
            if module_causal and query.shape[2] > 1:
                keys = torch.arange(k.shape[1], device=k.device)
                logits = logits.masked_fill(keys[None, None, :] > index[None, :, None], float("-inf"))
        elif attention_mask.dtype == torch.bool:
            logits = logits.masked_fill(~attention_mask[0][:, index], float("-inf"))
        else:
            logits = logits + attention_mask[0][:, index].float()
        sinks = kwargs.get("s_aux")
        if sinks is not None:
            sink = sinks.detach().float().reshape(-1, 1, 1).expand(-1, len(rows), 1)
            weights = torch.softmax(torch.cat([logits, sink], dim=-1), dim=-1)[..., :-1]
        else:
            weights = torch.softmax(logits, dim=-1)
        return weights.cpu().numpy()


@contextmanager
def recording(model: Any, recorder: QueryKeyRecorder) -> Iterator[None]:
    """While active, ``model`` runs its attention through ``recorder`` (in this thread).
    Raises NotReproducible when the model cannot switch its attention function."""
    _register()
    can_switch = getattr(model, "_can_set_attn_implementation", None)
    if can_switch is None or not can_switch():
        raise NotReproducible(f"{type(model).__name__} does not route its attention through "
                              "transformers' attention interface")
    previous = model.config._attn_implementation
    _state.recorder = recorder
    try:
        model.set_attn_implementation(CAPTURE_NAME)
        yield
    finally:
        _state.recorder = None
        recorder.checked.clear()  # the masks it held (a [T, T] mask is 1 GB at 32,768 tokens)
        model.set_attn_implementation(previous)

"""Knock attention heads out of a transformers model, and the ablation scan.

A head's output is its slice ``[h*D:(h+1)*D]`` of the input of its layer's attention
output projection (o_proj / c_proj / out_proj / dense: found generically as the Linear
of the attention that takes heads x head_dim inputs and gives hidden_size outputs). A
forward pre-hook rewrites that slice: zeros (zero ablation) or its mean over positions
(mean ablation). Nothing else in the model changes, so every architecture whose attention
ends in such a projection works, grouped-query attention included.

The scan ablates each head alone and measures log p(target) after one position. It runs
the clean forward once, keeping each decoder layer's input (hidden states and the
arguments the model passed it); for the heads of layer l it restarts there, with the H
heads as a batch of H sequences (row i ablates head i), through layers l..L-1, the final
norm and the output head at the measured position only. Causal models need no tokens
after the measured position, so the sequence ends there. The restart is checked once per
scan against the model's own forward; a model it does not reproduce gets the naive scan
(L x H forwards), with a note.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from explorer.backend.loader import LoadedModel
from explorer.core.ablation import Ablation, AblationError, AblationScan, AblationShift
from explorer.core.progress import TaskState

PROJECTION_NAMES = ("o_proj", "c_proj", "out_proj", "dense", "o")
FINAL_NORM_NAMES = ("norm", "ln_f", "final_layernorm", "final_layer_norm", "norm_f", "final_norm")
MAX_BATCH_TOKENS = 16_384
"""Rows x tokens per batched restart (bounds the memory of one scan step)."""
REPLAY_TOLERANCE = 1e-3
"""Largest logit difference between the restart and the model's own forward."""


def head_dim(loaded: LoadedModel) -> int:
    info = loaded.info
    return info.head_dim or info.hidden_size // info.heads


def _in_out(module: Any) -> tuple[int, int] | None:
    """(in, out) features of a Linear, or of transformers' Conv1D (GPT-2), else None."""
    if hasattr(module, "in_features") and hasattr(module, "out_features"):
        return int(module.in_features), int(module.out_features)
    if type(module).__name__ == "Conv1D":
        rows, cols = module.weight.shape
        return int(rows), int(cols)
    return None


def _projection(layer: Any, width: int, hidden: int) -> Any | None:
    """The attention output projection inside one decoder layer (None if not exactly found)."""
    found = []
    for name, module in layer.named_modules():
        lowered = name.lower()
        if ("attn" in lowered or "attention" in lowered) and _in_out(module) == (width, hidden):
            found.append((name.rsplit(".", 1)[-1], module))
    for preferred in PROJECTION_NAMES:
        for leaf, module in found:
            if leaf == preferred:
                return module
    return found[0][1] if len(found) == 1 else None


def decoder_layers(loaded: LoadedModel) -> list[Any]:
    """The model's L decoder layers in order (the ModuleList whose every item holds an
    attention output projection)."""
    import torch

    info = loaded.info
    width = info.heads * head_dim(loaded)
    for module in loaded.model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == info.layers and all(
                _projection(layer, width, info.hidden_size) is not None for layer in module):
            return list(module)
    raise AblationError(
        f"Cannot ablate heads of {info.name}: no attention output projection taking "
        f"{info.heads} heads x {head_dim(loaded)} = {width} inputs was found in its layers.")


def output_projections(loaded: LoadedModel) -> list[Any]:
    """One attention output projection per layer (Linear or Conv1D), in layer order."""
    info = loaded.info
    width = info.heads * head_dim(loaded)
    return [_projection(layer, width, info.hidden_size) for layer in decoder_layers(loaded)]


def _rewrite(x: Any, row: Any, head: int, dim: int, mode: str, mean: Any = None) -> None:
    """In place on x[row, :, head slice] (row = Ellipsis for every row): zero it, or set it
    to ``mean`` (float[D]), or to its own mean over positions when ``mean`` is None."""
    part = x[row, :, head * dim : (head + 1) * dim] if row is not Ellipsis \
        else x[..., head * dim : (head + 1) * dim]
    if mode == "zero":
        part.zero_()
    elif mean is not None:
        part.copy_(mean[head * dim : (head + 1) * dim].expand_as(part))
    else:
        part.copy_(part.mean(dim=-2, keepdim=True).expand_as(part))


@contextmanager
def ablating(loaded: LoadedModel, ablation: Ablation | None) -> Iterator[None]:
    """While active, every forward of ``loaded.model`` runs with ``ablation`` applied
    (nothing changes for None or an empty ablation). AblationError for an unknown head."""
    if ablation is None or ablation.empty:
        yield
        return
    ablation.check(loaded.info.layers, loaded.info.heads)
    projections = output_projections(loaded)
    dim = head_dim(loaded)

    def hook_for(heads: Sequence[int]) -> Any:
        def hook(_module: Any, args: tuple) -> tuple:
            x = args[0].clone()
            for head in heads:
                _rewrite(x, Ellipsis, head, dim, ablation.mode)
            return (x, *args[1:])
        return hook

    handles = [projections[layer].register_forward_pre_hook(hook_for(heads))
               for layer, heads in ablation.by_layer().items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def single_token_id(loaded: LoadedModel, text: str) -> int:
    """The id of ``text`` when it is exactly one token; AblationError otherwise."""
    if not text:
        raise AblationError("The target is empty: give one token, e.g. ' Paris'.")
    ids = loaded.tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        pieces = loaded.tokenizer.convert_ids_to_tokens(ids)
        raise AblationError(
            f"The target {text!r} is {len(ids)} tokens ({', '.join(map(repr, pieces)) or 'none'}), "
            "not one: give a single token (mind the leading space, e.g. ' Paris').")
    return int(ids[0])


@contextmanager
def _sdpa(model: Any) -> Iterator[None]:
    """Run the model with torch's sdpa attention (no T x T weights for a batch of
    sequences) when it can switch; otherwise leave it as it is."""
    can_switch = getattr(model, "_can_set_attn_implementation", None)
    previous = model.config._attn_implementation
    if can_switch is None or not can_switch() or previous == "sdpa":
        yield
        return
    model.set_attn_implementation("sdpa")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


class _Restart:
    """The clean forward's per-layer inputs and a way to run layers l..L-1 from them.

    inputs[l]: (args, kwargs) the model passed decoder layer l (args[0] or
    kwargs["hidden_states"] = float[1, T, hidden]); means[l]: float[H*D] mean over the
    prompt's positions of layer l's projection input (mean mode); logits: float32[V] at
    the last kept position.
    """

    def __init__(self, loaded: LoadedModel, layers: list[Any], projections: list[Any]) -> None:
        self.loaded = loaded
        self.layers = layers
        self.projections = projections
        self.inputs: list[tuple[tuple, dict] | None] = [None] * len(layers)
        self.means: list[Any] = [None] * len(layers)
        self.logits: Any = None

    def capture(self, ids: list[int], keep_inputs: bool, keep_means: bool) -> Any:
        """Run the clean forward on ``ids``; returns float32 logits [V] at the last one."""
        import torch

        handles = []

        def input_hook(index: int) -> Any:
            def hook(_module: Any, args: tuple, kwargs: dict) -> None:
                if args:
                    args = (args[0].clone(), *args[1:])
                else:
                    kwargs = {**kwargs, "hidden_states": kwargs["hidden_states"].clone()}
                self.inputs[index] = (args, kwargs)
            return hook

        def mean_hook(index: int) -> Any:
            def hook(_module: Any, args: tuple) -> None:
                self.means[index] = args[0][0].mean(dim=0)
            return hook

        try:
            for index, (layer, projection) in enumerate(zip(self.layers, self.projections,
                                                            strict=True)):
                if keep_inputs:
                    handles.append(layer.register_forward_pre_hook(input_hook(index),
                                                                   with_kwargs=True))
                if keep_means:
                    handles.append(projection.register_forward_pre_hook(mean_hook(index)))
            input_ids = torch.tensor([ids], dtype=torch.long)
            outputs = _last_logits_forward(self.loaded.model, input_ids, 1)
        finally:
            for handle in handles:
                handle.remove()
        return outputs.logits[0, -1].float()

    def run(self, start: int, rows: Sequence[int], mode: str, task: TaskState | None,
            clean_rows: int = 0) -> Any:
        """float32 logits [len(rows) + clean_rows, V] at the last position: layer ``start``
        restarted from its clean input, row i with head rows[i] ablated (then
        ``clean_rows`` rows with nothing ablated)."""
        args, kwargs = self.inputs[start]
        hidden = args[0] if args else kwargs["hidden_states"]
        count = len(rows) + clean_rows
        hidden = hidden.expand(count, *hidden.shape[1:]).contiguous()
        dim = head_dim(self.loaded)
        mean = self.means[start]

        def hook(_module: Any, hook_args: tuple) -> tuple:
            x = hook_args[0].clone()
            for row, head in enumerate(rows):
                _rewrite(x, row, head, dim, mode, mean)
            return (x, *hook_args[1:])

        handle = self.projections[start].register_forward_pre_hook(hook)
        try:
            for index in range(start, len(self.layers)):
                if task is not None:
                    task.check_cancelled()
                args, kwargs = self.inputs[index]
                if args:
                    out = self.layers[index](hidden, *args[1:], **kwargs)
                else:
                    out = self.layers[index](**{**kwargs, "hidden_states": hidden})
                hidden = out[0] if isinstance(out, tuple) else out
        finally:
            handle.remove()
        return _output_logits(self.loaded.model, hidden[:, -1])


def _last_logits_forward(model: Any, input_ids: Any, keep: int) -> Any:
    try:
        return model(input_ids=input_ids, use_cache=False, logits_to_keep=keep)
    except TypeError:  # an older head without logits_to_keep
        return model(input_ids=input_ids, use_cache=False)


def _final_norm(model: Any) -> Any | None:
    base = getattr(model, "base_model", None) or model
    for name in FINAL_NORM_NAMES:
        module = getattr(base, name, None)
        if module is not None:
            return module
    return None


def _output_logits(model: Any, last_hidden: Any) -> Any:
    """float32 logits [B, V] from the last decoder layer's output [B, hidden]: final norm,
    output head, final soft-cap (as the model's own forward does)."""
    norm = _final_norm(model)
    return _head_logits(model, norm(last_hidden) if norm is not None else last_hidden)


def _head_logits(model: Any, states: Any) -> Any:
    """float32 logits [B, V] from final (normed) hidden states [B, hidden]: the output head
    and the final soft-cap."""
    import torch

    logits = model.get_output_embeddings()(states).float()
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") \
        else model.config
    cap = getattr(config, "final_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits


def _log_prob(logits: Any, target: int) -> Any:
    import torch

    return torch.log_softmax(logits.double(), dim=-1)[..., target]


def ablation_scan(loaded: LoadedModel, prompt: str, position: int | None = None,
                  target_id: int | None = None, mode: str = "zero",
                  task: TaskState | None = None, method: str = "fast") -> AblationScan:
    """Δ log p(target) after token ``position`` (default: the last) for each head ablated
    alone: float32[L, H] in an AblationScan. ``target_id`` defaults to the prompt's actual
    next token, or the model's top-1 after the last token. ``method``: "fast" (restart from
    the clean residual stream, batched per layer) or "naive" (one forward per head)."""
    import torch

    from explorer.backend.engine import check_prompt, tokenize

    task = task or TaskState()
    info = loaded.info
    Ablation(frozenset(), mode)  # checks the mode
    if not info.causal:
        raise AblationError(f"{info.name} is an encoder: it predicts no next token, so there "
                            "is no probability to scan.")
    ids, pieces, _ = tokenize(loaded, prompt)
    check_prompt(loaded, prompt, len(ids))
    position = len(ids) - 1 if position is None else int(position)
    if not 0 <= position < len(ids):
        raise AblationError(f"Position {position} is outside the prompt's {len(ids)} tokens.")
    if target_id is not None and not 0 <= target_id < info.vocab_size:
        raise AblationError(f"Token id {target_id} is outside the vocabulary ({info.vocab_size}).")
    layers = decoder_layers(loaded)
    projections = output_projections(loaded)
    restart = _Restart(loaded, layers, projections)
    notes: list[str] = []
    task.progress(0.0, "Clean forward")
    with torch.inference_mode(), _sdpa(loaded.model):
        end = len(ids) == position + 1
        clean = restart.capture(ids[: position + 1], keep_inputs=method == "fast",
                                keep_means=mode == "mean" and end)
        if mode == "mean" and not end:  # the means are over the whole prompt
            restart.capture(ids, keep_inputs=False, keep_means=True)
        if target_id is None:
            target_id = ids[position + 1] if not end else int(torch.argmax(clean))
        base = float(_log_prob(clean, target_id))
        if method == "fast":
            problem = _replay_problem(restart, clean)
            if problem:
                notes.append(f"The restart from a layer's input did not reproduce "
                             f"{info.name} ({problem}); every head was run as a full forward.")
                method = "naive"
        if method == "fast":
            delta = _fast(restart, info.layers, info.heads, len(ids[: position + 1]), mode,
                          target_id, base, task)
        elif method == "naive":
            delta = _naive(loaded, ids, position, mode, target_id, base, task)
        else:
            raise ValueError(f"unknown scan method {method!r}")
    task.progress(1.0, "Done")
    token = str(loaded.tokenizer.convert_ids_to_tokens(int(target_id)))
    return AblationScan(delta, position, int(target_id), token, base, mode, prompt, tuple(notes))


def _replay_problem(restart: _Restart, clean: Any) -> str:
    """'' when restarting the last layer (as a batch of two) gives the clean logits."""
    try:
        again = restart.run(len(restart.layers) - 1, [], "zero", None, clean_rows=2)
    except Exception as exc:  # noqa: BLE001 - any failure means: use the naive scan
        return f"{type(exc).__name__}: {exc}"
    worst = float((again - clean[None]).abs().max())
    return "" if worst <= REPLAY_TOLERANCE else f"logits differ by {worst:.2g}"


def _fast(restart: _Restart, num_layers: int, num_heads: int, tokens: int, mode: str,
          target: int, base: float, task: TaskState) -> np.ndarray:
    delta = np.zeros((num_layers, num_heads), np.float32)
    batch = max(1, min(num_heads, MAX_BATCH_TOKENS // max(tokens, 1)))
    total = num_layers * (num_layers + 1) / 2
    done = 0.0
    for layer in range(num_layers):
        for first in range(0, num_heads, batch):
            rows = list(range(first, min(first + batch, num_heads)))
            logits = restart.run(layer, rows, mode, task)
            delta[layer, rows] = (_log_prob(logits, target) - base).float().numpy()
        done += num_layers - layer
        task.progress(0.05 + 0.95 * done / total, f"Ablation scan: layer {layer + 1}/{num_layers}")
    return delta


def _naive(loaded: LoadedModel, ids: list[int], position: int, mode: str, target: int,
           base: float, task: TaskState) -> np.ndarray:
    """One forward of the whole prompt per head (the reference the fast scan is timed against)."""
    import torch

    info = loaded.info
    delta = np.zeros((info.layers, info.heads), np.float32)
    input_ids = torch.tensor([ids], dtype=torch.long)
    keep = len(ids) - position
    for layer in range(info.layers):
        for head in range(info.heads):
            task.check_cancelled()
            with ablating(loaded, Ablation(frozenset({(layer, head)}), mode)):
                logits = _last_logits_forward(loaded.model, input_ids, keep).logits
            delta[layer, head] = float(_log_prob(logits[0, -keep].float(), target)) - base
        task.progress(0.05 + 0.95 * (layer + 1) / info.layers,
                      f"Ablation scan (naive): layer {layer + 1}/{info.layers}")
    return delta


def ablation_shift(loaded: LoadedModel, prompt: str, ablation: Ablation, top_k: int = 20,
                   task: TaskState | None = None) -> AblationShift:
    """The plain model's run of ``prompt`` (attention "none") and KL(base ‖ ablated) after
    every token, float32[T] in nats (the output head runs on 256 positions at a time, so
    no [T, V] logits are kept)."""
    import torch

    from explorer.backend.engine import analyze

    task = task or TaskState()
    if not loaded.info.causal:
        raise AblationError(f"{loaded.info.name} is an encoder: it has no next-token "
                            "distribution for an ablation to change.")
    base = analyze(loaded, prompt, top_k=top_k, task=task.sub(0.0, 0.4), attention="none")
    input_ids = torch.tensor([base.token_ids.tolist()], dtype=torch.long)
    with torch.inference_mode():
        plain = _final_logits(loaded, input_ids, None)
        task.progress(0.7, "Ablated forward")
        ablated = _final_logits(loaded, input_ids, ablation)
        kl = np.zeros(base.num_tokens, np.float32)
        for start in range(0, base.num_tokens, 256):
            task.check_cancelled()
            end = min(start + 256, base.num_tokens)
            p_log = torch.log_softmax(plain(start, end).double(), dim=-1)
            q_log = torch.log_softmax(ablated(start, end).double(), dim=-1)
            kl[start:end] = (p_log.exp() * (p_log - q_log)).sum(dim=-1).float().numpy()
    task.progress(1.0, "Done")
    return AblationShift(base, kl, ablation)


def _final_logits(loaded: LoadedModel, input_ids: Any, ablation: Ablation | None) -> Any:
    """A function (start, end) -> float32 logits [end - start, V] of one forward (with
    ``ablation``): the output head on the kept final hidden states, checked against the
    model's own last logits; the full logits when they disagree."""
    import torch

    model = loaded.model
    base = getattr(model, "base_model", None)
    store: dict[str, Any] = {}

    def hook(_module: Any, _args: Any, output: Any) -> None:
        states = getattr(output, "last_hidden_state", None)
        store["states"] = (states if states is not None else output[0])[0]

    handle = base.register_forward_hook(hook) if base is not None and base is not model else None
    try:
        with ablating(loaded, ablation):
            last = _last_logits_forward(model, input_ids, 1).logits[0, -1].float()
    finally:
        if handle is not None:
            handle.remove()
    states = store.get("states")
    if states is not None:
        mine = _head_logits(model, states[-1:])[0]
        if torch.allclose(mine, last, rtol=1e-4, atol=1e-4):
            return lambda start, end: _head_logits(model, states[start:end])
    with ablating(loaded, ablation):  # the head does more than project: keep every logit
        logits = model(input_ids=input_ids, use_cache=False).logits[0].float()
    return lambda start, end: logits[start:end]

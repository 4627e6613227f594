"""The logit lens: the model's own final norm and output head applied after every layer.

Hooks on the decoder layers keep each layer's output (the residual stream) during one
forward; the distributions are then computed a chunk of positions at a time, so memory
holds [L, T, hidden] residuals and a few [chunk, vocab] blocks, never [L, T, vocab].

The readout is the model's own modules: its final norm (``norm``, ``ln_f``, …) and
output embedding, followed by what its head does after the projection (Gemma's final
logit soft-capping, Cohere's logit scale, Granite's logit divisor). It is checked on
every run: the last layer's logits must equal the model's own output logits (1e-4),
otherwise the lens refuses with a clear message instead of showing wrong numbers.
Transformers' last ``hidden_states`` entry is already normed; the hooks read the last
decoder layer's output instead, which is not, so the norm is applied exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.backend.engine import check_prompt, tokenize
from explorer.backend.loader import LoadedModel
from explorer.backend.memory import memory_limit
from explorer.backend.qk_capture import NotReproducible, QueryKeyRecorder, recording
from explorer.core.errors import ExplorerError, PromptError
from explorer.core.lens import LensResult, NoNextTokenError, vocabulary_table
from explorer.core.progress import TaskState

DEFAULT_LENS_TOP_K = 10
CHUNK_ELEMENTS = 8_000_000
"""Positions per chunk are chosen so a [chunk, vocab] float32 block has about this many values."""
CHECK_TOLERANCE = 1e-4
LAYER_LISTS = ("layers", "h", "blocks", "layer")
FINAL_NORMS = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f", "final_norm")


@dataclass
class Readout:
    """The model's path from a residual-stream vector to next-token logits.

    layers: the decoder layers (a ModuleList of L modules); norm: the final norm;
    head: the output embedding; scale: multiplies the logits (None = 1); softcap:
    logits become softcap·tanh(logits / softcap) (None = off).
    """

    layers: Any
    norm: Any
    head: Any
    scale: float | None = None
    softcap: float | None = None

    def logits(self, residual: Any) -> Any:
        """float32 logits [N, V] from residual-stream rows [N, hidden]."""
        return self.finish(self.head(self.norm(residual)).float())

    def token_logits(self, residual: Any, token_id: int) -> Any:
        """One token's projected logits [N] from residual rows [N, hidden] (one row of the
        head), before ``finish`` (scale, soft-cap)."""
        import torch

        weight = self.head.weight[token_id : token_id + 1]
        bias = getattr(self.head, "bias", None)
        bias = bias[token_id : token_id + 1] if bias is not None else None
        return torch.nn.functional.linear(self.norm(residual), weight, bias).float()[:, 0]

    def finish(self, logits: Any) -> Any:
        """Projected logits -> the model's logits (its scale, then its soft-cap)."""
        import torch

        if self.scale is not None:
            logits = logits * self.scale
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


def find_readout(model: Any, num_layers: int) -> Readout:
    """The decoder layers, final norm and output head of a causal LM; ExplorerError when
    the model has no such structure."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise ExplorerError(f"{type(model).__name__} has no output embedding to read a lens with.")
    import torch

    for _name, module in model.named_modules():
        layers = next((getattr(module, n) for n in LAYER_LISTS
                       if isinstance(getattr(module, n, None), torch.nn.ModuleList)
                       and len(getattr(module, n)) == num_layers), None)
        norm = next((getattr(module, n) for n in FINAL_NORMS
                     if isinstance(getattr(module, n, None), torch.nn.Module)), None)
        if layers is not None and norm is not None:
            return Readout(layers, norm, head)
    raise ExplorerError(
        f"Cannot find the decoder layers and final norm of {type(model).__name__}; the logit "
        "lens needs a model built as layers → final norm → output head.")


def head_candidates(model: Any) -> list[tuple[float | None, float | None]]:
    """(scale, softcap) pairs to try, the config's own first."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    scale = getattr(text, "logit_scale", None)
    divisor = getattr(text, "logits_scaling", None)
    if scale is None and divisor:
        scale = 1.0 / float(divisor)
    scale = None if scale in (None, 1, 1.0) else float(scale)
    cap = getattr(text, "final_logit_softcapping", None)
    cap = None if not cap else float(cap)
    pairs = [(scale, cap), (scale, None), (None, cap), (None, None)]
    return list(dict.fromkeys(pairs))


def calibrate(readout: Readout, model: Any, last_residual: Any, own_logits: Any, name: str) -> None:
    """Pick the scale / soft-cap that makes the last layer's logits equal the model's own
    (``own_logits`` [V] at the last position); ExplorerError when none does."""
    import torch

    own = own_logits.float()
    worst = float("inf")
    for scale, cap in head_candidates(model):
        readout.scale, readout.softcap = scale, cap
        mine = readout.logits(last_residual[None])[0]
        if mine.shape == own.shape:
            diff = float((mine - own).abs().max())
            if torch.allclose(mine, own, rtol=CHECK_TOLERANCE, atol=CHECK_TOLERANCE):
                return
            worst = min(worst, diff)
    raise ExplorerError(
        f"The logit lens cannot reproduce the output head of {name}: its final norm and "
        f"unembedding applied to the last layer differ from the model's own logits by "
        f"{worst:.3g}. The lens is not shown rather than shown wrong.")


def residual_stream(loaded: LoadedModel, ids: list[int], task: TaskState,
                    on_layer: Callable[[int, Any], None] | None = None,
                    ) -> tuple[Readout, list[Any], Any]:
    """One forward of ``ids`` with hooks on the decoder layers.

    Returns the readout (calibrated against the model's own output), the residual stream
    after every layer (L tensors [T, hidden], float32) — or an empty list when
    ``on_layer(layer, residual)`` consumes each layer as it runs — and the model's own
    logits at the last position [V]. Runs sdpa attention where the model allows it
    (no T × T maps), its own attention otherwise.
    """
    import torch

    info = loaded.info
    model = loaded.model
    readout = find_readout(model, info.layers)
    kept: list[Any] = []
    last: dict[str, Any] = {}

    def hook(layer: int) -> Callable[..., None]:
        def keep(_module: Any, _args: Any, output: Any) -> None:
            states = output if torch.is_tensor(output) else output[0]
            states = states[0]
            if layer == info.layers - 1:
                last["states"] = states[-1].clone()
            if on_layer is not None:
                on_layer(layer, states)
            else:
                kept.append(states.float().clone())
            task.progress(0.05 + 0.15 * (layer + 1) / info.layers, f"Layer {layer + 1}/{info.layers}")
        return keep

    input_ids = torch.tensor([ids], dtype=torch.long)

    def forward(**extra: Any) -> Any:
        kept.clear()
        last.clear()
        return model(input_ids=input_ids, use_cache=False, **extra)

    def forward_last_logits() -> Any:
        try:
            return forward(logits_to_keep=1)
        except TypeError:  # a head without logits_to_keep
            return forward()

    head_dim = info.head_dim or info.hidden_size // info.heads
    with torch.inference_mode():
        handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(readout.layers)]
        try:
            try:
                recorder = QueryKeyRecorder(info.layers, info.heads, info.kv_heads, head_dim,
                                            len(ids), record=False,
                                            is_cancel_requested=task.is_cancel_requested)
                with recording(model, recorder):
                    outputs = forward_last_logits()
            except NotReproducible:  # the model computes attention its own way
                outputs = forward_last_logits()
        finally:
            for handle in handles:
                handle.remove()
        if on_layer is None and len(kept) != info.layers:
            raise ExplorerError(f"The decoder layers of {info.name} ran {len(kept)} times for "
                                f"{info.layers} layers; the logit lens cannot follow them.")
        own = outputs.logits[0, -1]
        calibrate(readout, model, last["states"], own, info.name)
    return readout, kept, own


def check_causal(loaded: LoadedModel) -> None:
    if not loaded.info.causal:
        raise NoNextTokenError(
            f"{loaded.info.name} is an encoder: it has no next-token distribution, so there is "
            "no logit lens to read. Load a decoder (causal) model.")


def lens_bytes(loaded: LoadedModel, num_tokens: int) -> int:
    """Peak extra bytes: every layer's float32 residual stream, a forward's activations
    and a few [chunk, vocab] blocks."""
    info = loaded.info
    residuals = info.layers * num_tokens * info.hidden_size * 4
    activations = num_tokens * info.hidden_size * 4 * 12
    return residuals + activations + 6 * CHUNK_ELEMENTS * 4


def check_lens_memory(loaded: LoadedModel, num_tokens: int, limit: int | None = None) -> None:
    needed = lens_bytes(loaded, num_tokens)
    limit = memory_limit(limit)
    if limit is not None and needed > limit:
        raise PromptError(
            f"The logit lens of a {num_tokens:,}-token prompt needs about {needed / 1e9:.1f} GB "
            f"(the residual stream of {loaded.info.layers} layers), more than the "
            f"{limit / 1e9:.1f} GB that can safely be used. Shorten the prompt.")


def logit_lens(loaded: LoadedModel, prompt: str, top_k: int = DEFAULT_LENS_TOP_K,
               task: TaskState | None = None) -> LensResult:
    """The logit lens of ``prompt``: for every layer and position the top-``top_k``
    next-token guesses, the probability of the full model's first choice and the KL
    divergence from the full model (see ``explorer.core.lens``). Raises NoNextTokenError
    for encoders and PromptError for an empty or too long prompt."""
    task = task or TaskState()
    check_causal(loaded)
    ids, pieces, _offsets = tokenize(loaded, prompt)
    check_prompt(loaded, prompt, len(ids))
    return lens_of_ids(loaded, ids, pieces, top_k, task)


def lens_of_ids(loaded: LoadedModel, ids: list[int], pieces: list[str], top_k: int,
                task: TaskState) -> LensResult:
    """The lens of a tokenised sequence (``logit_lens`` without the tokenizer)."""
    import torch

    check_causal(loaded)
    if not ids:
        raise PromptError("There are no tokens to read a lens from.")
    if top_k < 1:
        raise ExplorerError("top-k must be at least 1.")
    check_lens_memory(loaded, len(ids))
    started = time.perf_counter()
    task.progress(0.02, "Running the model")
    readout, residuals, _own = residual_stream(loaded, ids, task)
    forward_s = time.perf_counter() - started
    layers, num = len(residuals), len(ids)
    vocab = int(readout.head.weight.shape[0])
    k = min(top_k, vocab)
    out_ids = np.empty((layers, num, k), np.int64)
    out_probs = np.empty((layers, num, k), np.float32)
    final_ids = np.empty(num, np.int64)
    final_probs = np.empty((layers, num), np.float32)
    kl = np.empty((layers, num), np.float32)
    lse = np.empty((layers, num), np.float32)
    chunk = max(1, CHUNK_ELEMENTS // vocab)
    steps = -(-num // chunk) * layers
    done = 0
    with torch.inference_mode():
        for start in range(0, num, chunk):
            end = min(start + chunk, num)
            final_logits = readout.logits(residuals[-1][start:end])
            final_logp = final_logits - torch.logsumexp(final_logits, dim=-1, keepdim=True)
            final_p = final_logp.exp()
            best = final_logits.argmax(dim=-1)
            final_ids[start:end] = best.numpy()
            for layer in range(layers):
                logits = final_logits if layer == layers - 1 else readout.logits(residuals[layer][start:end])
                norm = torch.logsumexp(logits, dim=-1, keepdim=True)
                logp = logits - norm
                values, indices = torch.topk(logp, k, dim=-1)
                out_ids[layer, start:end] = indices.numpy()
                out_probs[layer, start:end] = values.exp().numpy()
                lse[layer, start:end] = norm[:, 0].numpy()
                final_probs[layer, start:end] = logp.gather(1, best[:, None])[:, 0].exp().numpy()
                kl[layer, start:end] = (final_p * (final_logp - logp)).sum(dim=-1).clamp_min(0.0).numpy()
                del logits, logp
                done += 1
                task.progress(0.2 + 0.8 * done / steps,
                              f"Logit lens: positions {start}–{end - 1}, layer {layer + 1}/{layers}")
            del final_logits, final_logp, final_p
    residuals.clear()
    vocab_ids, vocab_pieces = vocabulary_table(
        np.concatenate([out_ids.reshape(-1), final_ids]), loaded.tokenizer.convert_ids_to_tokens)
    return LensResult(
        token_ids=np.asarray(ids, np.int64), tokens=tuple(pieces), lens_ids=out_ids,
        lens_probs=out_probs, lens_final_ids=final_ids, lens_final_probs=final_probs,
        lens_kl=kl, lens_logsumexp=lse, vocab_ids=vocab_ids, vocab_pieces=vocab_pieces,
        model_name=loaded.info.name, piece_style=loaded.info.piece_style,
        timings={"forward_s": forward_s, "lens_s": time.perf_counter() - started},
    )


def single_token_id(loaded: LoadedModel, text: str) -> int:
    """The id of ``text`` as one token: an exact piece (``Ġthe``), else the text encoded
    without special tokens (`` the``). ExplorerError when it is not exactly one token."""
    tokenizer = loaded.tokenizer
    if not text:
        raise ExplorerError("Type a token to follow through the layers.")
    vocab = tokenizer.get_vocab()
    if text in vocab:
        return int(vocab[text])
    encoded = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(encoded) != 1:
        pieces = tokenizer.convert_ids_to_tokens(encoded)
        raise ExplorerError(f"'{text}' is {len(encoded)} tokens ({' | '.join(map(str, pieces))}), "
                            "not one; type a single token.")
    return int(encoded[0])


def lens_token_probs(loaded: LoadedModel, lens: LensResult, token_id: int,
                     task: TaskState | None = None) -> np.ndarray:
    """float32[L, T]: the probability of ``token_id`` after every layer at every position of
    the prompt ``lens`` was computed on. One forward; each layer computes only that token's
    logit (one row of the head) as it runs, the normaliser is ``lens.lens_logsumexp``."""
    task = task or TaskState()
    check_causal(loaded)
    vocab = int(loaded.model.get_output_embeddings().weight.shape[0])
    if not 0 <= token_id < vocab:
        raise ExplorerError(f"Token id {token_id} is outside the vocabulary (0..{vocab - 1}).")
    modules = find_readout(loaded.model, loaded.info.layers)
    raw: dict[int, Any] = {}

    def on_layer(layer: int, states: Any) -> None:
        raw[layer] = modules.token_logits(states.float(), token_id)

    readout, _, _ = residual_stream(loaded, lens.token_ids.tolist(), task, on_layer=on_layer)
    if sorted(raw) != list(range(lens.num_layers)):
        raise ExplorerError("The model's layers do not match this lens result; compute it again.")
    logits = np.stack([readout.finish(raw[layer]).numpy() for layer in range(lens.num_layers)])
    return lens.token_probs(logits)

"""One prompt through one model: every number the panels show, as numpy arrays."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.backend.ablation import ablating
from explorer.backend.attention_capture import AttentionCapture
from explorer.backend.device import out_of_memory_reported
from explorer.backend.introspect import positional_table
from explorer.backend.loader import LoadedModel
from explorer.backend.memory import check_memory
from explorer.backend.qk_capture import NotReproducible, QueryKeyRecorder, recording
from explorer.core.ablation import Ablation
from explorer.core.attention import AttentionSpec, rebuild_rows, resolve_mode
from explorer.core.errors import AttentionUnavailableError, Cancelled, PromptError
from explorer.core.progress import TaskState
from explorer.core.types import RunResult

DEFAULT_TOP_K = 20


def tokenize(loaded: LoadedModel, prompt: str) -> tuple[list[int], list[str], np.ndarray]:
    """Token ids, pieces and character offsets (int64[T, 2], [-1, -1] for special tokens)."""
    tokenizer = loaded.tokenizer
    try:
        encoding = tokenizer(prompt, return_offsets_mapping=True, return_special_tokens_mask=True)
        offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        special = np.asarray(encoding["special_tokens_mask"], dtype=bool)
        offsets[special] = -1
    except NotImplementedError:  # slow tokenizers cannot report offsets
        encoding = tokenizer(prompt)
        offsets = np.full((len(encoding["input_ids"]), 2), -1, dtype=np.int64)
    ids = [int(i) for i in encoding["input_ids"]]
    pieces = [str(p) for p in tokenizer.convert_ids_to_tokens(ids)]
    return ids, pieces, offsets


def check_prompt(loaded: LoadedModel, prompt: str, num_tokens: int) -> None:
    if not prompt:
        raise PromptError("The prompt is empty. Type some text to analyse.")
    if num_tokens == 0:
        raise PromptError("The prompt produced no tokens.")
    limit = loaded.info.context_length
    if num_tokens > limit:
        raise PromptError(
            f"The prompt is {num_tokens} tokens long, past the model's context window of "
            f"{limit} tokens. Shorten it by {num_tokens - limit} tokens."
        )


def analyze(
    loaded: LoadedModel,
    prompt: str,
    top_k: int = DEFAULT_TOP_K,
    task: TaskState | None = None,
    attention: str = "auto",
    ablation: Ablation | None = None,
) -> RunResult:
    """Run ``prompt`` through the model and collect every number the panels show
    (``_analyze``); with ``ablation``, through the model with those heads knocked out
    (``backend.ablation.ablating``): every number, later layers' attention included, is
    then the ablated model's. None or an empty ablation is the plain run."""
    with ablating(loaded, ablation):
        return _analyze(loaded, prompt, top_k, task, attention)


def _analyze(
    loaded: LoadedModel,
    prompt: str,
    top_k: int = DEFAULT_TOP_K,
    task: TaskState | None = None,
    attention: str = "auto",
) -> RunResult:
    """Run ``prompt`` through the model and collect every number the panels show.

    ``attention`` picks how attention is kept (``explorer.core.attention``):
    ``full`` captures float16[layer, head, query, key] during an eager forward; ``lazy``
    records the post-positional queries and keys during a fast sdpa forward, so any map
    can be rebuilt exactly with ``head_map``; ``none`` keeps no attention; ``auto`` is
    full below 1,024 tokens and lazy from there. A model whose attention cannot be
    rebuilt from queries and keys falls back to full capture, with a note in ``notes``.
    For causal models: the next-token top-k after every position (ids, probs, logits
    sorted descending), the distribution after the last token and the probability and
    rank of the prompt's own next token.
    """
    task = task or TaskState()
    if loaded.info.encoder_decoder:  # encoder, decoder and cross stacks: backend/seq2seq.py
        from explorer.backend.seq2seq import analyze_seq2seq

        return analyze_seq2seq(loaded, prompt, top_k=top_k, task=task).stack_result("cross")
    started = time.perf_counter()
    ids, pieces, offsets = tokenize(loaded, prompt)
    check_prompt(loaded, prompt, len(ids))
    mode = resolve_mode(attention, len(ids))
    notes: list[str] = []
    check_memory(loaded.info, len(ids), mode)
    task.progress(0.05, "Running the model")
    forward_started = time.perf_counter()
    with out_of_memory_reported(loaded.info.device, f"running a {len(ids)}-token prompt"):
        if mode == "full" and loaded.info.dtype != "float32":
            forward = _full_maps_in_float32(loaded, ids, top_k, task, notes)
        elif mode == "full":
            forward = _full_forward(loaded, ids, top_k, task)
        else:
            try:
                forward = _fast_forward(loaded, ids, top_k, task, record=mode == "lazy")
            except NotReproducible as exc:
                notes.append(f"Attention of {loaded.info.name} cannot be rebuilt from its queries "
                             f"and keys ({exc}); every map was captured in full instead.")
                mode = "full"
                check_memory(loaded.info, len(ids), mode)
                forward = _full_forward(loaded, ids, top_k, task)
    forward_s = time.perf_counter() - forward_started
    task.progress(0.9, "Collecting results")
    info = loaded.info
    topk_ids, topk_probs, topk_logits = forward.topk
    num = len(ids)
    if topk_ids.shape[1]:
        flat = loaded.tokenizer.convert_ids_to_tokens(topk_ids.reshape(-1).tolist())
        k = topk_ids.shape[1]
        topk_tokens = [[str(t) for t in flat[i * k : (i + 1) * k]] for i in range(num)]
    else:
        topk_tokens = [[] for _ in range(num)]
    positional = positional_table(loaded.model, info.positional_kind, num)
    task.progress(1.0, "Done")
    return RunResult(
        prompt=prompt,
        token_ids=np.asarray(ids, dtype=np.int64),
        tokens=tuple(pieces),
        offsets=offsets,
        attentions=forward.attentions,
        topk_ids=topk_ids,
        topk_probs=topk_probs,
        topk_logits=topk_logits,
        topk_tokens=topk_tokens,
        positional=positional,
        positional_kind=info.positional_kind,
        model_info=info,
        timings={"forward_s": forward_s, "run_s": time.perf_counter() - started},
        last_probs=forward.last_probs,
        actual_next_probs=forward.actual_probs,
        actual_next_ranks=forward.actual_ranks,
        attention_mode=mode,
        queries=forward.queries,
        keys=forward.keys,
        attention_spec=forward.spec,
        notes=tuple(notes),
    )


@dataclass
class _Forward:
    """What one forward produced (numpy), before it becomes a RunResult."""

    topk: tuple[np.ndarray, np.ndarray, np.ndarray]
    last_probs: np.ndarray
    actual_probs: np.ndarray
    actual_ranks: np.ndarray
    attentions: np.ndarray | None = None
    queries: np.ndarray | None = None
    keys: np.ndarray | None = None
    spec: AttentionSpec | None = None


def _no_next_token(num: int) -> _Forward:
    empty = (np.zeros((num, 0), np.int64), np.zeros((num, 0), np.float32),
             np.zeros((num, 0), np.float32))
    return _Forward(empty, np.zeros(0, np.float32), np.full(num, np.nan, np.float32),
                    np.full(num, -1, np.int64))


def _next_token(loaded: LoadedModel, logits: Any, ids: list[int], top_k: int,
                task: TaskState) -> _Forward:
    if not loaded.info.causal:
        return _no_next_token(len(ids))
    topk, last_probs, probs, ranks = next_token_arrays(logits, ids, top_k,
                                                       is_cancel_requested=task.is_cancel_requested)
    return _Forward(topk, last_probs, probs, ranks)


def _full_maps_in_float32(loaded: LoadedModel, ids: list[int], top_k: int, task: TaskState,
                          notes: list[str]) -> _Forward:
    """Every map in float32 although the weights are bfloat16/float16: record the queries
    and keys (copied to float32) during the forward, then softmax them in float32 here.
    Models whose attention cannot be rebuilt fall back to the eager weights, with a note."""
    try:
        forward = _fast_forward(loaded, ids, top_k, task, record=True)
    except NotReproducible as exc:
        notes.append(f"Maps of {loaded.info.name} are its own {loaded.info.dtype} eager weights "
                     f"(they cannot be rebuilt in float32: {exc}).")
        return _full_forward(loaded, ids, top_k, task)
    queries, keys, spec = forward.queries, forward.keys, forward.spec
    assert queries is not None and keys is not None and spec is not None
    layers, heads, num = queries.shape[:3]
    rows = np.arange(num, dtype=np.int64)
    maps = np.empty((layers, heads, num, num), np.float16)
    for layer, layer_spec in enumerate(spec.layers):
        task.check_cancelled()
        for head in range(heads):
            maps[layer, head] = rebuild_rows(queries[layer, head], keys[layer, layer_spec.kv_map[head]],
                                             layer_spec, head, rows)
    forward.queries = forward.keys = forward.spec = None
    forward.attentions = maps
    return forward


def _full_forward(loaded: LoadedModel, ids: list[int], top_k: int, task: TaskState) -> _Forward:
    """Eager forward; every layer's weights are copied into float16[L, H, T, T] as it runs."""
    import torch

    info = loaded.info
    num = len(ids)
    input_ids = torch.tensor([ids], dtype=torch.long, device=loaded.model.device)
    with torch.inference_mode():
        capture = AttentionCapture.attach(loaded.model, info.layers, info.heads, num,
                                          task.is_cancel_requested)
        try:
            outputs = loaded.model(input_ids=input_ids, output_attentions=capture is None,
                                   use_cache=False)
        finally:
            if capture is not None:
                capture.detach()
        if capture is not None:
            attentions = capture.result(info.name)
        else:
            attentions = _attentions_to_float16(outputs.attentions, info.name)
        logits = outputs.logits[0] if info.causal else None
        del outputs
        forward = _next_token(loaded, logits, ids, top_k, task)
    forward.attentions = attentions
    return forward


def _fast_forward(loaded: LoadedModel, ids: list[int], top_k: int, task: TaskState,
                  record: bool) -> _Forward:
    """sdpa forward through the query/key recorder (``record``: keep queries, keys and the
    spec for lazy maps; otherwise attention is computed and dropped). The output head runs
    on the final hidden states in chunks, so no [T, V] logits tensor is ever built.
    Raises NotReproducible when the attention cannot be rebuilt (the caller falls back)."""
    import torch

    info = loaded.info
    model = loaded.model
    num = len(ids)
    head_dim = info.head_dim or info.hidden_size // info.heads
    recorder = QueryKeyRecorder(info.layers, info.heads, info.kv_heads, head_dim, num,
                                record=record, is_cancel_requested=task.is_cancel_requested)
    input_ids = torch.tensor([ids], dtype=torch.long, device=model.device)
    hidden: dict[str, Any] = {}
    with torch.inference_mode():
        handle = _final_hidden_hook(model, hidden) if info.causal else None
        try:
            with recording(model, recorder):
                outputs = _forward_last_logits(model, input_ids)
        finally:
            if handle is not None:
                handle.remove()
        spec = recorder.spec() if record else None
        logits: Any = None
        if info.causal:
            logits = _chunked_logits(model, hidden.get("states"), outputs.logits[0, -1])
            if logits is None:  # the head does more than project (and soft-cap): let it run
                logits = model(input_ids=input_ids, use_cache=False).logits[0]
        del outputs
        forward = _next_token(loaded, logits, ids, top_k, task)
    forward.queries, forward.keys, forward.spec = recorder.queries, recorder.keys, spec
    return forward


def _forward_last_logits(model: Any, input_ids: Any) -> Any:
    try:
        return model(input_ids=input_ids, use_cache=False, logits_to_keep=1)
    except TypeError:  # an older head without logits_to_keep
        return model(input_ids=input_ids, use_cache=False)


def _final_hidden_hook(model: Any, store: dict[str, Any]) -> Any:
    """Keep the base model's last hidden state [T, hidden] (the output head's input)."""
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        return None

    def hook(_module: Any, _args: Any, output: Any) -> None:
        states = getattr(output, "last_hidden_state", None)
        if states is None and isinstance(output, tuple):
            states = output[0]
        store["states"] = states[0] if states is not None else None

    return base.register_forward_hook(hook)


def _chunked_logits(model: Any, states: Any, last_logits: Any) -> Any:
    """A function (start, end) -> float32 logits [end - start, V] from the final hidden
    states, checked against the model's own logits at the last position; None when they
    disagree (the head does something more) or the states were not captured."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if states is None or head is None:
        return None
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") \
        else model.config
    cap = getattr(text_config, "final_logit_softcapping", None)

    def logits(start: int, end: int) -> Any:
        block = head(states[start:end]).float()
        if cap is not None:
            block = torch.tanh(block / cap) * cap
        return block

    mine = logits(states.shape[0] - 1, states.shape[0])[0]
    theirs = last_logits.float()
    if mine.shape != theirs.shape or not torch.allclose(mine, theirs, rtol=1e-4, atol=1e-4):
        return None
    return logits


def _attentions_to_float16(attentions: Any, name: str) -> np.ndarray:
    """tuple of L tensors [1, H, T, T] -> float16[L, H, T, T], one layer at a time."""
    import torch

    if not attentions or any(a is None for a in attentions):
        raise AttentionUnavailableError(
            f"The model '{name}' returned no attention weights; it needs eager attention."
        )
    first = attentions[0]
    out = np.empty((len(attentions), *first.shape[1:]), dtype=np.float16)
    for layer, tensor in enumerate(attentions):
        out[layer] = tensor[0].to(torch.float16).cpu().numpy()
    return out


def next_token_arrays(logits: Any, ids: list[int], k: int, chunk: int = 256,
                      is_cancel_requested: Callable[[], bool] | None = None,
                      ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """From logits [T, V] (a tensor, or a function (start, end) -> the rows [start:end]),
    in chunks of positions (no extra [T, V] tensor):

    top-k after every position: int64[T, K] ids, float32[T, K] probs, float32[T, K] logits
    (sorted descending); float32[V] distribution after the last token; float32[T]
    probability and int64[T] 1-based rank of the prompt's own next token (NaN / -1 at the end).
    """
    import torch

    rows = logits if callable(logits) else (lambda start, end: logits[start:end])
    num = len(ids)
    vocab = int(rows(0, 1).shape[-1])
    k = max(1, min(k, vocab))
    top_ids = np.empty((num, k), np.int64)
    top_probs = np.empty((num, k), np.float32)
    top_logits = np.empty((num, k), np.float32)
    probs = np.full(num, np.nan, np.float32)
    ranks = np.full(num, -1, np.int64)
    following = torch.tensor(ids[1:] + [0], dtype=torch.long)
    for start in range(0, num, chunk):
        if is_cancel_requested is not None and is_cancel_requested():
            raise Cancelled("cancelled while computing next-token probabilities")
        end = min(start + chunk, num)
        block = rows(start, end).float()  # float32 whatever the weights' dtype
        log_norm = torch.logsumexp(block, dim=-1, keepdim=True)
        values, indices = torch.topk(block, k, dim=-1)
        top_ids[start:end] = indices.cpu().numpy()
        top_logits[start:end] = values.cpu().numpy()
        top_probs[start:end] = torch.exp(values - log_norm).cpu().numpy()
        real = min(end, num - 1) - start  # rows that have a following token
        if real > 0:
            chosen = block[:real].gather(1, following[start : start + real, None].to(block.device))
            probs[start : start + real] = (chosen - log_norm[:real])[:, 0].exp().cpu().numpy()
            ranks[start : start + real] = ((block[:real] > chosen).sum(dim=-1) + 1).cpu().numpy()
        if end == num:
            last_probs = torch.exp(block[-1] - log_norm[-1]).cpu().numpy().astype(np.float32)
    return (top_ids, top_probs, top_logits), last_probs, probs, ranks

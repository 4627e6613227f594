"""One prompt through one model: every number the panels show, as numpy arrays."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from explorer.backend.attention_capture import AttentionCapture
from explorer.backend.introspect import positional_table
from explorer.backend.loader import LoadedModel
from explorer.backend.memory import check_memory
from explorer.core.errors import AttentionUnavailableError, PromptError
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
) -> RunResult:
    """Run ``prompt`` through the model with eager attention and collect the results.

    attentions: float16[layer, head, query, key]; for causal models the
    next-token top-k after every position (ids, probs, logits sorted descending).
    """
    import torch

    task = task or TaskState()
    started = time.perf_counter()
    ids, pieces, offsets = tokenize(loaded, prompt)
    check_prompt(loaded, prompt, len(ids))
    check_memory(loaded.info, len(ids))
    task.progress(0.05, "Running the model")
    info = loaded.info
    forward_started = time.perf_counter()
    num = len(ids)
    input_ids = torch.tensor([ids], dtype=torch.long)
    with torch.inference_mode():
        capture = AttentionCapture.attach(loaded.model, info.layers, info.heads, num,
                                          task.is_cancel_requested)
        try:
            outputs = loaded.model(input_ids=input_ids, output_attentions=capture is None,
                                   use_cache=False)
        finally:
            if capture is not None:
                capture.detach()
    forward_s = time.perf_counter() - forward_started
    task.progress(0.8, "Collecting attention")
    if capture is not None:
        attentions = capture.result(info.name)
    else:
        attentions = _attentions_to_float16(outputs.attentions, info.name)
    if info.causal:
        topk, last_probs, actual_probs, actual_ranks = next_token_arrays(outputs.logits[0], ids, top_k)
    else:
        topk = None
        last_probs = np.zeros(0, np.float32)
        actual_probs, actual_ranks = np.full(num, np.nan, np.float32), np.full(num, -1, np.int64)
    del outputs
    if topk is None:
        topk_ids = np.zeros((num, 0), np.int64)
        topk_probs = np.zeros((num, 0), np.float32)
        topk_logits = np.zeros((num, 0), np.float32)
        topk_tokens: list[list[str]] = [[] for _ in range(num)]
    else:
        topk_ids, topk_probs, topk_logits = topk
        flat = loaded.tokenizer.convert_ids_to_tokens(topk_ids.reshape(-1).tolist())
        k = topk_ids.shape[1]
        topk_tokens = [[str(t) for t in flat[i * k : (i + 1) * k]] for i in range(num)]
    positional = positional_table(loaded.model, info.positional_kind, num)
    task.progress(1.0, "Done")
    return RunResult(
        prompt=prompt,
        token_ids=np.asarray(ids, dtype=np.int64),
        tokens=tuple(pieces),
        offsets=offsets,
        attentions=attentions,
        topk_ids=topk_ids,
        topk_probs=topk_probs,
        topk_logits=topk_logits,
        topk_tokens=topk_tokens,
        positional=positional,
        positional_kind=info.positional_kind,
        model_info=info,
        timings={"forward_s": forward_s, "run_s": time.perf_counter() - started},
        last_probs=last_probs,
        actual_next_probs=actual_probs,
        actual_next_ranks=actual_ranks,
    )


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
        out[layer] = tensor[0].to(torch.float16).numpy()
    return out


def next_token_arrays(logits: Any, ids: list[int], k: int, chunk: int = 256,
                       ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """From logits [T, V], in chunks of positions (no extra [T, V] tensor):

    top-k after every position: int64[T, K] ids, float32[T, K] probs, float32[T, K] logits
    (sorted descending); float32[V] distribution after the last token; float32[T]
    probability and int64[T] 1-based rank of the prompt's own next token (NaN / -1 at the end).
    """
    import torch

    num, vocab = logits.shape
    k = max(1, min(k, vocab))
    top_ids = np.empty((num, k), np.int64)
    top_probs = np.empty((num, k), np.float32)
    top_logits = np.empty((num, k), np.float32)
    probs = np.full(num, np.nan, np.float32)
    ranks = np.full(num, -1, np.int64)
    following = torch.tensor(ids[1:] + [0], dtype=torch.long)
    for start in range(0, num, chunk):
        end = min(start + chunk, num)
        block = logits[start:end].float()
        log_norm = torch.logsumexp(block, dim=-1, keepdim=True)
        values, indices = torch.topk(block, k, dim=-1)
        top_ids[start:end] = indices.numpy()
        top_logits[start:end] = values.numpy()
        top_probs[start:end] = torch.exp(values - log_norm).numpy()
        real = min(end, num - 1) - start  # rows that have a following token
        if real > 0:
            chosen = block[:real].gather(1, following[start : start + real, None])
            probs[start : start + real] = (chosen - log_norm[:real])[:, 0].exp().numpy()
            ranks[start : start + real] = ((block[:real] > chosen).sum(dim=-1) + 1).numpy()
        if end == num:
            last_probs = torch.exp(block[-1] - log_norm[-1]).numpy().astype(np.float32)
    return (top_ids, top_probs, top_logits), last_probs, probs, ranks

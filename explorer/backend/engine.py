"""One prompt through one model: every number the panels show, as numpy arrays."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.backend.ablation import ablating
from explorer.backend.attention_capture import AttentionCapture
from explorer.backend.device import out_of_memory_reported
from explorer.backend.introspect import positional_table
from explorer.backend.loader import LoadedModel
from explorer.backend.memory import check_memory
from explorer.backend.next_tokens import NextTokenArrays
from explorer.backend.qk_capture import NotReproducible, QueryKeyRecorder, recording
from explorer.backend.sliced_mlp import mlps_in_slices
from explorer.core.ablation import Ablation
from explorer.core.attention import AttentionSpec, rebuild_rows, resolve_mode
from explorer.core.errors import AttentionUnavailableError, PromptError
from explorer.core.progress import TaskState
from explorer.core.types import RunResult

DEFAULT_TOP_K = 20
STEP_LOGITS = 1 << 22
"""Logits computed per ``PendingNextTokens.step`` (positions x vocabulary): about a tenth
of a second on a laptop CPU, so a map request waits at most that long behind it (up to
about twice that for vocabularies above 131,072 tokens, where MIN_STEP_ROWS decides)."""
MIN_STEP_ROWS = 32
"""Positions per step at least. Every step reads the whole output head: with Gemma 3's
262,144-token vocabulary (0.67 GB of weights), 16 positions a step cost 8.9 ms a position
and 32 cost 6.6 ms (0.14 and 0.21 s a step; 4.1 ms in chunks of 256)."""


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
            f"The prompt is {num_tokens:,} tokens long, past the model's context window of "
            f"{limit:,} tokens. Shorten it by {num_tokens - limit:,} tokens."
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
    task = task or TaskState()
    first, rest = analyze_first(loaded, prompt, top_k, task, attention, ablation)
    return first if rest is None else rest.finish(task)


def analyze_first(
    loaded: LoadedModel,
    prompt: str,
    top_k: int = DEFAULT_TOP_K,
    task: TaskState | None = None,
    attention: str = "auto",
    ablation: Ablation | None = None,
) -> tuple[RunResult, PendingNextTokens | None]:
    """``analyze`` for a window that shows a long run as early as it can: the result and
    None, or, when the run went through the fast forward (lazy or no attention kept), a
    result whose next-token rows are those of the last position only
    (``next_tokens_pending``) and the ``PendingNextTokens`` that computes the others
    (``step`` by step, then ``result``). At 1,024 tokens the others take about a third
    of the time of the forward itself."""
    with ablating(loaded, ablation):
        return _analyze(loaded, prompt, top_k, task, attention, defer=True)


def _analyze(
    loaded: LoadedModel,
    prompt: str,
    top_k: int = DEFAULT_TOP_K,
    task: TaskState | None = None,
    attention: str = "auto",
    defer: bool = False,
) -> tuple[RunResult, PendingNextTokens | None]:
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

    Returns the result and None, or with ``defer`` (see ``analyze_first``) possibly a
    result with only the last position's row and the ``PendingNextTokens`` for the others.
    """
    task = task or TaskState()
    if loaded.info.encoder_decoder:  # encoder, decoder and cross stacks: backend/seq2seq.py
        from explorer.backend.seq2seq import analyze_seq2seq

        return analyze_seq2seq(loaded, prompt, top_k=top_k, task=task).stack_result("cross"), None
    started = time.perf_counter()
    ids, pieces, offsets = tokenize(loaded, prompt)
    check_prompt(loaded, prompt, len(ids))
    mode = resolve_mode(attention, len(ids))
    notes: list[str] = []
    check_memory(loaded.info, len(ids), mode)
    task.progress(0.05, "Running the model")
    forward_started = time.perf_counter()
    with out_of_memory_reported(loaded.info.device, f"running a {len(ids):,}-token prompt"):
        if mode == "full" and loaded.info.dtype != "float32":
            forward = _full_maps_in_float32(loaded, ids, top_k, task, notes)
        elif mode == "full":
            forward = _full_forward(loaded, ids, top_k, task)
        else:
            try:
                forward = _fast_forward(loaded, ids, top_k, task, record=mode == "lazy",
                                        defer=defer)
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
    rest = forward.rest
    if rest is not None:  # the first result gets copies: the pending rows are filled later
        topk_ids, topk_probs, topk_logits = topk_ids.copy(), topk_probs.copy(), topk_logits.copy()
    num = len(ids)
    positional = positional_table(loaded.model, info.positional_kind, num)
    task.progress(1.0 if rest is None else 0.92,
                  "Done" if rest is None else "Next-token probabilities at every position")
    result = RunResult(
        prompt=prompt,
        token_ids=np.asarray(ids, dtype=np.int64),
        tokens=tuple(pieces),
        offsets=offsets,
        attentions=forward.attentions,
        topk_ids=topk_ids,
        topk_probs=topk_probs,
        topk_logits=topk_logits,
        topk_tokens=_topk_tokens(loaded, topk_ids, None if rest is None else [num - 1]),
        positional=positional,
        positional_kind=info.positional_kind,
        model_info=info,
        timings={"forward_s": forward_s, "run_s": time.perf_counter() - started},
        last_probs=forward.last_probs,
        actual_next_probs=forward.actual_probs.copy() if rest is not None else forward.actual_probs,
        actual_next_ranks=forward.actual_ranks.copy() if rest is not None else forward.actual_ranks,
        attention_mode=mode,
        queries=forward.queries,
        keys=forward.keys,
        attention_spec=forward.spec,
        notes=tuple(notes),
        next_tokens_pending=rest is not None,
    )
    if rest is None:
        return result, None
    return result, PendingNextTokens(result, rest, loaded,
                                     chunk=max(MIN_STEP_ROWS, min(256, STEP_LOGITS // rest.vocab)))


def _topk_tokens(loaded: LoadedModel, topk_ids: np.ndarray,
                 rows: list[int] | None = None) -> list[list[str]]:
    """The candidates as token pieces, str[T][K]; only ``rows`` (others empty) when given."""
    num, k = topk_ids.shape
    wanted = range(num) if rows is None else rows
    out: list[list[str]] = [[] for _ in range(num)]
    if not k:
        return out
    flat = loaded.tokenizer.convert_ids_to_tokens(topk_ids[list(wanted)].reshape(-1).tolist())
    for n, row in enumerate(wanted):
        out[row] = [str(t) for t in flat[n * k : (n + 1) * k]]
    return out


class PendingNextTokens:
    """What a run shown early (``analyze_first``) still has to compute: the next-token
    rows of every position but the last, a chunk of about ``STEP_LOGITS`` logits per
    ``step``. Holds the model's final hidden states [T, hidden] (its dtype, on its
    device) and the loaded model until it is dropped."""

    def __init__(self, first: RunResult, arrays: NextTokenArrays, loaded: LoadedModel,
                 chunk: int) -> None:
        self.first = first
        self.arrays = arrays
        self.chunk = chunk
        self._loaded = loaded
        self.seconds = 0.0

    @property
    def done(self) -> bool:
        """Every position's row is computed."""
        return self.arrays.done

    def step(self) -> bool:
        """Compute the next chunk of positions; True when every position is done."""
        started = time.perf_counter()
        with self._out_of_memory_reported():
            done = self.arrays.fill_next(self.chunk)
        self.seconds += time.perf_counter() - started
        return done

    def finish(self, task: TaskState | None = None) -> RunResult:
        """Compute what is left at once (in larger chunks) and return the complete result."""
        task = task or TaskState()
        started = time.perf_counter()
        with self._out_of_memory_reported():
            self.arrays.fill_all(256, task.is_cancel_requested)
        self.seconds += time.perf_counter() - started
        task.progress(1.0, "Done")
        return self.result()

    def result(self) -> RunResult:
        """The first result with every next-token row computed."""
        if not self.done:
            raise RuntimeError("next-token rows are still missing; step() until done")
        (ids, probs, logits), _, actual_probs, actual_ranks = self.arrays.arrays
        first = self.first
        return dataclasses.replace(
            first, topk_ids=ids, topk_probs=probs, topk_logits=logits,
            topk_tokens=_topk_tokens(self._loaded, ids),
            actual_next_probs=actual_probs, actual_next_ranks=actual_ranks,
            next_tokens_pending=False,
            timings={**first.timings, "next_tokens_s": self.seconds,
                     "run_s": first.timings.get("run_s", 0.0) + self.seconds})

    def _out_of_memory_reported(self) -> Any:
        return out_of_memory_reported(self._loaded.info.device, "computing the next-token "
                                      f"probabilities of a {self.first.num_tokens:,}-token prompt")


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
    rest: NextTokenArrays | None = None
    """Set when the rows of every position but the last are still to be computed."""


def _no_next_token(num: int) -> _Forward:
    empty = (np.zeros((num, 0), np.int64), np.zeros((num, 0), np.float32),
             np.zeros((num, 0), np.float32))
    return _Forward(empty, np.zeros(0, np.float32), np.full(num, np.nan, np.float32),
                    np.full(num, -1, np.int64))


def _next_token(loaded: LoadedModel, logits: Any, ids: list[int], top_k: int,
                task: TaskState, defer: bool = False) -> _Forward:
    """``defer``: compute the last position only (``_Forward.rest`` does the others)."""
    if not loaded.info.causal:
        return _no_next_token(len(ids))
    arrays = NextTokenArrays(logits, ids, top_k)
    if not defer:
        arrays.fill_all(is_cancel_requested=task.is_cancel_requested)
    topk, last_probs, probs, ranks = arrays.arrays
    return _Forward(topk, last_probs, probs, ranks, rest=None if arrays.done else arrays)


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
                  record: bool, defer: bool = False) -> _Forward:
    """sdpa forward through the query/key recorder (``record``: keep queries, keys and the
    spec for lazy maps; otherwise attention is computed and dropped). The output head runs
    on the final hidden states in chunks, so no [T, V] logits tensor is ever built
    (``defer``: only the last position's now, see ``analyze_first``).
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
            with recording(model, recorder), mlps_in_slices(model):
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
                defer = False  # do not hold the [T, V] logits
        del outputs
        forward = _next_token(loaded, logits, ids, top_k, task, defer=defer)
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
    disagree (the head does something more) or the states were not captured. The last
    row, computed for the check, is not computed again (the output head over a 262,144-token
    vocabulary reads its whole weight for one row)."""
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

    last = states.shape[0] - 1
    checked = logits(last, last + 1)  # the last row: checked here, then served as it is
    theirs = last_logits.float()
    if checked[0].shape != theirs.shape or not torch.allclose(checked[0], theirs, rtol=1e-4,
                                                               atol=1e-4):
        return None

    def rows(start: int, end: int) -> Any:
        return checked if (start, end) == (last, last + 1) else logits(start, end)

    return rows


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

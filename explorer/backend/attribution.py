"""Which input tokens matter: gradient × input, integrated gradients, attention rollout and
last-layer attention for one position and target, with deletion curves and AOPC.

f = log p(target | tokens 0..position) is computed from the token embeddings x (the output
of the input embedding layer; positions are added by the model as usual). Gradients are
taken with respect to x only (the weights' gradients are never built), in batches of
several inputs per forward: integrated gradients puts x, the baseline b and many
interpolation points b + α(x − b) side by side in one batch. Attention scores are read
from a run through ``explorer.core.attention`` only (full or lazy), see
``explorer.core.rollout``; faithfulness is defined in ``explorer.core.faithfulness``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from explorer.backend.engine import analyze, check_prompt, tokenize
from explorer.backend.loader import LoadedModel
from explorer.backend.memory import memory_limit
from explorer.core.attention import has_attention
from explorer.core.attribution import (
    ATTENTION,
    GRAD_X_INPUT,
    INTEGRATED_GRADIENTS,
    METHODS,
    ROLLOUT,
    Attribution,
    AttributionError,
    IntegratedGradientsSummary,
    Target,
    check_baseline,
    check_steps,
    gradient_item_bytes,
    parse_methods,
)
from explorer.core.errors import Cancelled
from explorer.core.faithfulness import (
    DEFAULT_SEED,
    RANDOM,
    FaithfulnessCurve,
    deletion_masks,
    importance_order,
    k_grid,
    keep_only_masks,
    random_order,
)
from explorer.core.progress import TaskState
from explorer.core.rollout import last_layer_attention_row, rollout_row
from explorer.core.types import RunResult

GRADIENT_BATCH_TOKENS = 512
"""Tokens per gradient forward (batch = this // prompt length, at least 1): bounds the
activations kept for the backward pass."""
FORWARD_BATCH_TOKENS = 2048
"""Tokens per no-gradient forward of the deletion curves."""
SDPA_FROM_TOKENS = 512
"""From this many tokens the gradient passes use torch's sdpa kernel (no T × T weights kept
for the backward); below it the eager kernel, 2-4x faster here for the backward on short
inputs (docs/attribution.md). The deletion forwards (no backward) always use sdpa."""


# --------------------------------------------------------------------------- inputs


def resolve_position(position: int | None, num_tokens: int, causal: bool) -> int:
    """The explained position: the last token by default (the [CLS] token, 0, for encoders)."""
    if position is None:
        return num_tokens - 1 if causal else 0
    if not 0 <= position < num_tokens:
        raise AttributionError(
            f"Position {position} is outside the prompt, which has {num_tokens} tokens "
            f"(positions 0 to {num_tokens - 1}).")
    return int(position)


def target_token_id(loaded: LoadedModel, text: str) -> int:
    """The id of ``text`` when it is exactly one token (as text, e.g. " Positive", or as a
    vocabulary piece, e.g. "ĠPositive"); AttributionError otherwise."""
    tokenizer = loaded.tokenizer
    if not text:
        raise AttributionError("The target is empty; give one token, e.g. ' Positive'.")
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) == 1:
        return int(ids[0])
    piece_id = tokenizer.convert_tokens_to_ids(text)
    if isinstance(piece_id, int) and piece_id != tokenizer.unk_token_id \
            and tokenizer.convert_ids_to_tokens(piece_id) == text:
        return piece_id
    pieces = tokenizer.convert_ids_to_tokens(ids) if ids else []
    raise AttributionError(
        f"The target {text!r} is {len(ids)} tokens ({', '.join(map(repr, pieces)) or 'none'}), "
        "not one; give a single token, e.g. the first of them.")


def _check_target_id(token_id: int, vocab: int) -> int:
    if not 0 <= token_id < vocab:
        raise AttributionError(f"Target id {token_id} is outside the vocabulary (0..{vocab - 1}).")
    return int(token_id)


# --------------------------------------------------------------------------- the model


@contextmanager
def _input_gradients_only(model: Any) -> Iterator[None]:
    """Weights stop requiring gradients (only d f / d x is built); restored afterwards."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@contextmanager
def _cancellable(model: Any, task: TaskState) -> Iterator[None]:
    """Check the cancel flag before every block of the layer stacks (cancel within one layer)."""
    import torch

    def check(_module: Any, _args: Any) -> None:
        if task.is_cancel_requested():
            raise Cancelled("cancelled by the user")

    handles = [child.register_forward_pre_hook(check)
               for module in model.modules() if isinstance(module, torch.nn.ModuleList)
               for child in module]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def attention_kernel(model: Any, tokens: int, sdpa_from: int | None = None) -> Iterator[bool]:
    """While active the model attends with sdpa from ``sdpa_from`` (default SDPA_FROM_TOKENS)
    tokens on (when it can switch), else as loaded (eager). Yields True when the eager
    kernel is in use."""
    sdpa_from = SDPA_FROM_TOKENS if sdpa_from is None else sdpa_from
    previous = getattr(model.config, "_attn_implementation", "eager")
    can_switch = getattr(model, "_can_set_attn_implementation", None)
    switched = False
    if tokens >= sdpa_from and previous != "sdpa" and can_switch is not None and can_switch():
        try:
            model.set_attn_implementation("sdpa")
            switched = True
        except Exception:  # noqa: BLE001 - a model without sdpa keeps its own kernel
            switched = False
    try:
        yield model.config._attn_implementation == "eager"
    finally:
        if switched:
            model.set_attn_implementation(previous)


def gradient_batch_size(info: Any, tokens: int, items: int, eager: bool,
                        budget: int = GRADIENT_BATCH_TOKENS, limit: int | None = None) -> int:
    """Inputs per gradient forward: ``budget // tokens`` (at least 1, at most ``items``),
    fewer when the backward's activations would not fit in the memory a run may use;
    AttributionError when even one input does not fit."""
    size = _batch_size(tokens, budget, items)
    per_item = gradient_item_bytes(info.layers, info.hidden_size, info.heads, tokens, eager)
    limit = memory_limit(limit)
    if limit is None:
        return size
    if per_item > limit:
        raise AttributionError(
            f"Gradients through {tokens} tokens need about {per_item / 1e9:.1f} GB, more than "
            f"the {limit / 1e9:.1f} GB that can safely be used. Explain an earlier position, or "
            "use the rollout and attention methods, which need no gradients.")
    return max(1, min(size, limit // per_item))


def _last_logits(model: Any, embeds: Any) -> Any:
    """Logits at the last position of every sequence: float32[B, V]."""
    try:
        out = model(inputs_embeds=embeds, use_cache=False, logits_to_keep=1)
    except TypeError:  # a head without logits_to_keep
        out = model(inputs_embeds=embeds, use_cache=False)
    return out.logits[:, -1].float()


def _log_probs_of(model: Any, embeds: Any, target: int) -> Any:
    """f = log p(target | sequence) for every sequence of embeds [B, n, d]: float[B]."""
    return _last_logits(model, embeds).log_softmax(dim=-1)[:, target]


def _batch_size(tokens: int, budget: int, items: int) -> int:
    return max(1, min(items, budget // max(tokens, 1)))


def embeddings_of(loaded: LoadedModel, ids: Sequence[int]) -> Any:
    """The input (token) embeddings of ``ids``: float32 tensor [n, d], as the model uses them."""
    import torch

    embed = loaded.model.get_input_embeddings()
    with torch.no_grad():
        return embed(torch.tensor([list(ids)], dtype=torch.long))[0].float()


def baseline_embeddings(loaded: LoadedModel, baseline: str, n: int, like: Any) -> Any:
    """The baseline at every position: zeros, or the eos / pad token's embedding: [n, d]."""
    import torch

    if baseline == "zero":
        return torch.zeros_like(like)
    tokenizer = loaded.tokenizer
    token_id = tokenizer.eos_token_id if baseline == "eos" else tokenizer.pad_token_id
    if token_id is None:
        raise AttributionError(
            f"This tokenizer has no {baseline} token; use --baseline zero"
            + (" or eos." if baseline == "pad" and tokenizer.eos_token_id is not None else "."))
    row = embeddings_of(loaded, [int(token_id)])[0]
    return row.expand(n, -1).clone()


def plain_log_probs(loaded: LoadedModel, ids: Sequence[int]) -> np.ndarray:
    """log p(· | ids) after the last token, from a plain forward on the ids: float32[V]."""
    import torch

    with torch.inference_mode():
        try:
            out = loaded.model(input_ids=torch.tensor([list(ids)]), use_cache=False, logits_to_keep=1)
        except TypeError:
            out = loaded.model(input_ids=torch.tensor([list(ids)]), use_cache=False)
        return out.logits[0, -1].float().log_softmax(-1).numpy()


# --------------------------------------------------------------------------- gradients


def midpoints(steps: int) -> np.ndarray:
    """α_i = (i + ½) / N for i = 0..N-1: float64[N] (midpoint Riemann sum)."""
    return (np.arange(steps, dtype=np.float64) + 0.5) / steps


def _path_input(x: Any, b: Any, alphas: np.ndarray, index: int) -> Any:
    """Item ``index`` of the gradient batch: 0 -> x, 1 -> b, 2 + i -> b + α_i (x − b)."""
    if index == 0:
        return x
    if index == 1:
        return b
    return b + float(alphas[index - 2]) * (x - b)


@dataclass
class GradientResult:
    """What the gradient passes found: the target (chosen from x's own distribution when
    not given), log p(· | x) float64[V] at x, the scores (float64[n]) and the IG summary."""

    target: int = -1
    log_probs_x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    ig: IntegratedGradientsSummary | None = None


def gradient_scores(model: Any, x: Any, b: Any, target: int | None, methods: Sequence[str],
                    steps: int, baseline: str, task: TaskState, batch_size: int) -> GradientResult:
    """grad × input and integrated gradients (float64[n] each) for f = log p(target | x).

    One batched run over the items [x, b, b + α_1(x − b), …, b + α_N(x − b)] (only [x]
    without integrated gradients), ``batch_size`` items per forward; f and d f / d input
    are taken for every item, the gradients of the path points summed as they come. Item 0
    is the plain input, so its distribution is the plain run's: the target (top-1 when
    ``target`` is None) and its probability come from it, with no extra forward."""
    import torch

    with_ig = INTEGRATED_GRADIENTS in methods
    alphas = midpoints(steps)
    items = 2 + steps if with_ig else 1
    size = max(1, batch_size)
    found = GradientResult()
    values = np.empty(items, dtype=np.float64)
    grad_x = None
    path_sum = torch.zeros(x.shape, dtype=torch.float64)
    for start in range(0, items, size):
        task.progress(start / items, f"Gradients {start}/{items}")
        end = min(start + size, items)
        batch = torch.stack([_path_input(x, b, alphas, i) for i in range(start, end)])
        batch.requires_grad_(True)
        with torch.enable_grad():
            log_probs = _last_logits(model, batch).log_softmax(dim=-1)
            if start == 0:
                found.log_probs_x = log_probs[0].detach().double().numpy()
                vocab = len(found.log_probs_x)
                found.target = (int(np.argmax(found.log_probs_x)) if target is None
                                else _check_target_id(target, vocab))
            f = log_probs[:, found.target]
            (grad,) = torch.autograd.grad(f.sum(), batch)
        values[start:end] = f.detach().double().numpy()
        if start == 0:
            grad_x = grad[0].double()
        first_path = max(2 - start, 0)
        if first_path < len(grad):
            path_sum += grad[first_path:].double().sum(0)
    task.progress(1.0, "Gradients done")
    if GRAD_X_INPUT in methods:
        found.scores[GRAD_X_INPUT] = (x.double() * grad_x).sum(-1).numpy()
    if with_ig:
        ig = ((x - b).double() * path_sum / steps).sum(-1).numpy()
        found.scores[INTEGRATED_GRADIENTS] = ig
        f_x, f_b = float(values[0]), float(values[1])
        reported = ig.astype(np.float32).astype(np.float64)  # the scores as the record keeps them
        found.ig = IntegratedGradientsSummary(steps=steps, baseline=baseline, f_x=f_x, f_baseline=f_b,
                                              delta=float(reported.sum() - (f_x - f_b)))
    return found


# --------------------------------------------------------------------------- faithfulness


def replaced_probs(model: Any, x: Any, b: Any, masks: np.ndarray, target: int, task: TaskState,
                   budget: int = FORWARD_BATCH_TOKENS) -> np.ndarray:
    """p(target) for each mask row of bool[M, n] (True = that token's embedding replaced by
    the baseline's): float64[M]."""
    import torch

    m, n = masks.shape
    out = np.empty(m, dtype=np.float64)
    size = _batch_size(n, budget, m)
    chosen = torch.from_numpy(np.ascontiguousarray(masks))[:, :, None]
    with torch.inference_mode():
        for start in range(0, m, size):
            task.progress(start / m, f"Deletion curves {start}/{m}")
            batch = torch.where(chosen[start:start + size], b[None], x[None])
            out[start:start + len(batch)] = _log_probs_of(model, batch, target).double().exp().numpy()
    task.progress(1.0, "Deletion curves done")
    return out


def faithfulness_curves(model: Any, x: Any, b: Any, target: int,
                        scores: dict[str, np.ndarray], seed: int, task: TaskState,
                        budget: int = FORWARD_BATCH_TOKENS) -> dict[str, FaithfulnessCurve]:
    """Deletion and keep-only curves for every method's ordering and a seeded random one.
    Inputs shared by several orderings (e.g. k = 0, or k = n) are run once."""
    n = int(x.shape[0])
    ks = k_grid(n)
    orders = {method: importance_order(values[:n]) for method, values in scores.items()}
    orders[RANDOM] = random_order(n, seed)
    planned = {method: (deletion_masks(order, ks), keep_only_masks(order, ks))
               for method, order in orders.items()}
    unique: dict[bytes, int] = {}
    rows: list[np.ndarray] = []
    for deletion, keep in planned.values():
        for mask in (*deletion, *keep):
            key = np.packbits(mask).tobytes()
            if key not in unique:
                unique[key] = len(rows)
                rows.append(mask)
    probs = replaced_probs(model, x, b, np.stack(rows), target, task, budget)

    def lookup(masks: np.ndarray) -> np.ndarray:
        return np.array([probs[unique[np.packbits(mask).tobytes()]] for mask in masks])

    return {method: FaithfulnessCurve(method, orders[method], ks, lookup(deletion), lookup(keep))
            for method, (deletion, keep) in planned.items()}


# --------------------------------------------------------------------------- attention


def attention_run(loaded: LoadedModel, prompt: str, ids: Sequence[int], run: RunResult | None,
                  task: TaskState) -> RunResult:
    """``run`` when it is this prompt's run with attention kept, else a fresh one."""
    if (run is not None and run.prompt == prompt and has_attention(run)
            and run.token_ids.tolist() == list(ids)):
        return run
    return analyze(loaded, prompt, top_k=1, task=task, attention="auto")


def attention_scores(run: RunResult, position: int, methods: Sequence[str],
                     task: TaskState | None = None) -> dict[str, np.ndarray]:
    """rollout and last-layer attention rows of ``run`` (float32[T] each), read through
    ``explorer.core.attention`` (cheap rows on lazy runs); progress per layer."""
    task = task or TaskState()
    scores = {}
    if ROLLOUT in methods:
        scores[ROLLOUT] = rollout_row(run, position,
                                      lambda done: task.progress(done, "Attention rollout"))
    if ATTENTION in methods:
        scores[ATTENTION] = last_layer_attention_row(run, position)
    return scores


# --------------------------------------------------------------------------- the analysis


def attribute(
    loaded: LoadedModel,
    prompt: str,
    *,
    position: int | None = None,
    target: str | None = None,
    target_id: int | None = None,
    methods: Sequence[str] | str | None = None,
    steps: int = 32,
    baseline: str = "zero",
    seed: int = DEFAULT_SEED,
    faithfulness: bool = True,
    run: RunResult | None = None,
    task: TaskState | None = None,
    gradient_batch_tokens: int = GRADIENT_BATCH_TOKENS,
    on_scores: Callable[[Attribution], None] | None = None,
) -> Attribution:
    """Scores of every token 0..position for f = log p(target | tokens 0..position).

    position: default the last token (0 for encoders); target: one token's text or piece,
    or ``target_id``; default the top-1 next token at the position. methods: default all
    four (rollout only for encoders). ``run``: this prompt's RunResult, reused for the
    attention methods (else a run is made). faithfulness: compute deletion curves and AOPC
    for every method and a random ordering seeded with ``seed``. ``on_scores`` receives the
    record without faithfulness as soon as the scores are known (a panel can draw them).
    """
    task = task or TaskState()
    started = time.perf_counter()
    info = loaded.info
    methods = parse_methods(methods if methods is not None else
                            (METHODS if info.causal else (ROLLOUT,)), info.causal)
    steps = check_steps(steps)
    baseline = check_baseline(baseline)
    ids, pieces, _ = tokenize(loaded, prompt)
    check_prompt(loaded, prompt, len(ids))
    position = resolve_position(position, len(ids), info.causal)
    if not info.causal:
        if target is not None or target_id is not None:
            raise AttributionError("An encoder has no next token to target; drop --target.")
        view = attention_run(loaded, prompt, ids, run, task.sub(0.0, 0.6))
        scores = attention_scores(view, position, methods, task.sub(0.6, 1.0))
        record = Attribution(pieces, ids, position, None, scores, baseline=baseline, seed=seed,
                             model_name=info.name, causal=False,
                             timings={"total_s": time.perf_counter() - started})
        if on_scores is not None:
            on_scores(record)
        return record
    timings: dict[str, float] = {}
    prefix = ids[: position + 1]
    if target_id is None and target is not None:
        target_id = target_token_id(loaded, target)
    n = len(prefix)
    x = embeddings_of(loaded, prefix)
    b = baseline_embeddings(loaded, baseline, n, x)
    gradient_methods = [m for m in methods if m in (GRAD_X_INPUT, INTEGRATED_GRADIENTS)]
    attention_methods = [m for m in methods if m in (ROLLOUT, ATTENTION)]
    scores: dict[str, np.ndarray] = {}
    ig = None
    gradients_end = 0.65 if faithfulness else 0.9
    model = loaded.model
    with _input_gradients_only(model), _cancellable(model, task):
        mark = time.perf_counter()
        if gradient_methods:
            items = 2 + steps if INTEGRATED_GRADIENTS in gradient_methods else 1
            with attention_kernel(model, n) as eager:
                size = gradient_batch_size(info, n, items, eager, gradient_batch_tokens)
                found = gradient_scores(model, x, b, target_id, gradient_methods, steps, baseline,
                                        task.sub(0.0, gradients_end), size)
            scores.update(found.scores)
            ig, target_id, log_probs = found.ig, found.target, found.log_probs_x
            timings["gradients_s"] = time.perf_counter() - mark
        else:
            task.progress(0.0, "Plain run")
            log_probs = plain_log_probs(loaded, prefix)
            target_id = int(np.argmax(log_probs)) if target_id is None else \
                _check_target_id(target_id, len(log_probs))
            timings["forward_s"] = time.perf_counter() - mark
        chosen = Target(target_id, str(loaded.tokenizer.convert_ids_to_tokens(target_id)),
                        float(np.exp(log_probs[target_id])))
        if attention_methods:
            mark = time.perf_counter()
            view = attention_run(loaded, prompt, ids, run,
                                 task.sub(gradients_end, gradients_end + 0.03))
            scores.update(attention_scores(view, position, attention_methods,
                                           task.sub(gradients_end + 0.03, gradients_end + 0.05)))
            timings["attention_s"] = time.perf_counter() - mark
        ordered = {m: _padded(scores[m], len(ids)) for m in methods}
        record = Attribution(pieces, ids, position, chosen, ordered, ig=ig, baseline=baseline,
                             seed=seed, model_name=info.name, timings=dict(timings))
        if on_scores is not None:
            on_scores(record)
        curves: dict[str, FaithfulnessCurve] = {}
        if faithfulness:
            mark = time.perf_counter()
            with attention_kernel(model, n, sdpa_from=0):  # no backward: sdpa is a bit faster
                curves = faithfulness_curves(model, x, b, target_id, ordered, seed,
                                             task.sub(gradients_end + 0.05, 1.0))
            timings["faithfulness_s"] = time.perf_counter() - mark
    task.progress(1.0, "Done")
    timings["total_s"] = time.perf_counter() - started
    return replace(record, faithfulness=curves, timings=timings)


def _padded(values: np.ndarray, total: int) -> np.ndarray:
    """Scores for tokens 0..p extended with zeros to all T tokens: float32[T]."""
    out = np.zeros(total, dtype=np.float32)
    out[: len(values)] = np.asarray(values, dtype=np.float32)[: total]
    return out

"""Token-by-token generation with the KV cache, capturing each new token's attention row.

One forward over the prompt gives the prompt's attention map and the KV cache;
after that every sampled token is fed alone (``past_key_values``,
``use_cache=True``, ``output_attentions=True``), which returns its attention row
over all earlier tokens, float16[layer, head, key], and the distribution for
the next token. Nothing is recomputed when a token is clicked later: the full
map is assembled from these rows (``GenerationResult.attention_map``).

Each token is fed right after it is sampled, so a step handed to ``on_step``
is complete (its attention row included). Cancellation is checked before
every token: Stop ends the run within one token and returns a consistent
result with ``stop_reason == "cancelled"``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from explorer.backend.engine import tokenize
from explorer.backend.introspect import positional_table
from explorer.backend.kv_cache import cache_argument, returned_cache
from explorer.backend.loader import LoadedModel
from explorer.backend.next_tokens import next_token_arrays
from explorer.core.errors import ExplorerError, PromptError
from explorer.core.generation_types import GenerationResult, GenerationStep
from explorer.core.progress import TaskState
from explorer.core.sampling import SamplingSettings, filtered_support, find_stop, sample_from

DEFAULT_ALTERNATIVES = 10
StepCallback = Callable[[GenerationStep], None]


@dataclass(frozen=True)
class PreparedPrompt:
    """The exact input the model sees.

    text:    the prompt, or the chat-templated prompt
    ids:     int64[P]
    pieces:  str[P]
    offsets: int64[P, 2]  spans in ``text``
    """

    prompt: str
    text: str
    chat: bool
    ids: tuple[int, ...]
    pieces: tuple[str, ...]
    offsets: np.ndarray


def has_chat_template(loaded: LoadedModel) -> bool:
    return bool(getattr(loaded.tokenizer, "chat_template", None))


def chat_text(loaded: LoadedModel, prompt: str) -> str:
    """The prompt as one user message in the model's chat template, ending with the
    assistant turn's opening (``add_generation_prompt=True``): exactly what the model sees."""
    if not has_chat_template(loaded):
        raise PromptError(f"The model '{loaded.info.name}' has no chat template; "
                          "generate without the chat switch.")
    messages = [{"role": "user", "content": prompt}]
    return str(loaded.tokenizer.apply_chat_template(messages, tokenize=False,
                                                    add_generation_prompt=True))


def prepare_prompt(loaded: LoadedModel, prompt: str, chat: bool = False) -> PreparedPrompt:
    """Template (optionally) and tokenize; raises PromptError for an empty prompt."""
    if not prompt or not prompt.strip():
        raise PromptError("The prompt is empty. Type some text to continue.")
    if chat:
        text = chat_text(loaded, prompt)
        encoding = loaded.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = [int(i) for i in encoding["input_ids"]]
        offsets = np.asarray(encoding["offset_mapping"], np.int64).reshape(-1, 2)
        pieces = [str(p) for p in loaded.tokenizer.convert_ids_to_tokens(ids)]
    else:
        text = prompt
        ids, pieces, offsets = tokenize(loaded, prompt)
    if not ids:
        raise PromptError("The prompt produced no tokens.")
    return PreparedPrompt(prompt, text, chat, tuple(ids), tuple(pieces), offsets)


def eos_ids(loaded: LoadedModel) -> set[int]:
    """End-of-sequence ids from the generation config and the tokenizer."""
    found: set[int] = set()
    config = getattr(loaded.model, "generation_config", None)
    for value in (getattr(config, "eos_token_id", None), loaded.tokenizer.eos_token_id):
        if value is None:
            continue
        found.update(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
    return found


def check_fits(loaded: LoadedModel, num_prompt_tokens: int, max_new_tokens: int) -> None:
    limit = loaded.info.context_length
    if num_prompt_tokens + max_new_tokens > limit:
        raise PromptError(
            f"The prompt is {num_prompt_tokens:,} tokens and {max_new_tokens:,} new tokens were "
            f"asked for, past the model's context window of {limit:,} tokens. Shorten the "
            f"prompt or lower max new tokens to {max(0, limit - num_prompt_tokens):,}."
        )


def generate(
    loaded: LoadedModel,
    prompt: str,
    settings: SamplingSettings | None = None,
    *,
    chat: bool = False,
    top_alternatives: int = DEFAULT_ALTERNATIVES,
    task: TaskState | None = None,
    on_step: StepCallback | None = None,
) -> GenerationResult:
    """Generate up to ``settings.max_new_tokens`` tokens after ``prompt``.

    ``on_step`` is called from this (worker) thread with each finished step.
    Returns when max_new_tokens is reached, on an end-of-sequence token, when a
    stop sequence appears in the completion, or on cancellation (a partial,
    consistent result).
    """
    settings = _with_seed((settings or SamplingSettings()).validate())
    _check_causal(loaded)
    prepared = prepare_prompt(loaded, prompt, chat)
    check_fits(loaded, len(prepared.ids), settings.max_new_tokens)
    return _run(loaded, prepared, (), None, settings, top_alternatives, task or TaskState(),
                on_step)


def continue_with_alternative(
    loaded: LoadedModel,
    previous: GenerationResult,
    index: int,
    token_id: int,
    settings: SamplingSettings | None = None,
    *,
    top_alternatives: int | None = None,
    task: TaskState | None = None,
    on_step: StepCallback | None = None,
) -> GenerationResult:
    """Replace generated token ``index`` by ``token_id`` and generate on from there.

    The prompt and the generated tokens before ``index`` are kept (their steps are
    reused as they are); the completion is again at most ``settings.max_new_tokens``
    tokens long in total. ``settings`` defaults to the previous run's (same seed).
    """
    settings = _with_seed((settings or previous.settings).validate())
    _check_causal(loaded)
    if not 0 <= index <= previous.num_generated:
        raise ExplorerError(f"There is no generated token {index} to replace "
                            f"(the run has {previous.num_generated}).")
    if not 0 <= token_id < loaded.info.vocab_size:
        raise ExplorerError(f"Token id {token_id} is outside the vocabulary.")
    if index >= settings.max_new_tokens:
        settings = replace(settings, max_new_tokens=index + 1)
    prepared = PreparedPrompt(
        previous.prompt, previous.model_text, previous.chat,
        tuple(int(i) for i in previous.prompt_ids), previous.prompt_tokens,
        previous.prompt_offsets,
    )
    check_fits(loaded, len(prepared.ids), settings.max_new_tokens)
    if top_alternatives is None:
        top_alternatives = max(1, len(previous.final_topk_ids))
    return _run(loaded, prepared, previous.steps[:index], int(token_id), settings,
                top_alternatives, task or TaskState(), on_step)


def _with_seed(settings: SamplingSettings) -> SamplingSettings:
    if settings.seed is None:
        return replace(settings, seed=secrets.randbelow(2**31))
    return settings


def _check_causal(loaded: LoadedModel) -> None:
    if not loaded.info.causal:
        raise ExplorerError(f"'{loaded.info.name}' is an encoder model; it cannot generate text.")


class _Vocab:
    """Id -> piece, cached (convert_ids_to_tokens is slow-ish per call)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.cache: dict[int, str] = {}

    def pieces(self, ids: Sequence[int]) -> tuple[str, ...]:
        missing = [int(i) for i in ids if int(i) not in self.cache]
        if missing:
            for i, piece in zip(missing, self.tokenizer.convert_ids_to_tokens(missing),
                                strict=True):
                self.cache[i] = str(piece)
        return tuple(self.cache[int(i)] for i in ids)


def _stack_rows(attentions: Any, query: int) -> np.ndarray:
    """tuple of L tensors [1, H, Q, K] -> float16[L, H, K] for row ``query``."""
    import torch

    if not attentions or any(a is None for a in attentions):
        raise ExplorerError("The model returned no attention weights; it needs eager attention.")
    return torch.stack([a[0, :, query, :] for a in attentions]).to(torch.float16).cpu().numpy()


def _raw_view(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32[V] raw logits -> (float64[V] softmax, int64[k] top ids, float32[k] top logits)."""
    exp = np.exp(logits.astype(np.float64) - float(logits.max()))
    probs = exp / exp.sum()
    k = min(k, len(logits))
    part = np.argpartition(-logits, k - 1)[:k]
    part = part[np.argsort(-logits[part], kind="stable")]
    return probs, part.astype(np.int64), logits[part]


def _run(
    loaded: LoadedModel,
    prepared: PreparedPrompt,
    kept: Sequence[GenerationStep],
    forced: int | None,
    settings: SamplingSettings,
    top_n: int,
    task: TaskState,
    on_step: StepCallback | None,
) -> GenerationResult:
    import torch

    started = time.perf_counter()
    model, tokenizer = loaded.model, loaded.tokenizer
    vocab = _Vocab(tokenizer)
    top_n = max(1, top_n)
    rng = np.random.default_rng(settings.seed)
    stops = eos_ids(loaded)
    p = len(prepared.ids)
    sequence: list[int] = list(prepared.ids) + [s.token_id for s in kept]
    steps: list[GenerationStep] = list(kept)
    task.check_cancelled()
    task.report(0.0, "Reading the prompt")
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([sequence], dtype=torch.long, device=model.device), use_cache=True,
                    output_attentions=True)
        prompt_s = time.perf_counter() - started
        attentions = out.attentions
        if not attentions or any(a is None for a in attentions):
            raise ExplorerError(f"The model '{loaded.info.name}' returned no attention "
                                "weights; it needs eager attention.")
        prompt_attn = torch.stack([a[0, :, :p, :p] for a in attentions]).to(torch.float16).cpu().numpy()
        prompt_logits = out.logits[0, :p]
        (ptop_ids, ptop_probs, ptop_logits), _, pnext_probs, pnext_ranks = next_token_arrays(
            prompt_logits, list(prepared.ids), top_n)
        logits = out.logits[0, -1].float().cpu().numpy()
        cache = returned_cache(out)
        cache_name = cache_argument(model)
        del out, attentions, prompt_logits

        generated = [s.token_id for s in kept]
        emitted = len(tokenizer.decode(generated, skip_special_tokens=True)) if generated else 0
        completion = tokenizer.decode(generated, skip_special_tokens=True) if generated else ""
        stop_reason, stop_sequence = "length", None
        step_started = time.perf_counter()
        while len(steps) < settings.max_new_tokens:
            if task.is_cancel_requested():
                stop_reason = "cancelled"
                break
            probs, raw_ids, raw_logits = _raw_view(logits, top_n)
            support_ids, support_probs = filtered_support(logits, settings, sequence)
            if forced is not None and len(steps) == len(kept):
                token_id, is_forced = forced, True
            else:
                token_id, is_forced = sample_from(support_ids, support_probs, rng), False
            where = np.flatnonzero(support_ids == token_id)
            prob = float(support_probs[where[0]]) if where.size else 0.0
            raw_prob = float(probs[token_id])
            raw_rank = int((probs > probs[token_id]).sum()) + 1
            sequence.append(token_id)
            generated.append(token_id)
            position = len(sequence) - 1
            out = model(input_ids=torch.tensor([[token_id]], dtype=torch.long, device=model.device),
                        use_cache=True, output_attentions=True, **{cache_name: cache})
            row = _stack_rows(out.attentions, -1)
            logits = out.logits[0, -1].float().cpu().numpy()
            cache = returned_cache(out)
            del out
            completion = tokenizer.decode(generated, skip_special_tokens=True)
            if completion.endswith("\ufffd"):
                text = ""  # an incomplete UTF-8 character: wait for its other bytes
            else:
                text, emitted = completion[emitted:], len(completion)
            top_ids, top_probs = support_ids[:top_n], support_probs[:top_n]
            now = time.perf_counter()
            step = GenerationStep(
                index=len(steps), position=position, token_id=token_id,
                token=vocab.pieces([token_id])[0], text=text, prob=prob, raw_prob=raw_prob,
                raw_rank=raw_rank, top_ids=top_ids, top_tokens=vocab.pieces(top_ids),
                top_probs=top_probs, raw_top_ids=raw_ids, raw_top_tokens=vocab.pieces(raw_ids),
                raw_top_probs=probs[raw_ids], raw_top_logits=raw_logits, attention=row,
                forced=is_forced, elapsed_s=now - step_started,
            )
            step_started = now
            steps.append(step)
            if on_step is not None:
                on_step(step)
            task.report(len(steps) / settings.max_new_tokens,
                        f"Generated {len(steps)} of {settings.max_new_tokens} tokens")
            if token_id in stops:
                stop_reason = "eos"
                break
            stop_sequence = find_stop(completion, settings.stop)
            if stop_sequence is not None:
                stop_reason = "stop_sequence"
                break
    final_probs, final_ids, final_logits = _raw_view(logits, top_n)
    generate_s = time.perf_counter() - started - prompt_s
    new_tokens = len(steps) - len(kept)
    timings = {
        "prompt_s": prompt_s,
        "generate_s": generate_s,
        "tokens_per_s": new_tokens / generate_s if generate_s > 0 and new_tokens else 0.0,
    }
    return GenerationResult(
        prompt=prepared.prompt, model_text=prepared.text, chat=prepared.chat,
        prompt_ids=np.asarray(prepared.ids, np.int64), prompt_tokens=prepared.pieces,
        prompt_offsets=prepared.offsets, prompt_attentions=prompt_attn,
        prompt_topk_ids=ptop_ids,
        prompt_topk_tokens=[vocab.pieces(row) for row in ptop_ids],
        prompt_topk_probs=ptop_probs, prompt_topk_logits=ptop_logits,
        prompt_next_probs=pnext_probs, prompt_next_ranks=pnext_ranks,
        steps=tuple(steps), completion=completion,
        final_probs=final_probs, final_topk_ids=final_ids,
        final_topk_tokens=vocab.pieces(final_ids), final_topk_probs=final_probs[final_ids],
        final_topk_logits=final_logits,
        positional=positional_table(model, loaded.info.positional_kind, len(sequence)),
        positional_kind=loaded.info.positional_kind, model_info=loaded.info,
        settings=settings, stop_reason=stop_reason, stop_sequence=stop_sequence,
        timings=timings,
    )

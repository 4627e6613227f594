"""Encoder-decoder models (T5, FLAN-T5, BART): encoder, decoder and cross-attention.

The source goes through the encoder; the decoder is fed its start token and the target
text, or its own greedy choices when no target is given (one token at a time, the
encoder's output reused). One eager forward over the final decoder tokens then returns
all three stacks and the decoder's logits, from which the next-token arrays come (in
float32, as for decoder-only models).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from explorer.backend.device import out_of_memory_reported
from explorer.backend.engine import check_prompt, tokenize
from explorer.backend.introspect import positional_table
from explorer.backend.loader import LoadedModel
from explorer.backend.next_tokens import next_token_arrays
from explorer.core.errors import AttentionUnavailableError, PromptError
from explorer.core.progress import TaskState
from explorer.core.seq2seq import Seq2SeqResult

DEFAULT_MAX_NEW_TOKENS = 48
_memo: dict[tuple[int, str, str | None, int, int], Seq2SeqResult] = {}


def decoder_start_id(model: Any) -> int:
    for config in (getattr(model, "generation_config", None), model.config):
        value = getattr(config, "decoder_start_token_id", None)
        if value is not None:
            return int(value)
    value = getattr(model.config, "pad_token_id", None)
    if value is None:
        raise AttentionUnavailableError("This encoder-decoder model names no decoder start token.")
    return int(value)


def eos_ids(model: Any) -> set[int]:
    value = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if value is None:
        value = getattr(model.config, "eos_token_id", None)
    if value is None:
        return set()
    return {int(v) for v in (value if isinstance(value, (list, tuple)) else [value])}


def target_ids(loaded: LoadedModel, target: str) -> list[int]:
    """The target text's token ids as the tokenizer makes labels (with its end token)."""
    encoding = loaded.tokenizer(text_target=target)
    return [int(i) for i in encoding["input_ids"]]


def greedy_decode(loaded: LoadedModel, input_ids: Any, max_new_tokens: int, task: TaskState) -> list[int]:
    """The decoder's own choices: start token, then argmax until an end token or the limit."""
    import torch

    model = loaded.model
    ids = [decoder_start_id(model)]
    stop = eos_ids(model)
    with torch.inference_mode():
        encoder_outputs = model.get_encoder()(input_ids=input_ids)
        for step in range(max_new_tokens):
            task.progress(0.1 + 0.6 * step / max_new_tokens, f"Generating the decoder text ({step} tokens)")
            decoder = torch.tensor([ids], dtype=torch.long, device=input_ids.device)
            logits = model(encoder_outputs=encoder_outputs, decoder_input_ids=decoder,
                           use_cache=False).logits[0, -1]
            token = int(torch.argmax(logits.float()))
            ids.append(token)
            if token in stop:
                break
    return ids


def analyze_seq2seq(loaded: LoadedModel, prompt: str, target: str | None = None, top_k: int = 20,
                    task: TaskState | None = None,
                    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> Seq2SeqResult:
    """Run ``prompt`` (the source) through the encoder and ``target`` (or greedy decoding)
    through the decoder; every stack's attention and the decoder's next-token arrays.

    The last result is remembered per (model, prompt, target, top_k), so switching the
    GUI's stack selector does not run the model again."""
    import torch

    task = task or TaskState()
    if not loaded.info.encoder_decoder:
        raise PromptError(f"'{loaded.info.name}' is not an encoder-decoder model; a target text "
                          "only applies to encoder-decoders (T5, BART).")
    target = target if target else None
    key = (id(loaded.model), prompt, target, top_k, max_new_tokens)
    if key in _memo:
        return _memo[key]
    started = time.perf_counter()
    ids, pieces, offsets = tokenize(loaded, prompt)
    check_prompt(loaded, prompt, len(ids))
    model = loaded.model
    device = model.device
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    task.progress(0.05, "Running the encoder")
    with out_of_memory_reported(loaded.info.device, f"running a {len(ids)}-token source"):
        if target is None:
            decoder_ids = greedy_decode(loaded, input_ids, max_new_tokens, task)
        else:
            decoder_ids = [decoder_start_id(model), *target_ids(loaded, target)]
        if len(decoder_ids) > loaded.info.context_length:
            raise PromptError(f"The target is {len(decoder_ids):,} tokens long, past the model's "
                              f"limit of {loaded.info.context_length:,}.")
        task.progress(0.75, "Collecting the three attention stacks")
        forward_started = time.perf_counter()
        with torch.inference_mode():
            out = model(input_ids=input_ids,
                        decoder_input_ids=torch.tensor([decoder_ids], dtype=torch.long, device=device),
                        output_attentions=True, use_cache=False)
            stacks = {name: _stack(getattr(out, f"{name}_attentions", None), name, loaded.info.name)
                      for name in ("encoder", "decoder", "cross")}
            topk, last_probs, probs, ranks = next_token_arrays(
                out.logits[0], decoder_ids, top_k, is_cancel_requested=task.is_cancel_requested)
        forward_s = time.perf_counter() - forward_started
    flat = loaded.tokenizer.convert_ids_to_tokens(topk[0].reshape(-1).tolist())
    k = topk[0].shape[1]
    kind = loaded.info.positional_kind
    result = Seq2SeqResult(
        prompt=prompt, target=target, token_ids=np.asarray(ids), tokens=tuple(pieces),
        offsets=offsets, decoder_token_ids=np.asarray(decoder_ids),
        decoder_tokens=tuple(str(p) for p in loaded.tokenizer.convert_ids_to_tokens(decoder_ids)),
        encoder_attentions=stacks["encoder"], decoder_attentions=stacks["decoder"],
        cross_attentions=stacks["cross"], topk_ids=topk[0], topk_probs=topk[1],
        topk_logits=topk[2],
        topk_tokens=[[str(t) for t in flat[i * k:(i + 1) * k]] for i in range(len(decoder_ids))],
        last_probs=last_probs, actual_next_probs=probs, actual_next_ranks=ranks,
        positional=positional_table(model, kind, max(len(ids), len(decoder_ids))),
        positional_kind=kind, model_info=loaded.info,
        timings={"forward_s": forward_s, "run_s": time.perf_counter() - started})
    task.progress(1.0, "Done")
    _memo.clear()
    _memo[key] = result
    return result


def _stack(attentions: Any, name: str, model_name: str) -> np.ndarray:
    """tuple of L tensors [1, H, Q, K] -> float16[L, H, Q, K]."""
    import torch

    if not attentions or any(a is None for a in attentions):
        raise AttentionUnavailableError(
            f"The model '{model_name}' returned no {name} attention weights; it needs eager attention.")
    return np.stack([a[0].to(torch.float16).cpu().numpy() for a in attentions])

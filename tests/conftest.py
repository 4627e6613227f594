import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def smollm2():
    """The embedded SmolLM2, loaded once per test session (converts the GGUF on first use)."""
    from explorer.backend.loader import load_model

    return load_model("smollm2")


@pytest.fixture(scope="session")
def minilm():
    from explorer.backend.loader import load_model

    return load_model("minilm")

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


@pytest.fixture(scope="session")
def tiny_gpt2_folder(tmp_path_factory):
    """A tiny GPT-2 saved as a normal transformers folder (safetensors + tokenizer)."""
    from tests.support import tiny_models

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    model = tiny_models.tiny_gpt2()
    model.config.architectures = ["GPT2LMHeadModel"]
    model.save_pretrained(folder)
    tiny_models.byte_level_tokenizer().save_pretrained(folder)
    return folder

import pytest

from tests.support import tiny_models


@pytest.fixture(scope="session")
def tiny_gpt2_folder(tmp_path_factory):
    """A tiny GPT-2 saved as a normal transformers folder (safetensors + tokenizer)."""
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    model = tiny_models.tiny_gpt2()
    model.config.architectures = ["GPT2LMHeadModel"]
    model.save_pretrained(folder)
    tiny_models.byte_level_tokenizer().save_pretrained(folder)
    return folder

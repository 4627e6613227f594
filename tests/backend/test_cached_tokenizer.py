"""The converted-GGUF cache's tokenizer, read straight from tokenizer.json, behaves exactly
like the one AutoTokenizer builds from the same folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from explorer.backend.cached_tokenizer import load_cached_tokenizer
from explorer.backend.loader import _load_folder
from explorer.core.progress import TaskState
from tests.support import tiny_models

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "",
    "Hello world",
    " leading space, trailing space ",
    "The capital of France is Paris.\n\n  two   spaces\tand a tab",
    "日本語のテキスト 😀 émigré naïve",
    "<|endoftext|>inside<|endoftext|>",
    "<bos>x<eos><pad><start_of_turn>user\nhi<end_of_turn><|im_start|>",
    "a" * 300,
]
CHAT = [{"role": "user", "content": "Is this review positive?"}]


def assert_same_tokenizer(ours, reference, texts: list[str]) -> None:
    for text in texts:
        mine, theirs = ours(text), reference(text)
        assert dict(mine) == dict(theirs), text
        assert ours.decode(mine["input_ids"]) == reference.decode(theirs["input_ids"])
        assert ours.convert_ids_to_tokens(mine["input_ids"]) == reference.convert_ids_to_tokens(
            theirs["input_ids"])
    batch = texts[1:4]
    assert dict(ours(batch, padding=True)) == dict(reference(batch, padding=True))
    for name in ("bos_token", "eos_token", "pad_token", "unk_token", "all_special_ids",
                 "padding_side", "truncation_side", "model_input_names", "model_max_length",
                 "chat_template"):
        assert getattr(ours, name) == getattr(reference, name), name
    assert len(ours) == len(reference)
    assert ours.get_vocab() == reference.get_vocab()
    assert ({i: str(t) for i, t in ours.added_tokens_decoder.items()}
            == {i: str(t) for i, t in reference.added_tokens_decoder.items()})
    if reference.chat_template:
        assert (ours.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
                == reference.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True))


@pytest.fixture
def saved_tokenizer(tmp_path) -> Path:
    tokenizer = tiny_models.byte_level_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    tokenizer.save_pretrained(tmp_path)
    return tmp_path


def test_tiny_saved_tokenizer_reads_the_same(saved_tokenizer):
    ours = load_cached_tokenizer(saved_tokenizer)
    assert_same_tokenizer(ours, AutoTokenizer.from_pretrained(saved_tokenizer), TEXTS)


def test_class_defaults_come_from_the_saved_class(saved_tokenizer):
    config_file = saved_tokenizer / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.pop("padding_side", None)
    config["tokenizer_class"] = "GemmaTokenizer"  # padding on the left, by its class
    config_file.write_text(json.dumps(config))
    assert load_cached_tokenizer(saved_tokenizer).padding_side == "left"
    config["tokenizer_class"] = "GPT2Tokenizer"  # the base default: right
    config_file.write_text(json.dumps(config))
    assert load_cached_tokenizer(saved_tokenizer).padding_side == "right"


@pytest.mark.parametrize("damage", ["no tokenizer.json", "added tokens in config", "own code",
                                    "unknown class", "model-specific token", "not an object",
                                    "template list"])
def test_folders_it_cannot_read_are_refused(saved_tokenizer, damage):
    config_file = saved_tokenizer / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    if damage == "no tokenizer.json":
        (saved_tokenizer / "tokenizer.json").unlink()
    elif damage == "added tokens in config":
        config["added_tokens_decoder"] = {"0": {"content": "x", "special": True}}
    elif damage == "own code":
        config["auto_map"] = {"AutoTokenizer": ["tok.MyTokenizer", None]}
    elif damage == "unknown class":
        config["tokenizer_class"] = "NoSuchTokenizerAnywhere"
    elif damage == "model-specific token":  # from_pretrained makes it a special token
        config["image_token"] = "<image>"
    elif damage == "template list":
        (saved_tokenizer / "chat_template.json").write_text('{"chat_template": "x"}')
    else:
        config = "not an object"
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError):
        load_cached_tokenizer(saved_tokenizer)


def test_loader_falls_back_to_auto_tokenizer(tiny_gpt2_folder, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    folder.mkdir()
    for item in tiny_gpt2_folder.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    calls = []
    auto = AutoTokenizer.from_pretrained

    def counted(*args, **kwargs):
        calls.append(args[0])
        return auto(*args, **kwargs)

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", counted)
    _, direct = _load_folder(folder, TaskState(), trust_remote_code=False, allow_pickle=False,
                             converted_cache=True)
    assert calls == [] and direct("hello")["input_ids"]
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["added_tokens_decoder"] = {"0": {"content": "<|endoftext|>", "special": True}}
    config_file.write_text(json.dumps(config))  # not for the direct reader: AutoTokenizer reads it
    _, fallback = _load_folder(folder, TaskState(), trust_remote_code=False, allow_pickle=False,
                               converted_cache=True)
    assert calls == [folder]
    assert fallback("hello")["input_ids"] == direct("hello")["input_ids"]


def review_texts(limit: int = 40) -> list[str]:
    with (ROOT / "resources" / "sentiment" / "reviews.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [row["text"] for row in rows[:limit]] + [(ROOT / "resources" / "sentiment" /
                                                    "course.template").read_text(encoding="utf-8")]


@pytest.mark.embedded
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_embedded_tokenizers_equal_auto_tokenizer(request, name):
    loaded = request.getfixturevalue(name)
    assert type(loaded.tokenizer).__name__ == "TokenizersBackend"
    reference = AutoTokenizer.from_pretrained(loaded.info.source)
    assert_same_tokenizer(loaded.tokenizer, reference, TEXTS + review_texts())

"""Open the tokenizer of a converted-GGUF cache folder straight from its tokenizer.json.

``AutoTokenizer.from_pretrained`` on such a folder parses ``tokenizer.json`` in Python
once to find the added tokens and, for classes with their own ``__init__`` (Gemma's),
a second time to rebuild the backend from the vocabulary and merges: 4 s for Gemma 3's
262,144-entry, 33 MB file. The file is the exact serialisation of the tokenizer that
was converted, so the Rust ``tokenizers`` library can read it directly (about 2 s);
only the class-level defaults (padding side, input names) come from the saved class.
``tests/backend/test_cached_tokenizer.py`` checks the result against AutoTokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: tokenizer_config.json keys that describe how the file was written, not the tokenizer.
_BOOKKEEPING_KEYS = {"tokenizer_class", "backend", "is_local", "local_files_only", "auto_map",
                     "added_tokens_decoder", "name_or_path"}
#: Settings this reader passes on as they are; any other key (model-specific special tokens,
#: additional tokens, options a tokenizer class interprets itself) sends the folder back to
#: AutoTokenizer.
_PLAIN_KEYS = {"bos_token", "eos_token", "pad_token", "unk_token", "mask_token", "sep_token",
               "cls_token", "model_max_length", "padding_side", "truncation_side",
               "clean_up_tokenization_spaces", "model_input_names"}
#: Class attributes that a subclass such as GemmaTokenizer sets differently from the base.
_CLASS_DEFAULTS = ("padding_side", "truncation_side", "model_input_names")


def load_cached_tokenizer(folder: Path) -> Any:
    """The tokenizer saved in ``folder`` (a ``TokenizersBackend``), read by ``tokenizers``.

    Raises ValueError when the folder does not hold a plain tokenizers serialisation
    (no ``tokenizer.json``, added tokens or code of its own, an unknown class, or settings
    other than the plain special tokens and lengths); the caller then uses AutoTokenizer.
    """
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    tokenizer_file = folder / "tokenizer.json"
    config_file = folder / "tokenizer_config.json"
    if not tokenizer_file.is_file() or not config_file.is_file():
        raise ValueError(f"{folder} has no tokenizer.json / tokenizer_config.json")
    if (folder / "chat_template.json").exists() or (folder / "additional_chat_templates").exists():
        raise ValueError("chat templates in a form this reader leaves to AutoTokenizer")
    config = json.loads(config_file.read_text(encoding="utf-8"))  # JSONDecodeError: a ValueError
    if not isinstance(config, dict):
        raise ValueError("tokenizer_config.json is not an object")
    if config.get("added_tokens_decoder") or config.get("auto_map"):
        raise ValueError("tokenizer_config.json carries its own added tokens or code")
    kwargs = {key: value for key, value in config.items() if key not in _BOOKKEEPING_KEYS}
    unknown = sorted(set(kwargs) - _PLAIN_KEYS)
    if unknown:
        raise ValueError(f"tokenizer_config.json has settings this reader leaves to "
                         f"AutoTokenizer: {', '.join(unknown)}")
    saved_class = tokenizer_class_from_name(config.get("tokenizer_class") or "TokenizersBackend")
    if saved_class is None:
        raise ValueError(f"unknown tokenizer class {config.get('tokenizer_class')!r}")
    for name in _CLASS_DEFAULTS:
        kwargs.setdefault(name, getattr(saved_class, name))
    template = folder / "chat_template.jinja"
    if template.is_file():
        kwargs["chat_template"] = template.read_text(encoding="utf-8")
    return TokenizersBackend(tokenizer_file=str(tokenizer_file), name_or_path=str(folder), **kwargs)

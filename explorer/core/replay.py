"""How a session brings the Playground's generated text back: by regenerating it.

A session stores, per branch, a ``BranchRecipe``: the prompt, chat switch and the
settings the run really used (its seed included), and for a branch made with "continue
with this alternative" its parent branch, the replaced token's index and the chosen token.
Generation is deterministic for a given model, seed and settings (numpy's generator on the
CPU logits), so running the recipes again gives the same text with every probability,
alternative and attention row. The generated token ids are stored too: a replay that
comes out differently (another model file) is detected and reported, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from explorer.core.errors import ExplorerError
from explorer.core.generation_types import GenerationResult
from explorer.core.sampling import SamplingSettings

SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "max_new_tokens": (int,), "temperature": (int, float), "top_k": (int,), "top_p": (int, float),
    "repetition_penalty": (int, float), "seed": (int,), "greedy": (bool,),
}


@dataclass(frozen=True)
class BranchRecipe:
    """prompt, chat: what the run started from; settings: as used (seed filled in);
    parent: index of the branch it continues (None for a fresh run); index, token_id: the
    generated token replaced and its replacement; generated_ids: the tokens it produced;
    stopped: the user pressed Stop (the replay makes exactly len(generated_ids) tokens)."""

    prompt: str
    chat: bool
    settings: SamplingSettings
    parent: int | None = None
    index: int = 0
    token_id: int = 0
    generated_ids: tuple[int, ...] = ()
    stopped: bool = False

    @classmethod
    def of(cls, result: GenerationResult, parent: int | None = None, index: int = 0,
           token_id: int = 0) -> BranchRecipe:
        return cls(result.prompt, result.chat, result.settings, parent, index, token_id,
                   tuple(int(i) for i in result.generated_ids), result.stop_reason == "cancelled")

    def replay_settings(self) -> SamplingSettings:
        if self.stopped:
            return replace(self.settings, max_new_tokens=max(1, len(self.generated_ids)))
        return self.settings

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "chat": self.chat, "settings": self.settings.to_dict(),
                "parent": self.parent, "index": self.index, "token_id": self.token_id,
                "generated_ids": list(self.generated_ids), "stopped": self.stopped}

    @classmethod
    def from_dict(cls, data: Any, number: int) -> BranchRecipe:
        """Read branch ``number`` of a session; ValueError names what is wrong."""
        def fail(what: str) -> ValueError:
            return ValueError(f"generation branch {number + 1}: {what}")

        if not isinstance(data, dict):
            raise fail("must be an object")
        prompt, chat = data.get("prompt"), data.get("chat", False)
        if not isinstance(prompt, str) or not isinstance(chat, bool):
            raise fail("needs a text prompt and a true/false chat switch")
        raw = data.get("settings")
        if not isinstance(raw, dict):
            raise fail("needs its settings")
        values: dict[str, Any] = {}
        for key, types in SETTING_TYPES.items():
            if key in raw:
                value = raw[key]
                if isinstance(value, bool) and bool not in types or not isinstance(value, types):
                    raise fail(f"setting {key} has the wrong type")
                values[key] = value
        stop = raw.get("stop", [])
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise fail("stop must be a list of texts")
        if not isinstance(values.get("seed"), int):
            raise fail("needs the seed it was generated with")
        try:
            settings = SamplingSettings(**values, stop=tuple(stop)).validate()
        except ExplorerError as exc:
            raise fail(exc.message) from exc
        parent = data.get("parent")
        ints = [data.get("index", 0), data.get("token_id", 0)]
        ids = data.get("generated_ids", [])
        if parent is not None and not (isinstance(parent, int) and not isinstance(parent, bool)
                                       and 0 <= parent < number):
            raise fail("its parent must be an earlier branch")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
            raise fail("index and token_id must be non-negative integers")
        if not isinstance(ids, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                and v >= 0 for v in ids):
            raise fail("generated_ids must be a list of token ids")
        stopped = data.get("stopped", False)
        if not isinstance(stopped, bool):
            raise fail("stopped must be true or false")
        return cls(prompt, chat, settings, parent, ints[0], ints[1], tuple(ids), stopped)


def read_recipes(items: Any) -> list[BranchRecipe]:
    """A session's ``generation.branches`` list as recipes (ValueError if malformed)."""
    if not isinstance(items, list):
        raise ValueError("generation branches must be a list")
    return [BranchRecipe.from_dict(item, number) for number, item in enumerate(items)]

"""`attention-explorer models`: embedded models and the local Hugging Face cache."""

import json

import pytest

from explorer.cli import main


def fake_hub_cache(root, repo_id, config):
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    blob = repo / "blobs" / "c0ffee"
    blob.parent.mkdir()
    blob.write_text(json.dumps(config))
    (snapshot / "config.json").symlink_to(blob)
    return snapshot


def test_models_lists_embedded_and_cached(tmp_path, monkeypatch, capsys):
    fake_hub_cache(tmp_path, "someone/tiny-llama", {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
        "rope_theta": 10000.0})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    aliases = {row["alias"]: row for row in listing["embedded"]}
    assert set(aliases) == {"smollm2", "minilm", "gemma3"}
    if aliases["gemma3"]["installed"]:
        row = aliases["gemma3"]
        assert (row["layers"], row["heads"], row["kv_heads"], row["context_length"]) == (18, 4, 1, 32768)
        assert row["positional"] == "rotary" and row["sliding_window"] == 512
        assert "Gemma" in row["licence"]
    if aliases["smollm2"]["installed"]:
        row = aliases["smollm2"]
        assert (row["layers"], row["heads"], row["kv_heads"], row["context_length"]) == (30, 9, 3, 8192)
        assert row["positional"] == "rotary"
    if aliases["minilm"]["installed"]:
        assert aliases["minilm"]["positional"] == "learned" and aliases["minilm"]["heads"] == 12
    cached = {row["hub_id"]: row for row in listing["hub_cache"]}
    assert cached["someone/tiny-llama"]["kv_heads"] == 2
    assert cached["someone/tiny-llama"]["positional"] == "rotary"
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "smollm2" in text and "someone/tiny-llama" in text


@pytest.mark.parametrize("argv", [["analyze", "--prompt", "x"], ["analyze", "--out", "x.npz"]])
def test_missing_required_flags_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2

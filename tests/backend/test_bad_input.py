"""Every kind of bad input gives a clear message and exit code 2, never a traceback."""

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from explorer.backend.embedded import EMBEDDED_MODELS
from explorer.backend.engine import analyze, check_prompt
from explorer.backend.generation import check_fits
from explorer.backend.loader import LoadedModel, check_attentions_available, load_model
from explorer.backend.memory import check_memory
from explorer.cli import main
from explorer.core.errors import (
    AttentionUnavailableError,
    ModelLoadError,
    PromptError,
    UnsafeModelError,
)
from tests.support import tiny_models


def run_cli(capsys, *args):
    code = main(["analyze", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_tiny_folder_analyzes_from_the_cli(tiny_gpt2_folder, tmp_path, capsys):
    code, out, err = run_cli(capsys, "--model", str(tiny_gpt2_folder), "--prompt", "The cat sat",
                             "--out", str(tmp_path / "r.npz"), "--top-k", "3")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["tokens"][0] == "The" and len(summary["top5_next"]) == 3
    assert set(summary["timings"]) >= {"load_s", "run_s"}
    with np.load(tmp_path / "r.npz") as data:
        assert data["topk_ids"].shape == (summary["num_tokens"], 3)


def test_json_flag_prints_every_array(tiny_gpt2_folder, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "--model", str(tiny_gpt2_folder), "--prompt", "The cat",
                           "--out", str(tmp_path / "r.npz"), "--json")
    assert code == 0
    full = json.loads(out)
    n = len(full["tokens"])
    assert np.asarray(full["attentions"]).shape[2:] == (n, n)
    with np.load(tmp_path / "r.npz") as data:
        for name in data.files:  # --json prints every array of the archive
            assert name in full or name in ("format_version",), name
        assert len(full["last_probs"]) == data["last_probs"].shape[0]
    assert full["actual_next_probs"][-1] is None and full["actual_next_ranks"][-1] == -1


def test_unknown_model_lists_the_embedded_ones(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--model", "no-such-model", "--prompt", "x", "--out", str(tmp_path / "r.npz"))
    assert code == 2
    assert "Unknown model 'no-such-model'" in err
    for alias in EMBEDDED_MODELS:
        assert alias in err


def test_uncached_hub_id_says_offline(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--model", "someone/not-cached-model", "--prompt", "x",
                           "--out", str(tmp_path / "r.npz"))
    assert code == 2 and "not in the local Hugging Face cache" in err and "offline" in err


def test_missing_path(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--model", str(tmp_path / "gone.gguf"), "--prompt", "x",
                           "--out", str(tmp_path / "r.npz"))
    assert code == 2 and "No such file" in err


def test_file_that_is_not_gguf(tmp_path, capsys):
    bad = tmp_path / "fake.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf")
    code, _, err = run_cli(capsys, "--model", str(bad), "--prompt", "x", "--out", str(tmp_path / "r.npz"))
    assert code == 2 and "not a GGUF file" in err


def test_truncated_gguf(tmp_path, capsys):
    source = EMBEDDED_MODELS["smollm2"].locate()
    if source is None:
        pytest.skip("embedded SmolLM2 wheel not installed")
    truncated = tmp_path / "truncated.gguf"
    with source.open("rb") as handle:
        truncated.write_bytes(handle.read(2_000_000))
    code, _, err = run_cli(capsys, "--model", str(truncated), "--prompt", "x", "--out", str(tmp_path / "r.npz"))
    assert code == 2 and f"The file '{truncated}' is corrupt" in err and "truncated" in err


def crafted_gguf(path, name: bytes) -> bytes:
    """A small, well-formed GGUF (llama metadata, one tensor); returns its bytes."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name.decode("ascii"))
    writer.add_context_length(64)
    writer.add_tensor("token_embd.weight", np.ones((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def test_gguf_with_valid_header_and_corrupt_body_names_the_file(tmp_path, capsys):
    path = tmp_path / "damaged.gguf"
    name = b"tiny-crafted-model"
    data = crafted_gguf(path, name)
    assert data[:4] == b"GGUF" and data.count(name) == 1
    # the same length, so every offset stays valid: only the text is no longer UTF-8
    path.write_bytes(data.replace(name, b"\xff\xfe" + name[2:]))
    code, _, err = run_cli(capsys, "--model", str(path), "--prompt", "x", "--out", str(tmp_path / "r.npz"))
    assert code == 2
    assert f"The file '{path}' is corrupt" in err and "not valid UTF-8" in err
    assert "UnicodeDecodeError" not in err and "Traceback" not in err


def test_corrupt_safetensors(tiny_gpt2_folder, tmp_path, capsys):
    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_gpt2_folder, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    code, _, err = run_cli(capsys, "--model", str(folder), "--prompt", "x", "--out", str(tmp_path / "r.npz"))
    assert code == 2 and "Could not load" in err


def test_empty_prompt_and_empty_prompt_file(tiny_gpt2_folder, tmp_path, capsys):
    code, _, err = run_cli(capsys, "--model", str(tiny_gpt2_folder), "--prompt", "", "--out", str(tmp_path / "r.npz"))
    assert code == 2 and "empty" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, _, err = run_cli(capsys, "--model", str(tiny_gpt2_folder), "--prompt-file", str(empty),
                           "--out", str(tmp_path / "r.npz"))
    assert code == 2 and "empty" in err


def test_prompt_past_the_context_window(tiny_gpt2_folder, tmp_path, capsys):
    long_prompt = "The cat sat on the mat. " * 40  # far more than the 64 positions
    code, _, err = run_cli(capsys, "--model", str(tiny_gpt2_folder), "--prompt", long_prompt,
                           "--out", str(tmp_path / "r.npz"))
    assert code == 2 and "context window of 64 tokens" in err
    assert not (tmp_path / "r.npz").exists()


def test_remote_code_refused_unless_opted_in(tiny_gpt2_folder, tmp_path, capsys):
    folder = tmp_path / "remote"
    shutil.copytree(tiny_gpt2_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text("raise SystemExit('remote code ran')\n")
    code, _, err = run_cli(capsys, "--model", str(folder), "--prompt", "x", "--out", str(tmp_path / "r.npz"))
    assert code == 2 and "--trust-remote-code" in err


def test_pickle_weights_refused_unless_allowed(tmp_path, capsys):
    folder = tmp_path / "pickled"
    model = tiny_models.tiny_gpt2()
    model.config.architectures = ["GPT2LMHeadModel"]
    torch.save(model.state_dict(), folder.mkdir() or folder / "pytorch_model.bin")
    model.config.save_pretrained(folder)
    tiny_models.byte_level_tokenizer().save_pretrained(folder)
    with pytest.raises(UnsafeModelError, match="--allow-pickle"):
        load_model(str(folder))
    code, _, err = run_cli(capsys, "--model", str(folder), "--prompt", "x", "--out", str(tmp_path / "r.npz"))
    assert code == 2 and "pickle" in err
    code, _, err = run_cli(capsys, "--model", str(folder), "--prompt", "The cat", "--allow-pickle",
                           "--out", str(tmp_path / "r.npz"))
    assert code == 0, err


def test_attention_implementation_without_weights_is_reported():
    model = tiny_models.tiny_llama()
    model.set_attn_implementation("sdpa")
    lm = LoadedModel.from_objects(model, tiny_models.byte_level_tokenizer(), "sdpa-llama")
    with pytest.raises(AttentionUnavailableError, match="eager"):
        check_attentions_available(lm)
    with pytest.raises(AttentionUnavailableError):
        analyze(lm, "The cat")


def test_folder_without_weights(tmp_path):
    folder = tmp_path / "noweights"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ModelLoadError, match="No weights"):
        load_model(str(folder))


def test_no_traceback_reaches_the_user(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "explorer", "analyze", "--model", "nope", "--prompt", "x",
         "--out", str(tmp_path / "r.npz")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_model_given_before_the_subcommand_is_used(tiny_gpt2_folder, tmp_path, capsys):
    code = main(["--model", str(tiny_gpt2_folder), "analyze", "--prompt", "The cat",
                 "--out", str(tmp_path / "r.npz")])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["model"] == tiny_gpt2_folder.name


def test_negative_fewshot_seed_exits_2_without_traceback(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fewshot", "--seed", "-1", "--out", "x.csv"])
    assert info.value.code == 2
    assert "non-negative" in capsys.readouterr().err


def test_long_counts_in_the_refusal_have_thousands_separators(tiny_gpt2_folder):
    """The editor's count says "8,476 tokens / 8,192 context"; the refusal says the same."""
    loaded = load_model(str(tiny_gpt2_folder))
    loaded.info = dataclasses.replace(loaded.info, context_length=8192)
    with pytest.raises(PromptError) as refused:
        check_prompt(loaded, "a long prompt", 8476)
    assert "8,476 tokens long" in str(refused.value) and "window of 8,192 tokens" in str(refused.value)
    assert "Shorten it by 284 tokens" in str(refused.value)
    with pytest.raises(PromptError) as refused:
        check_fits(loaded, 7000, 1500)
    assert "7,000 tokens and 1,500 new tokens" in str(refused.value)
    assert "8,192 tokens" in str(refused.value) and "lower max new tokens to 1,192" in str(refused.value)
    for mode in ("full", "lazy"):  # the memory check before a run, in either mode
        with pytest.raises(PromptError, match="A 8,192-token prompt needs about"):
            check_memory(loaded.info, 8192, mode, limit=1)

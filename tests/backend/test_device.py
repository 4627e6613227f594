"""--device and --dtype: device choice with faked CUDA/MPS (no GPU here), float32 numbers
from low-precision weights, out-of-memory reports."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer.backend import device as dev
from explorer.backend.engine import analyze
from explorer.backend.loader import load_model
from explorer.cli import main
from explorer.core.attention import head_map
from explorer.core.errors import DeviceError, DeviceMemoryError
from tests.support import tiny_models

PROMPT = "The cat sat on the mat. The dog sat on the log."


def fake_devices(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(("cuda", "mps", "expected"), [
    (True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    fake_devices(monkeypatch, cuda, mps)
    assert dev.resolve_device("auto") == expected
    assert dev.resolve_device("cpu") == "cpu"


def test_a_named_device_that_is_missing_is_an_error_or_a_cpu_fallback(monkeypatch):
    fake_devices(monkeypatch, cuda=False, mps=False)
    with pytest.raises(DeviceError, match="CUDA is not available"):
        dev.resolve_device("cuda")
    with pytest.raises(DeviceError, match="Apple MPS is not available"):
        dev.resolve_device("mps")
    assert dev.resolve_device("cuda", fallback_to_cpu=True) == "cpu"
    assert "runs on the CPU" in dev.device_note("cuda", "cpu")
    assert dev.device_note("auto", "cpu") == "" and dev.device_note("cuda:1", "cuda:1") == ""
    fake_devices(monkeypatch, cuda=True, mps=False)
    assert dev.resolve_device("cuda:1") == "cuda:1"


def test_cli_device_cuda_without_cuda_exits_2_without_traceback(monkeypatch, tiny_gpt2_folder,
                                                                tmp_path, capsys):
    fake_devices(monkeypatch, cuda=False, mps=False)
    code = main(["analyze", "--model", str(tiny_gpt2_folder), "--prompt", "x", "--device", "cuda",
                 "--out", str(tmp_path / "r.npz")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --device cuda: CUDA is not available")
    assert "Traceback" not in err and not (tmp_path / "r.npz").exists()


def test_gui_style_fallback_loads_on_the_cpu_and_says_so(monkeypatch, tiny_gpt2_folder):
    fake_devices(monkeypatch, cuda=False, mps=False)
    loaded = load_model(str(tiny_gpt2_folder), device="cuda", device_fallback=True)
    assert loaded.info.device == "cpu" and "CUDA is not available" in loaded.notes[0]


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    model = tiny_models.tiny_llama()
    model.config.architectures = ["LlamaForCausalLM"]
    model.save_pretrained(folder)
    tiny_models.byte_level_tokenizer().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_weights_give_float32_probabilities_and_maps(llama_folder, dtype):
    loaded = load_model(str(llama_folder), dtype=dtype)
    assert loaded.info.dtype == dtype
    inv_freq = dict(loaded.model.named_buffers())["model.rotary_emb.inv_freq"]
    assert inv_freq.dtype == torch.float32  # RoPE angles are not blurred by the cast
    result = analyze(loaded, PROMPT, attention="full")
    ids = result.token_ids.tolist()
    with torch.no_grad():
        out = loaded.model(input_ids=torch.tensor([ids]), output_attentions=True)
        loaded.model.set_attn_implementation("sdpa")  # the kernel the engine's forward used
        logits = loaded.model(input_ids=torch.tensor([ids])).logits[0]
        loaded.model.set_attn_implementation("eager")
    assert logits.dtype == getattr(torch, dtype)
    probs32 = torch.softmax(logits.float(), -1).numpy()  # softmax in float32
    np.testing.assert_allclose(result.topk_probs, np.take_along_axis(probs32, result.topk_ids, -1),
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(result.last_probs.sum(), 1.0, atol=1e-5)
    # maps: float32 softmax of the recorded queries and keys, as the lazy view rebuilds them
    lazy = analyze(loaded, PROMPT, attention="lazy")
    assert lazy.queries.dtype == np.float32
    for layer in range(loaded.info.layers):
        for head in range(loaded.info.heads):
            np.testing.assert_allclose(result.attentions[layer, head].astype(np.float32),
                                       head_map(lazy, layer, head), atol=1e-3)
    eager_maps = torch.stack([a[0] for a in out.attentions]).float().numpy()
    np.testing.assert_allclose(result.attentions.astype(np.float32), eager_maps, atol=3e-2)
    np.testing.assert_allclose(result.attentions.astype(np.float32).sum(-1), 1.0, atol=2e-3)


def test_out_of_memory_while_running_suggests_cpu_or_a_shorter_prompt(monkeypatch):
    loaded = tiny_models.loaded("gpt2")
    loaded.info = replace(loaded.info, device="cuda:0")

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(dev, "free_device_memory", lambda: None)
    monkeypatch.setattr(loaded.model, "forward", exhausted)
    with pytest.raises(DeviceMemoryError) as caught:
        analyze(loaded, PROMPT)
    message = str(caught.value)
    assert "Out of memory on the cuda:0 device" in message
    assert "shorter prompt" in message and "--device cpu" in message
    monkeypatch.undo()
    assert analyze(tiny_models.loaded("gpt2"), PROMPT).num_tokens > 0


def test_out_of_memory_while_loading_is_reported(monkeypatch, tiny_gpt2_folder):
    import transformers

    def exhausted(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", exhausted)
    with pytest.raises(DeviceMemoryError, match="Out of memory on the CPU while loading"):
        load_model(str(tiny_gpt2_folder))

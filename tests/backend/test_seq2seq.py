"""Encoder-decoders (tiny in-memory T5 and BART) against plain transformers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explorer.backend.engine import analyze
from explorer.backend.seq2seq import analyze_seq2seq
from explorer.cli import main
from explorer.core.attention import head_map
from tests.support import tiny_models

SOURCE = "The cat sat on the mat."
TARGET = "The dog sat on the log."
KINDS = ["t5", "bart"]


def plain(loaded, source_ids, decoder_ids):
    with torch.no_grad():
        out = loaded.model(input_ids=torch.tensor([source_ids]),
                           decoder_input_ids=torch.tensor([decoder_ids]), output_attentions=True)

    def stack(attentions):
        return torch.stack([a[0] for a in attentions]).numpy()

    return (stack(out.encoder_attentions), stack(out.decoder_attentions),
            stack(out.cross_attentions), torch.softmax(out.logits[0].double(), -1).numpy())


@pytest.mark.parametrize("kind", KINDS)
def test_target_fed_stacks_equal_transformers(kind):
    loaded = tiny_models.loaded(kind)
    tokenizer = tiny_models.byte_level_tokenizer()
    result = analyze_seq2seq(loaded, SOURCE, TARGET)
    source_ids = tokenizer(SOURCE)["input_ids"]
    decoder_ids = [loaded.model.config.decoder_start_token_id] + tokenizer(text_target=TARGET)["input_ids"]
    assert result.token_ids.tolist() == source_ids
    assert result.decoder_token_ids.tolist() == decoder_ids and not result.generated
    assert result.decoder_tokens == tuple(tokenizer.convert_ids_to_tokens(decoder_ids))
    encoder, decoder, cross, probs = plain(loaded, source_ids, decoder_ids)
    s, t = len(source_ids), len(decoder_ids)
    assert result.cross_attentions.shape == (cross.shape[0], cross.shape[1], t, s)
    np.testing.assert_allclose(result.encoder_attentions.astype(np.float32), encoder, atol=1e-3)
    np.testing.assert_allclose(result.decoder_attentions.astype(np.float32), decoder, atol=1e-3)
    np.testing.assert_allclose(result.cross_attentions.astype(np.float32), cross, atol=1e-3)
    future = np.triu(np.ones((t, t), bool), k=1)
    assert np.all(result.decoder_attentions[..., future] == 0)  # the decoder is causal
    assert np.all(result.encoder_attentions > 0)  # the encoder sees both ways
    np.testing.assert_allclose(result.topk_probs, np.take_along_axis(probs, result.topk_ids, -1),
                               rtol=1e-4, atol=1e-7)
    following = np.asarray(decoder_ids[1:])
    np.testing.assert_allclose(result.actual_next_probs[:-1], probs[np.arange(t - 1), following],
                               rtol=1e-4)
    assert np.isnan(result.actual_next_probs[-1])


@pytest.mark.parametrize("kind", KINDS)
def test_without_target_the_decoder_generates_greedily(kind):
    loaded = tiny_models.loaded(kind)
    result = analyze_seq2seq(loaded, SOURCE, max_new_tokens=12)
    ids = result.decoder_token_ids
    assert result.generated and len(ids) == 13
    # every generated token is the argmax of the final forward at the position before it
    np.testing.assert_array_equal(result.topk_ids[:-1, 0], ids[1:])
    if kind == "bart":  # transformers' own greedy search agrees
        with torch.no_grad():
            generated = loaded.model.generate(torch.tensor([result.token_ids.tolist()]),
                                              max_new_tokens=12, do_sample=False, num_beams=1)
        np.testing.assert_array_equal(generated[0].numpy(), ids)


def test_stacks_become_run_results_with_their_own_axes():
    loaded = tiny_models.loaded("t5")
    result = analyze_seq2seq(loaded, SOURCE, TARGET)
    encoder, decoder, cross = (result.stack_result(s) for s in ("encoder", "decoder", "cross"))
    assert encoder.tokens == result.tokens and encoder.key_labels == result.tokens
    assert not encoder.has_next_token and encoder.model_info.layers == 2
    assert decoder.tokens == result.decoder_tokens and decoder.key_tokens is None
    assert decoder.model_info.layers == 3 and decoder.has_next_token
    assert cross.tokens == result.decoder_tokens and cross.key_labels == result.tokens
    np.testing.assert_array_equal(head_map(cross, 2, 1),
                                  result.cross_attentions[2, 1].astype(np.float32))
    np.testing.assert_array_equal(cross.topk_probs, result.topk_probs)
    plain_run = analyze(loaded, SOURCE)  # the panels' plain run: cross-attention, greedy
    assert plain_run.key_tokens == result.tokens and plain_run.attentions.shape[2:] == (
        len(plain_run.tokens), len(result.tokens))


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-t5")
    tiny_models.tiny_t5().save_pretrained(folder)
    tiny_models.byte_level_tokenizer().save_pretrained(folder)
    return folder


def test_cli_writes_the_three_stacks(t5_folder, tmp_path, capsys):
    out = tmp_path / "s2s.npz"
    code = main(["analyze", "--model", str(t5_folder), "--prompt", SOURCE, "--target", TARGET,
                 "--out", str(out), "--top-k", "5"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["kind"] == "seq2seq"
    loaded = tiny_models.loaded("t5")
    tokenizer = tiny_models.byte_level_tokenizer()
    source_ids = tokenizer(SOURCE)["input_ids"]
    decoder_ids = [0] + tokenizer(text_target=TARGET)["input_ids"]
    encoder, decoder, cross, probs = plain(loaded, source_ids, decoder_ids)
    with np.load(out) as data:
        assert data["encoder_attentions"].dtype == np.float16
        assert data["encoder_attentions"].shape == (2, 4, len(source_ids), len(source_ids))
        assert data["decoder_attentions"].shape == (3, 4, len(decoder_ids), len(decoder_ids))
        assert data["cross_attentions"].shape == (3, 4, len(decoder_ids), len(source_ids))
        np.testing.assert_allclose(data["cross_attentions"].astype(np.float32), cross, atol=1e-3)
        assert data["decoder_token_ids"].tolist() == decoder_ids
        assert data["decoder_tokens"].tolist() == tokenizer.convert_ids_to_tokens(decoder_ids)
        assert data["topk_ids"].shape == (len(decoder_ids), 5)
        np.testing.assert_allclose(data["topk_probs"],
                                   np.take_along_axis(probs, data["topk_ids"], -1), rtol=1e-4)
        assert data["topk_tokens"].shape == (len(decoder_ids), 5)


def test_cli_target_on_a_decoder_only_model_is_refused(tiny_gpt2_folder, tmp_path, capsys):
    code = main(["analyze", "--model", str(tiny_gpt2_folder), "--prompt", SOURCE, "--target", "x",
                 "--out", str(tmp_path / "r.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "--target is for encoder-decoder models" in err

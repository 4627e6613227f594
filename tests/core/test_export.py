"""Exported tables carry their context and readable tokens; read back, they equal the run."""

import csv
import hashlib

import numpy as np
import pytest

from explorer.core.export import (
    PROBABILITY_COLUMNS,
    ExportContext,
    read_csv_export,
    selected_attention,
    write_attention_csv,
    write_probabilities_csv,
)
from explorer.core.selection import Selection
from explorer.core.types import ModelInfo, RunResult

INFO = ModelInfo(name="tiny model", architecture="X", layers=2, heads=2, kv_heads=2, hidden_size=8,
                 vocab_size=50, context_length=16, positional_kind="rotary", causal=True)
# byte-level pieces: "Ġis" = " is", "âĢĻ" = "’" (E2 80 99), "Ċ" = newline; and awkward CSV text
PIECES = ("The", "Ġis", "âĢĻ", "Ċ", '",#')
NEXT = (("Ġis", "âĢĻ"), ("âĢĻ", "Ġa"), ("Ċ", "Ġis"), ('",#', "Ġb"), ("Ġc", "Ġd"))


def make_result() -> RunResult:
    rng = np.random.default_rng(0)
    n = len(PIECES)
    att = rng.random((2, 2, n, n)).astype(np.float32) * np.tril(np.ones((n, n), np.float32))
    att /= att.sum(-1, keepdims=True)
    probs = np.sort(rng.random((n, 2)).astype(np.float32), axis=1)[:, ::-1] / 2
    return RunResult(
        prompt="The is’\n\",#", token_ids=np.array([5, 6, 7, 8, 9]), tokens=PIECES,
        offsets=np.zeros((n, 2)), attentions=att, topk_ids=np.array([[6, 7], [7, 11], [8, 6], [9, 12], [13, 14]]),
        topk_probs=probs, topk_logits=np.log(probs), topk_tokens=NEXT,
        positional=np.zeros((n, 2)), positional_kind="rotary", model_info=INFO,
    )


def test_context_names_model_prompt_hash_position_head_and_view():
    result = make_result()
    context = ExportContext.of(result, Selection(token=2, layer=1, head=0, hide_first=True))
    fields = dict(context.fields())
    assert fields["model"] == "tiny model"
    assert fields["prompt_sha256"] == hashlib.sha256(result.prompt.encode("utf-8")).hexdigest()
    assert (fields["position"], fields["position_token"]) == ("2", "’")
    assert (fields["layer"], fields["head"]) == ("1", "0")
    assert fields["view_hide_first_token"] == "yes" and fields["view_mean_over_heads"] == "no"
    assert "Hide first token" in context.caption() and "tiny model" in context.caption()
    mean = ExportContext.of(result, Selection(layer=1, head=1, head_mean=True))
    assert dict(mean.fields())["head"] == "mean" and "mean over the heads of layer 1" in mean.caption()
    # out-of-range selections are clamped to the run, as the panels clamp them
    assert ExportContext.of(result, Selection(token=99, layer=9)).position == 4


def test_probability_csv_has_position_readable_text_and_raw_piece(tmp_path):
    result = make_result()
    context = ExportContext.of(result, Selection(token=1))
    path = write_probabilities_csv(result, 1, tmp_path / "p.csv", context)
    header, rows = read_csv_export(path)
    assert header["position"] == "1" and header["model"] == "tiny model"
    assert tuple(rows[0]) == PROBABILITY_COLUMNS
    table = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [r["position"] for r in table] == ["1", "1"]
    assert [r["token"] for r in table] == ["’", " a"]  # readable text, not "âĢĻ" / "Ġa"
    assert [r["piece"] for r in table] == ["âĢĻ", "Ġa"]
    assert [int(r["token_id"]) for r in table] == [7, 11]
    np.testing.assert_allclose([float(r["probability"]) for r in table], result.topk_probs[1], rtol=1e-6)
    np.testing.assert_allclose([float(r["logit"]) for r in table], result.topk_logits[1], rtol=1e-5)
    assert [r["actual_next"] for r in table] == ["1", "0"]  # token 2 is id 7
    # the awkward row: a newline piece and a piece made of CSV syntax survive the round trip
    _, rows = read_csv_export(write_probabilities_csv(result, 2, tmp_path / "q.csv", context))
    assert [r[3] for r in rows[1:]] == ["\n", " is"]
    _, rows = read_csv_export(write_probabilities_csv(result, 3, tmp_path / "r.csv", context))
    assert rows[1][3:5] == ['",#', '",#']


def test_the_context_lines_are_comments_before_an_ordinary_table(tmp_path):
    result = make_result()
    path = write_probabilities_csv(result, 0, tmp_path / "p.csv", ExportContext.of(result, Selection()))
    lines = path.read_text(encoding="utf-8").splitlines()
    comments = [line for line in lines if line.startswith("# ")]
    assert lines[: len(comments)] == comments and "# model: tiny model" in comments
    table = list(csv.reader(lines[len(comments):]))
    assert table[0] == list(PROBABILITY_COLUMNS)


@pytest.mark.parametrize("hide_first", [False, True])
@pytest.mark.parametrize("head_mean", [False, True])
def test_attention_csv_values_labels_and_view_note(tmp_path, hide_first, head_mean):
    result = make_result()
    selection = Selection(token=3, layer=1, head=1, hide_first=hide_first, head_mean=head_mean)
    matrix = selected_attention(result, selection)
    # independently: numpy on the stored maps
    expected = result.attentions[1].astype(np.float64)
    expected = expected.mean(0) if head_mean else expected[1]
    if hide_first:
        expected[:, 0] = 0
        sums = expected.sum(-1, keepdims=True)
        expected = np.divide(expected, sums, out=np.zeros_like(expected), where=sums > 0)
    np.testing.assert_allclose(matrix, expected, atol=1e-3)  # the maps are stored as float16
    header, rows = read_csv_export(write_attention_csv(matrix, result, tmp_path / "a.csv",
                                                       ExportContext.of(result, selection)))
    assert rows[0] == ["query \\ key", "0:The", "1:␣is", "2:’", "3:↵", '4:",#']
    assert [r[0] for r in rows[1:]] == rows[0][1:]
    np.testing.assert_allclose(np.array([r[1:] for r in rows[1:]], float), matrix, rtol=1e-5, atol=1e-7)
    assert header["view_hide_first_token"] == ("yes" if hide_first else "no")
    assert ("Hide first token applied" in header["values"]) == hide_first
    assert ("renormalised" in header["values"]) == hide_first
    assert ("mean over the heads" in header["values"]) == head_mean

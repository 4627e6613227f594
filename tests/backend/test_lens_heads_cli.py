"""`attention-explorer lens` and `attention-explorer heads`: the files, their names and
the bad-input exits."""

import json

import numpy as np
import pytest
import torch

from explorer.cli import main
from explorer.core.head_scores import SCORE_NAMES, read_csv
from tests.support import tiny_models
from tests.support.head_formulas import loop_scores

PROMPT = "The cat sat on the mat. The cat sat on the"


@pytest.fixture(scope="module")
def tiny_bert_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-bert")
    model = tiny_models.tiny_bert()
    model.config.architectures = ["BertModel"]
    model.save_pretrained(folder)
    tiny_models.wordpiece_tokenizer().save_pretrained(folder)
    return folder


def plain_gpt2(folder, prompt):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    ids = tokenizer(prompt)["input_ids"]
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_attentions=True)
    return ids, out


def test_lens_archive_has_the_contract_arrays(tiny_gpt2_folder, tmp_path, capsys):
    out = tmp_path / "r.npz"
    code = main(["lens", "--model", str(tiny_gpt2_folder), "--prompt", PROMPT, "--out", str(out),
                 "--top-k", "4"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    ids, plain = plain_gpt2(tiny_gpt2_folder, PROMPT)
    probs = torch.softmax(plain.logits[0].double(), -1).numpy()
    with np.load(out) as data:
        layers, num = 2, len(ids)
        assert data["lens_ids"].shape == (layers, num, 4) and data["lens_ids"].dtype == np.int64
        assert data["lens_probs"].shape == (layers, num, 4) and data["lens_probs"].dtype == np.float32
        assert data["lens_final_probs"].shape == (layers, num) and data["lens_final_probs"].dtype == np.float32
        assert data["lens_kl"].shape == (layers, num) and data["lens_kl"].dtype == np.float32
        assert data["token_ids"].tolist() == ids
        order = np.argsort(-probs, -1, kind="stable")[:, :4]
        np.testing.assert_array_equal(data["lens_ids"][-1], order)
        np.testing.assert_allclose(data["lens_probs"][-1], np.take_along_axis(probs, order, -1), atol=1e-4)
        np.testing.assert_allclose(data["lens_final_probs"][-1], probs.max(-1), atol=1e-4)
        assert np.all(data["lens_kl"][-1] < 1e-4)
        assert len(data["tokens"]) == num
    assert summary["layers"] == 2 and summary["position"] == len(ids) - 1
    assert summary["final_token"]["id"] == int(probs[-1].argmax())
    assert [g["id"] for g in summary["by_layer"][-1]["top"]] == order[-1].tolist()


def test_lens_refuses_an_encoder_and_bad_input(tiny_bert_folder, tiny_gpt2_folder, tmp_path, capsys):
    assert main(["lens", "--model", str(tiny_bert_folder), "--prompt", PROMPT,
                 "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert "encoder" in err and "next-token" in err and "Traceback" not in err
    assert not (tmp_path / "x.npz").exists()
    assert main(["lens", "--model", str(tiny_gpt2_folder), "--prompt", " ", "--out", str(tmp_path / "y.npz")]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["lens", "--model", str(tiny_gpt2_folder), "--prompt", PROMPT, "--top-k", "0",
                 "--out", str(tmp_path / "z.npz")]) == 2
    assert "--top-k" in capsys.readouterr().err


def test_heads_csv_columns_and_values(tiny_gpt2_folder, tmp_path, capsys):
    out = tmp_path / "heads.csv"
    assert main(["heads", "--model", str(tiny_gpt2_folder), "--prompt", PROMPT, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    header = out.read_text(encoding="utf-8").splitlines()[0]
    assert header == "layer,head,kv_head,first_token,previous_token,self,duplicate_token,induction,entropy_bits"
    rows = read_csv(out)
    ids, plain = plain_gpt2(tiny_gpt2_folder, PROMPT)
    assert len(rows) == 2 * 4
    for row in rows:
        layer, head = int(row["layer"]), int(row["head"])
        assert row["kv_head"] == head
        expected = loop_scores(plain.attentions[layer][0, head].double().numpy(), ids)
        np.testing.assert_allclose([row[n] for n in SCORE_NAMES], expected, rtol=1e-5, atol=1e-4)
    assert summary["source"] == "prompt" and set(summary["top"]) == set(SCORE_NAMES)


def test_heads_probe_needs_no_prompt_and_says_when_one_is_unused(tiny_gpt2_folder, tmp_path, capsys):
    out = tmp_path / "probe.csv"
    assert main(["heads", "--model", str(tiny_gpt2_folder), "--probe", "induction", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "repeated once" in json.loads(captured.out)["source"]
    assert len(read_csv(out)) == 8
    assert main(["heads", "--model", str(tiny_gpt2_folder), "--prompt", PROMPT, "--probe", "induction",
                 "--out", str(out)]) == 0
    assert "prompt is not used" in capsys.readouterr().err


def test_heads_bad_input_exits_2(tiny_gpt2_folder, tmp_path, capsys):
    out = str(tmp_path / "h.csv")
    assert main(["heads", "--model", str(tiny_gpt2_folder), "--out", out]) == 2
    assert "prompt is empty" in capsys.readouterr().err
    assert main(["heads", "--model", str(tiny_gpt2_folder), "--prompt", "", "--out", out]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["heads", "--model", str(tiny_gpt2_folder), "--probe", "copying", "--out", out])
    assert exit_info.value.code == 2

"""`attention-explorer ablate`: the JSON and .npz contracts, checked against plain
transformers with the head's weight columns zeroed; bad input exits 2 without a traceback."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from explorer.cli import main

PROMPT = "The cat sat on the mat. The dog sat on the"


def run(capsys, *args):
    code = main(["ablate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def reference_last_probs(folder, heads=()):
    """Softmax after the last token of a fresh GPT-2 whose c_proj ignores the heads."""
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    dim = model.config.n_embd // model.config.n_head
    with torch.no_grad():
        for layer, head in heads:
            model.transformer.h[layer].attn.c_proj.weight[head * dim : (head + 1) * dim, :] = 0.0
        logits = model(input_ids=torch.tensor([tokenizer(PROMPT)["input_ids"]])).logits[0, -1]
    return torch.softmax(logits.double(), dim=-1).numpy(), tokenizer


def test_ablate_writes_both_distributions_the_target_and_kl(tiny_gpt2_folder, tmp_path, capsys):
    out = tmp_path / "r.json"
    code, _, err = run(capsys, "--model", str(tiny_gpt2_folder), "--prompt", PROMPT,
                       "--heads", "1.2,0.0,0.1,1.3", "--out", str(out), "--top-k", "4")
    assert code == 0, err
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report) == {"base", "ablated", "target", "kl"}
    base, tokenizer = reference_last_probs(tiny_gpt2_folder)
    ablated, _ = reference_last_probs(tiny_gpt2_folder, [(1, 2), (0, 0), (0, 1), (1, 3)])
    for key, probs in (("base", base), ("ablated", ablated)):
        top = report[key]["top"]
        assert [set(entry) for entry in top] == [{"id", "token", "prob"}] * 4
        assert [e["id"] for e in top] == np.argsort(-probs)[:4].tolist()
        np.testing.assert_allclose([e["prob"] for e in top], np.sort(probs)[::-1][:4], atol=1e-6)
        assert top[0]["token"] == tokenizer.convert_ids_to_tokens(top[0]["id"])
    target = report["target"]
    assert set(target) == {"id", "token", "base_prob", "ablated_prob"}
    assert target["id"] == int(np.argmax(base))
    assert target["ablated_prob"] == pytest.approx(ablated[target["id"]], abs=1e-6)
    kl = float(np.sum(base * (np.log(base) - np.log(ablated))))
    assert report["kl"] > 1e-5  # float32 probabilities round the KL to about 2e-7
    assert report["kl"] == pytest.approx(kl, rel=2e-2, abs=2e-7)


def test_ablate_mean_mode_and_a_chosen_target(tiny_gpt2_folder, tmp_path, capsys):
    out = tmp_path / "r.json"
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2_folder)
    word = tokenizer.decode(tokenizer(PROMPT)["input_ids"][3:4])
    code, _, err = run(capsys, "--model", str(tiny_gpt2_folder), "--prompt", PROMPT,
                       "--heads", "0.1", "--mode", "mean", "--target", word, "--out", str(out))
    assert code == 0, err
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["target"]["id"] == tokenizer(PROMPT)["input_ids"][3]
    assert report["target"]["ablated_prob"] != pytest.approx(report["target"]["base_prob"], abs=1e-7)


def test_scan_writes_delta_logprob_per_head(tiny_gpt2_folder, tmp_path, capsys):
    out = tmp_path / "scan.npz"
    code, _, err = run(capsys, "--model", str(tiny_gpt2_folder), "--prompt", PROMPT, "--scan",
                       "--out", str(out))
    assert code == 0, err
    with np.load(out) as data:
        delta = data["delta_logprob"]
        target = int(data["target_id"])
    assert delta.dtype == np.float32 and delta.shape == (2, 4)
    base, _ = reference_last_probs(tiny_gpt2_folder)
    assert target == int(np.argmax(base))
    for layer, head in [(0, 3), (1, 1)]:
        ablated, _ = reference_last_probs(tiny_gpt2_folder, [(layer, head)])
        assert delta[layer, head] == pytest.approx(np.log(ablated[target] / base[target]), abs=1e-5)


@pytest.mark.parametrize(("args", "message"), [
    (["--heads", "2.1"], "Head 2.1 does not exist: the model has 2 layers"),
    (["--heads", "0.4"], "Head 0.4 does not exist"),
    (["--heads", "1-2"], "Malformed head '1-2'"),
    (["--heads", "1.2,"], "Malformed head ''"),
    (["--heads", "0.1", "--target", " naïve café"], "not one"),
    (["--scan", "--target", "the cat sat"], "not one"),
    (["--scan", "--heads", "0.1"], "drop --heads"),
    ([], "Give --heads"),
    (["--scan", "--position", "500"], "outside the prompt"),
])
def test_bad_input_exits_2_with_a_clear_message(tiny_gpt2_folder, tmp_path, capsys, args, message):
    code, _, err = run(capsys, "--model", str(tiny_gpt2_folder), "--prompt", PROMPT,
                       "--out", str(tmp_path / "x.json"), *args)
    assert code == 2
    assert message in err and err.startswith("error: ")
    assert "Traceback" not in err
    assert not (tmp_path / "x.json").exists()


def test_unknown_mode_is_an_argparse_error(tiny_gpt2_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["ablate", "--model", str(tiny_gpt2_folder), "--prompt", PROMPT, "--heads", "0.1",
              "--mode", "resample", "--out", str(tmp_path / "x.json")])
    assert exit_info.value.code == 2

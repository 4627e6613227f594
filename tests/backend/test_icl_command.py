"""The `icl` command on a tiny model folder: exact JSON keys, demonstrations chosen as
`fewshot` chooses them (its items CSV holds the same prompt and probabilities), bad input."""

from __future__ import annotations

import csv
import json

import pytest

from explorer.core import fewshot as fs
from tests.support.tiny_models import byte_level_tokenizer, tiny_gpt2

LABELS = ("Positive", "Negative")
POOL = [(f"the cat sat {i}", LABELS[i % 2]) for i in range(6)]
QUERY = "I loved this movie!"


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-gpt2-icl")
    tiny_gpt2(512).save_pretrained(folder)
    byte_level_tokenizer().save_pretrained(folder)
    return folder


def write_csv(path, rows):
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def test_icl_json_matches_fewshot_choice_and_probabilities(model_folder, tmp_path, capsys) -> None:
    from explorer.cli import main

    demos = write_csv(tmp_path / "demos.csv", POOL)
    examples = write_csv(tmp_path / "ex.csv", [(QUERY, "Positive")])
    out = tmp_path / "r.json"
    assert main(["icl", "--model", str(model_folder), "--query", QUERY, "--labels", "Positive,Negative",
                 "--shots", "3", "--seed", "4", "--demos", str(demos), "--out", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert list(data) == ["prompt", "label_probs", "demo_effects", "anchor_flow"]
    assert list(data["label_probs"]) == list(LABELS)
    assert [list(e) for e in data["demo_effects"]] == [
        ["index", "text", "label", "leave_out_probs", "flipped_probs"]] * 3
    assert list(data["anchor_flow"]) == ["S_wp", "S_pq", "S_ww"]
    assert all(len(v) == 2 and all(isinstance(x, float) for x in v) for v in data["anchor_flow"].values())
    # fewshot with the same seed and k on an examples file holding the query
    assert main(["fewshot", "--model", str(model_folder), "--examples", str(examples), "--demos",
                 str(demos), "--shots", "3", "--seed", "4", "--out", str(tmp_path / "s.csv"),
                 "--items-out", str(tmp_path / "items.csv")]) == 0
    with (tmp_path / "items.csv").open(encoding="utf-8", newline="") as handle:
        item = next(csv.DictReader(handle))
    assert data["prompt"] == item["prompt"]
    for label in LABELS:
        assert data["label_probs"][label] == pytest.approx(float(item[f"p_{label}"]), rel=1e-4)
    chosen = fs.choose_demonstrations([fs.LabelledExample(t, lab) for t, lab in POOL], 3, 4, LABELS)
    assert [(e["index"], e["text"], e["label"]) for e in data["demo_effects"]] == [
        (i, d.text, d.label) for i, d in enumerate(chosen)]
    first = data["demo_effects"][0]
    assert first["leave_out_probs"] != data["label_probs"]
    assert set(first["flipped_probs"]) == set(LABELS)
    assert "label probabilities" in capsys.readouterr().out


@pytest.mark.parametrize("change, needle", [
    ({"--shots": "7"}, "pool has only 6"),
    ({"--shots": "-1"}, "cannot be negative"),
    ({"--query": "  "}, "query is empty"),
    ({"--query": "word " * 600}, "context window"),
    ({"--labels": "Positive"}, "at least two labels"),
    ({"--labels": "Good,Bad"}, "unknown label"),
])
def test_icl_bad_input_exits_2(model_folder, tmp_path, capsys, change, needle) -> None:
    from explorer.cli import main

    demos = write_csv(tmp_path / "demos.csv", POOL)
    options = {"--query": QUERY, "--labels": "Positive,Negative", "--shots": "2",
               "--demos": str(demos), "--out": str(tmp_path / "r.json"), **change}
    args = ["icl", "--model", str(model_folder)] + [x for pair in options.items() for x in pair]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()

"""Hub downloads against a loopback server that imitates the hub (tests/support/fake_hub.py).

No network: HF_ENDPOINT points at 127.0.0.1; the repositories are tiny models the tests
write. Checked: only config/tokenizer/safetensors files are fetched, byte progress, the
downloaded model computes what the original does, cancel and interruptions leave nothing
a later load trusts, one retry, consent before pickle weights or custom code, and fast
clear failures for typos and offline machines.
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import torch

from explorer.backend import hub
from explorer.backend.engine import analyze
from explorer.backend.loader import load_model
from explorer.cli import main
from explorer.core.errors import Cancelled, DownloadError, ModelNotFoundError, UnsafeModelError
from explorer.core.progress import TaskState
from tests.support import tiny_models
from tests.support.fake_hub import FakeHub

PROMPT = "The cat sat on the mat."
REPO = "tester/tiny-gpt2"


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    """A tiny GPT-2 repository with files a download must skip."""
    folder = tmp_path_factory.mktemp("repo")
    model = tiny_models.tiny_gpt2()
    model.config.architectures = ["GPT2LMHeadModel"]
    model.save_pretrained(folder)
    tiny_models.byte_level_tokenizer().save_pretrained(folder)
    (folder / "README.md").write_text("# tiny\n")
    (folder / "pytorch_model.bin").write_bytes(b"not used: safetensors exist")
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.safetensors").write_bytes(b"a sub-folder file")
    (folder / "train.py").write_text("raise SystemExit('never imported')\n")
    return folder


@pytest.fixture
def fake_hub(tmp_path, monkeypatch, tiny_repo):
    """The server with REPO, HF_ENDPOINT pointing at it, online mode, empty caches."""
    import huggingface_hub.constants as constants

    server = FakeHub().start()
    server.add_repo(REPO, tiny_repo)
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("ATTENTION_EXPLORER_CACHE", str(tmp_path / "ae-cache"))
    monkeypatch.setattr(hub, "CHUNK_BYTES", 8192)  # several progress reports per file
    yield server
    server.stop()


def recording_task(cancel_when=None) -> tuple[TaskState, list[tuple[float, str]]]:
    seen: list[tuple[float, str]] = []
    return TaskState(report=lambda f, m: seen.append((f, m)),
                     is_cancel_requested=lambda: bool(cancel_when and cancel_when(seen))), seen


def nothing_kept(repo_id: str) -> bool:
    folder = hub.download_dir(repo_id)
    staging = list(folder.parent.glob(f".staging-{folder.name}-*")) if folder.parent.exists() else []
    return not folder.exists() and not staging and hub.downloaded(repo_id) is None


def test_download_fetches_only_needed_files_and_loads_the_same_model(fake_hub, tiny_repo):
    task, seen = recording_task()
    loaded = load_model(REPO, task)
    fetched = {path.rsplit("/", 1)[-1] for method, path, _ in fake_hub.log
               if method == "GET" and "/resolve/" in path}
    assert fetched == {"config.json", "generation_config.json", "model.safetensors",
                       "tokenizer.json", "tokenizer_config.json"}
    assert not fake_hub.requested("onnx/model.safetensors")
    # byte progress, in order, up to the whole size
    weights = (tiny_repo / "model.safetensors").stat().st_size
    downloads = [(f, m) for f, m in seen if m.startswith("Downloading model.safetensors")]
    done, total = downloads[-1][1].split(": ")[1].split(" / ")
    assert len(downloads) >= 3 and done == total and downloads[0][1].split(": ")[1] != total
    fractions = [f for f, m in seen if m.startswith("Downloading")]
    assert fractions == sorted(fractions) and weights > 3 * hub.CHUNK_BYTES
    # the downloaded model computes what the original does (plain transformers)
    original = tiny_models.tiny_gpt2()
    result = analyze(loaded, PROMPT)
    ids = tiny_models.byte_level_tokenizer()(PROMPT)["input_ids"]
    with torch.no_grad():
        logits = original(input_ids=torch.tensor([ids])).logits[0]
    np.testing.assert_allclose(result.topk_logits, torch.topk(logits, result.top_k).values.numpy(),
                               rtol=1e-5, atol=1e-5)
    marker = json.loads((hub.download_dir(REPO) / hub.MARKER).read_text())
    assert marker["repo_id"] == REPO and "model.safetensors" in marker["files"]
    # a second load reads the download, without the server
    fake_hub.log.clear()
    again = load_model(REPO)
    assert not fake_hub.log and again.info.source == str(hub.download_dir(REPO))


def test_cancel_halfway_leaves_nothing_a_later_load_trusts(fake_hub, tiny_repo, monkeypatch):
    weights = (tiny_repo / "model.safetensors").stat().st_size

    def halfway(seen) -> bool:
        return any(m.startswith("Downloading model.safetensors") and f > 0.5 for f, m in seen)

    task, seen = recording_task(halfway)
    with pytest.raises(Cancelled):
        load_model(REPO, task)
    assert any(m.startswith("Downloading model.safetensors") for _, m in seen)
    assert weights > 2 * hub.CHUNK_BYTES and nothing_kept(REPO)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a later offline load finds nothing to trust
    with pytest.raises(ModelNotFoundError, match="cannot download it"):
        load_model(REPO)


def test_one_server_interruption_is_resumed(fake_hub, tiny_repo):
    fake_hub.interrupt["model.safetensors"] = 1
    loaded = load_model(REPO)
    ranges = [r for _, _, r in fake_hub.requested("model.safetensors") if r]
    assert len(ranges) == 1 and ranges[0].startswith("bytes=")  # resumed, not restarted
    kept = hub.download_dir(REPO) / "model.safetensors"
    assert kept.read_bytes() == (tiny_repo / "model.safetensors").read_bytes()
    assert loaded.info.layers == 2


def test_two_interruptions_fail_with_a_clear_message(fake_hub, capsys, tmp_path):
    fake_hub.interrupt["model.safetensors"] = 2
    with pytest.raises(DownloadError, match="interrupted by the server twice"):
        load_model(REPO)
    assert len(fake_hub.requested("model.safetensors")) == 2 and nothing_kept(REPO)
    fake_hub.interrupt["model.safetensors"] = 2
    code = main(["analyze", "--model", REPO, "--prompt", "x", "--out", str(tmp_path / "r.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "interrupted by the server twice" in err and "Traceback" not in err


def test_typo_is_reported_quickly(fake_hub):
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="no model 'tester/tiny-gtp2' on the hub"):
        load_model("tester/tiny-gtp2")
    assert time.perf_counter() - started < 10


def test_offline_and_no_route_fail_quickly_with_the_offline_message(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="not in the local Hugging Face cache.*offline"):
        load_model(REPO)
    assert time.perf_counter() - started < 10 and not fake_hub.log
    monkeypatch.delenv("HF_HUB_OFFLINE")
    closed = FakeHub()  # bound, never served: connections are refused
    endpoint = closed.endpoint
    closed.server.server_close()
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="cannot download it"):
        load_model(REPO)
    assert time.perf_counter() - started < 10


def test_pickle_only_repository_asks_consent_before_fetching(fake_hub, tiny_repo, tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_repo / name, pickled / name)
    torch.save(tiny_models.tiny_gpt2().state_dict(), pickled / "pytorch_model.bin")
    fake_hub.add_repo("tester/pickled", pickled)
    with pytest.raises(UnsafeModelError) as caught:
        load_model("tester/pickled")
    assert caught.value.option == "allow_pickle"
    assert not [e for e in fake_hub.log if "/resolve/" in e[1]] and nothing_kept("tester/pickled")
    loaded = load_model("tester/pickled", allow_pickle=True)
    assert loaded.info.layers == 2 and fake_hub.requested("pytorch_model.bin")


def test_custom_code_asks_consent_and_keeps_nothing(fake_hub, tiny_repo, tmp_path):
    coded = tmp_path / "coded"
    shutil.copytree(tiny_repo, coded)
    config = json.loads((coded / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "train.TinyModel"}
    (coded / "config.json").write_text(json.dumps(config))
    fake_hub.add_repo("tester/coded", coded)
    with pytest.raises(UnsafeModelError) as caught:
        load_model("tester/coded")
    assert caught.value.option == "trust_remote_code"
    fetched = [e[1] for e in fake_hub.log if "/resolve/" in e[1]]
    assert fetched == ["/tester/coded/resolve/" + fake_hub_commit() + "/config.json"]
    assert not fake_hub.requested("train.py") and nothing_kept("tester/coded")


def fake_hub_commit() -> str:
    from tests.support.fake_hub import COMMIT

    return COMMIT

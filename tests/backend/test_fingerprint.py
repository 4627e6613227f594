from explorer.backend import gguf_cache
from explorer.backend.fingerprint import file_sha256, folder_fingerprint, model_fingerprint


def test_file_fingerprint_changes_with_content(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF1")
    first = file_sha256(f)
    f.write_bytes(b"GGUF22")
    assert file_sha256(f) != first and len(first) == 64
    assert model_fingerprint(f) == file_sha256(f)
    assert gguf_cache.cache_dir_for(f).name.endswith(file_sha256(f)[:16])
    assert model_fingerprint(tmp_path / "missing") is None


def test_folder_fingerprint_follows_config_and_files(tmp_path):
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    first = folder_fingerprint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"x" * 11)
    second = folder_fingerprint(tmp_path)
    (tmp_path / "config.json").write_text('{"a": 2}')
    assert len({first, second, folder_fingerprint(tmp_path)}) == 3
    assert model_fingerprint(tmp_path) == folder_fingerprint(tmp_path)

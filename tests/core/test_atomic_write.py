"""One writer for text files that must never be left half written (sessions, the prompt)."""

import os
import stat

import pytest

from explorer.core.atomic_write import write_text_atomically


@pytest.mark.parametrize("durable", [False, True])
def test_the_text_replaces_the_file_whole_and_no_scratch_file_stays(tmp_path, durable):
    path = tmp_path / "deeper" / "s.json"
    write_text_atomically(path, "old", durable=durable)
    write_text_atomically(path, "new\r\nline ü", durable=durable)
    assert path.read_bytes() == "new\r\nline ü".encode()  # newlines kept as given
    assert sorted(p.name for p in path.parent.iterdir()) == ["s.json"]


def test_a_write_that_fails_leaves_the_old_file_and_no_scratch_file(tmp_path):
    path = tmp_path / "s.json"
    write_text_atomically(path, "old")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomically(path, "half \ud800 written")  # a lone surrogate: no UTF-8
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_the_file_gets_the_permissions_a_plain_write_would_give(tmp_path):
    """A new file: the default under the umask (a session in a shared folder stays
    readable); a replaced file keeps its own (the scratch file is private)."""
    mask = os.umask(0o027)
    try:
        new = tmp_path / "new.json"
        write_text_atomically(new, "x")
        assert stat.S_IMODE(new.stat().st_mode) == 0o640
        kept = tmp_path / "kept.json"
        kept.write_text("old")
        kept.chmod(0o604)
        write_text_atomically(kept, "new")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o604 and kept.read_text() == "new"
    finally:
        os.umask(mask)

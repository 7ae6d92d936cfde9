"""Run files are written atomically: a failing write leaves the previous file intact."""

import json
import os

import pytest

from detcore import atomic


def test_write_json_replaces_whole_file(tmp_path):
    p = tmp_path / "run" / "config.json"
    atomic.write_json(p, {"a": 1})
    atomic.write_json(p, {"a": 2, "b": [1, 2]})
    assert json.loads(p.read_text()) == {"a": 2, "b": [1, 2]}
    assert [f.name for f in p.parent.iterdir()] == ["config.json"]  # no temp files left


def test_failed_write_keeps_previous_file_and_no_temp(tmp_path):
    p = tmp_path / "last.pt"
    atomic.write_bytes(p, b"good checkpoint")

    def explode(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic.write_with(p, explode)
    assert p.read_bytes() == b"good checkpoint"
    assert [f.name for f in tmp_path.iterdir()] == ["last.pt"]


def test_nan_is_refused_rather_than_written_as_invalid_json(tmp_path):
    with pytest.raises(ValueError):
        atomic.write_json(tmp_path / "m.json", {"AP": float("nan")})
    assert not (tmp_path / "m.json").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_folder_raises_and_keeps_file(tmp_path):
    p = tmp_path / "ro" / "x.json"
    atomic.write_json(p, {"v": 1})
    os.chmod(p.parent, 0o500)
    try:
        with pytest.raises(PermissionError):
            atomic.write_json(p, {"v": 2})
    finally:
        os.chmod(p.parent, 0o700)
    assert json.loads(p.read_text()) == {"v": 1}


def test_jsonl_reader_ignores_a_torn_last_line(tmp_path):
    p = tmp_path / "events.jsonl"
    atomic.append_jsonl(p, {"type": "step", "loss": 1.5})
    atomic.append_jsonl(p, {"type": "step", "loss": 1.25})
    with open(p, "ab") as f:  # what a SIGKILL mid-write could leave behind
        f.write(b'{"type": "st')
    assert [r["loss"] for r in atomic.read_jsonl(p)] == [1.5, 1.25]
    # a resumed writer appends after the torn fragment: its record must not be glued to it
    atomic.append_jsonl(p, {"type": "status", "status": "running"})
    assert atomic.read_jsonl(p) == [
        {"type": "step", "loss": 1.5}, {"type": "step", "loss": 1.25}, {"type": "status", "status": "running"}]


def test_files_are_readable_by_others_like_any_written_file(tmp_path):
    p = atomic.write_json(tmp_path / "config.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~mask)


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path):
    atomic.write_bytes(tmp_path / "last.pt", b"ok")
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"half")
    assert atomic.remove_stale_temp_files(tmp_path) == 1
    assert [f.name for f in tmp_path.iterdir()] == ["last.pt"]

"""Hostile dataset archives: every trick that would write outside the upload folder, or fill the disk,
is refused with a message naming the archive and the member — and the filesystem proves nothing
escaped (no file outside the target, no half-extracted folder left behind)."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from detcore.data.detect import extract_zip_safely, load_dataset
from detcore.errors import DataError


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def _raw_name(name: str) -> zipfile.ZipInfo:
    """A ZipInfo keeps the name exactly as given (ZipFile.write would strip a leading '/')."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode in external_attr is honoured by unzip/tarfile-like tools
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.fixture
def sandbox(tmp_path):
    """``upload/`` is where extraction may write; everything else under tmp_path must stay as it was."""
    (tmp_path / "upload").mkdir()
    (tmp_path / "outside").mkdir()
    return tmp_path


def _assert_refused(sandbox: Path, archive: Path, match: str, **limits) -> DataError:
    before = _tree(sandbox)
    dest = sandbox / "upload" / "ds"
    with pytest.raises(DataError, match=match) as err:
        extract_zip_safely(archive, dest, **limits)
    assert err.value.file == str(archive)  # the message names the archive the user dropped
    assert _tree(sandbox) == before, "extraction left files behind or wrote outside the target"
    return err.value


GOOD = ("ds/annotations/a.xml", b"<annotation/>")


@pytest.mark.parametrize("evil_name", [
    "../outside/escaped.txt",
    "ds/../../outside/escaped.txt",
    "..\\outside\\escaped.txt",  # Windows separators are separators too
])
def test_path_traversal_is_refused(sandbox, evil_name):
    archive = _zip(sandbox / "evil.zip", [GOOD, (_raw_name(evil_name), b"pwned")])
    err = _assert_refused(sandbox, archive, "outside the target folder")
    assert "escaped.txt" in err.problem
    assert not (sandbox / "outside" / "escaped.txt").exists()


@pytest.mark.parametrize("absolute", ["/tmp/detboard-escaped.txt", "C:/detboard-escaped.txt", "C:\\x\\y.txt"])
def test_absolute_member_paths_are_refused(sandbox, absolute):
    archive = _zip(sandbox / "abs.zip", [GOOD, (_raw_name(absolute), b"pwned")])
    _assert_refused(sandbox, archive, "outside the target folder")
    assert not Path("/tmp/detboard-escaped.txt").exists()


def test_symlink_members_are_refused_before_anything_is_written(sandbox):
    # The classic two-step: a link to a folder outside, then a file written "through" the link.
    archive = _zip(sandbox / "link.zip", [GOOD, (_symlink("ds/images"), str(sandbox / "outside").encode()),
                                          ("ds/images/through-link.png", b"pwned")])
    _assert_refused(sandbox, archive, "symbolic link")
    assert list((sandbox / "outside").iterdir()) == []


def test_too_many_files_is_refused(sandbox):
    archive = _zip(sandbox / "many.zip", [(f"ds/images/{i}.png", b"x") for i in range(6)])
    _assert_refused(sandbox, archive, "more than 5 files and folders", max_files=5)


def test_too_many_bytes_is_refused_from_the_headers(sandbox):
    # 4 MB of zeros deflates to a few KB: a small upload that would inflate past the limit.
    archive = _zip(sandbox / "bomb.zip", [GOOD, ("ds/images/zeros.bin", bytes(4 * 1024 * 1024))])
    assert archive.stat().st_size < 64 * 1024
    _assert_refused(sandbox, archive, "limit", max_bytes=1024 * 1024)


def test_a_member_lying_about_its_size_is_refused_while_streaming(sandbox):
    # Headers say 10 bytes, the data inflates to 64 KiB: the declared-size checks pass, streaming must not.
    archive = _zip(sandbox / "liar.zip", [GOOD, ("ds/images/liar.bin", bytes(64 * 1024))])
    raw = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("ds/images/liar.bin")
    real = (64 * 1024).to_bytes(4, "little")
    fake = (10).to_bytes(4, "little")
    patched = raw.replace(info.CRC.to_bytes(4, "little") + info.compress_size.to_bytes(4, "little") + real,
                          info.CRC.to_bytes(4, "little") + info.compress_size.to_bytes(4, "little") + fake)
    assert patched != raw
    archive.write_bytes(bytes(patched))
    _assert_refused(sandbox, archive, "liar.bin", max_bytes=32 * 1024)


def test_not_a_zip_is_refused_with_a_message(sandbox):
    archive = sandbox / "photo.zip"
    archive.write_bytes(b"\x89PNG\r\n\x1a\n not really a zip")
    _assert_refused(sandbox, archive, "not a readable zip")


def test_a_clean_archive_still_extracts(sandbox):
    archive = _zip(sandbox / "ok.zip", [GOOD, ("ds/images/a.png", b"png-bytes")])
    root = extract_zip_safely(archive, sandbox / "upload" / "ds")
    assert root == sandbox / "upload" / "ds" / "ds"
    assert (root / "images" / "a.png").read_bytes() == b"png-bytes"


def test_load_dataset_on_a_hostile_zip_refuses_and_imports_nothing(tmp_path):
    from detcore import paths

    archive = _zip(tmp_path / "evil.zip", [GOOD, (_raw_name("../../escaped.txt"), b"pwned")])
    with pytest.raises(DataError, match="outside the target folder"):
        load_dataset(archive)
    imported = paths.data_root() / ".imported"
    assert not imported.exists() or list(imported.iterdir()) == []  # no extraction, no staging leftovers
    assert not any(tmp_path.rglob("escaped.txt"))

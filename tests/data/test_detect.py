import os
import stat
import zipfile

import numpy as np
import pytest

from detcore.data.detect import detect_format, extract_zip_safely, load_dataset
from detcore.errors import DataError
from tests.data.builders import voc_object, write_coco, write_image, write_mask, write_voc


def _voc(root):
    return write_voc(root, {"a": [voc_object("cat", (1, 1, 5, 5))], "b": []})


def _pennfudan(root):
    write_image(root / "PNGImages" / "p.png", 8, 8)
    m = np.zeros((8, 8), np.uint8)
    m[1:3, 1:3] = 1
    write_mask(root / "PedMasks" / "p_mask.png", m)
    return root


def _coco(root):
    write_image(root / "images" / "a.png")
    write_coco(root / "annotations" / "train.json", {"images": [{"id": 1, "file_name": "a.png"}], "annotations": [],
                                                     "categories": [{"id": 1, "name": "cat"}]})
    return root


def _zip(path, members: dict[str, bytes], symlinks=()):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def _zip_folder(path, folder, prefix=""):
    members = {prefix + str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    return _zip(path, members)


@pytest.mark.parametrize("make,fmt", [(_voc, "voc"), (_pennfudan, "pennfudan"), (_coco, "coco")])
def test_detects_and_loads_each_format(tmp_path, make, fmt):
    root = make(tmp_path / "ds")
    assert detect_format(root) == fmt
    parsed = load_dataset(root)
    assert parsed.format == fmt and parsed.num_images >= 1


def test_single_nested_folder_is_descended(tmp_path):
    _voc(tmp_path / "VOCdevkit" / "VOC2007")
    assert load_dataset(tmp_path / "VOCdevkit").num_images == 2


def test_coco_json_file_and_ambiguous_coco_folder(tmp_path):
    root = _coco(tmp_path / "ds")
    assert load_dataset(root / "annotations" / "train.json").num_images == 1
    (root / "annotations" / "val.json").write_text((root / "annotations" / "train.json").read_text())
    with pytest.raises(DataError, match="several COCO files"):
        load_dataset(root)


def test_unknown_folder_and_missing_path(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(DataError, match="found no dataset in a known format"):
        load_dataset(tmp_path / "x")
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "nope")


def test_explicit_format_must_match(tmp_path):
    root = _voc(tmp_path / "ds")
    with pytest.raises(DataError, match="pennfudan"):
        load_dataset(root, "pennfudan")


def test_nothing_usable_names_the_file_and_problem(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [voc_object("cat", (1, 1, 5, 5))]})
    os.remove(root / "images" / "a.png")
    with pytest.raises(DataError) as e:
        load_dataset(root)
    assert e.value.file.endswith("a.xml") and "no usable images" in e.value.problem


def test_zip_with_one_top_folder_is_extracted_and_read(tmp_path):
    src = _voc(tmp_path / "src")
    zip_path = _zip_folder(tmp_path / "mask.zip", src, prefix="facemask/")
    assert detect_format(zip_path) == "voc"
    parsed = load_dataset(zip_path)
    assert parsed.num_images == 2 and parsed.root.name == "facemask"
    assert str(parsed.root).startswith(os.environ["DETBOARD_DATA"])
    assert load_dataset(zip_path).root == parsed.root  # extracted once, reused


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt", "C:/evil.txt", "..\\evil.txt"])
def test_zip_member_escaping_the_target_is_refused(tmp_path, name):
    zip_path = _zip(tmp_path / "bad.zip", {"ok.txt": b"1", name: b"x"})
    with pytest.raises(DataError, match="outside the target") as e:
        extract_zip_safely(zip_path, tmp_path / "out")
    assert repr(name) in e.value.problem
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()
    assert list(tmp_path.glob(".out.*")) == []  # staging folder cleaned up


def test_zip_symlink_member_is_refused(tmp_path):
    zip_path = _zip(tmp_path / "bad.zip", {"ok.txt": b"1"}, symlinks=["link"])
    with pytest.raises(DataError, match="'link' is a symbolic link"):
        extract_zip_safely(zip_path, tmp_path / "out")


def test_zip_file_count_and_size_limits(tmp_path):
    many = _zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(5)})
    with pytest.raises(DataError, match="more than 4 files and folders"):
        extract_zip_safely(many, tmp_path / "o1", max_files=4)
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * 100_000)  # compresses to ~100 bytes: a tiny zip bomb
    with pytest.raises(DataError, match="'zeros.bin'.*limit"):
        extract_zip_safely(big, tmp_path / "o2", max_bytes=50_000)
    assert extract_zip_safely(big, tmp_path / "o3", max_bytes=100_000) == tmp_path / "o3"


def test_zip_whose_header_lies_about_size_is_refused_while_streaming(tmp_path):
    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.bin", b"\0" * 100_000)
    raw = bytearray(path.read_bytes())
    # Patch the declared uncompressed size (local header and central directory) down to 10 bytes.
    local = raw.find(b"PK\x03\x04")
    raw[local + 22:local + 26] = (10).to_bytes(4, "little")
    central = raw.find(b"PK\x01\x02")
    raw[central + 24:central + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="'data.bin'"):
        extract_zip_safely(path, tmp_path / "out", max_bytes=1000)
    assert not (tmp_path / "out").exists()


def test_not_a_zip(tmp_path):
    path = tmp_path / "x.zip"
    path.write_bytes(b"hello")
    with pytest.raises(DataError, match="not a readable zip"):
        load_dataset(path)


def test_flat_zip_and_non_empty_target(tmp_path):
    src = _pennfudan(tmp_path / "src")
    zip_path = _zip_folder(tmp_path / "penn.zip", src)
    assert extract_zip_safely(zip_path, tmp_path / "out") == tmp_path / "out"
    assert load_dataset(zip_path).format == "pennfudan"
    with pytest.raises(DataError, match="not empty"):
        extract_zip_safely(zip_path, tmp_path / "out")


def test_macos_metadata_folder_is_skipped(tmp_path):
    src = _voc(tmp_path / "src")
    members = {"facemask/" + str(p.relative_to(src)): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    members["__MACOSX/facemask/._a.xml"] = b"\0\5\26\7"
    root = extract_zip_safely(_zip(tmp_path / "mac.zip", members), tmp_path / "out")
    assert root == tmp_path / "out" / "facemask" and not (tmp_path / "out" / "__MACOSX").exists()


def test_flat_labelimg_folder_is_detected_as_voc(tmp_path):
    write_image(tmp_path / "flat" / "a.png")
    (tmp_path / "flat" / "a.xml").write_text("<annotation><filename>a.png</filename></annotation>")
    assert detect_format(tmp_path / "flat") == "voc"

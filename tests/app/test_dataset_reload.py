"""The pages' cached dataset reader notices a dataset changed on disk, in nested layouts too."""

import os

from tests.data.builders import write_yolo_part, write_yolo_yaml
from ui.loaders import folder_stamp, load_parsed_dataset


def _boxes(parsed) -> int:
    return sum(len(s.boxes) for s in parsed.samples)


def test_a_label_file_replaced_two_levels_down_is_read_again(tmp_path):
    """YOLO keeps its labels in labels/train/: replacing one there must reach the Data page without a
    restart (a stamp of the top folder and its direct children never saw it)."""
    root = tmp_path / "ds"
    write_yolo_yaml(root, ["person"], path=".", train="images/train", val="images/train")
    write_yolo_part(root / "images" / "train", root / "labels" / "train", {"a": ["0 0.5 0.5 0.5 0.5"]})
    assert _boxes(load_parsed_dataset(root)) == 1
    before = folder_stamp(root)

    label = root / "labels" / "train" / "a.txt"
    label.unlink()  # as an editor or an export tool replaces a file
    label.write_text("0 0.5 0.5 0.5 0.5\n0 0.2 0.2 0.1 0.1\n", encoding="utf-8")
    later = before + 10  # the file system's clock may not have ticked between the two writes
    os.utime(label.parent, (later, later))
    assert folder_stamp(root) == later
    assert _boxes(load_parsed_dataset(root)) == 2


def test_the_stamp_of_a_missing_path_or_a_file(tmp_path):
    assert folder_stamp(tmp_path / "missing") == 0.0
    f = tmp_path / "data.zip"
    f.write_bytes(b"x")
    assert folder_stamp(f) == f.stat().st_mtime

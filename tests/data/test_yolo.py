"""YOLO datasets as Ultralytics and Roboflow export them: exact boxes, split folders, every problem reported."""

import json
import zipfile

import numpy as np
import pytest

from detcore.cli import main
from detcore.data.detect import detect_format, load_dataset
from detcore.data.splits import make_split
from detcore.data.yolo import load_yolo
from detcore.errors import DataError
from tests.data.builders import write_image, write_yolo_part, write_yolo_yaml


def _kinds(parsed):
    return sorted((p.kind, p.image_id) for p in parsed.problems)


def _ultralytics(root):
    write_yolo_yaml(root, {0: "person", 1: "car"}, path=".", train="images/train", val="images/val")
    write_yolo_part(root / "images" / "train", root / "labels" / "train",
                    {"a": ["0 0.5 0.5 0.5 0.5", "1 0.25 0.25 0.1 0.2"], "b": ["1 0.5 0.5 1 1"]})
    write_yolo_part(root / "images" / "val", root / "labels" / "val", {"a": ["0 0.75 0.5 0.5 1"]})
    return root


def _roboflow(root):
    write_yolo_yaml(root, ["head", "helmet"], train="../train/images", val="../valid/images", test="../test/images",
                    nc=2)
    (root / "README.roboflow.txt").write_text("exported from roboflow\n")
    for part, items in {"train": {"t1": ["0 0.5 0.5 0.2 0.2"], "t2": ["1 0.5 0.5 0.2 0.2"], "t3": []},
                        "valid": {"v1": ["1 0.5 0.5 0.4 0.4"]}, "test": {"s1": ["0 0.5 0.5 0.4 0.4"]}}.items():
        write_yolo_part(root / part / "images", root / part / "labels", items, ext=".jpg")
    return root


def test_ultralytics_layout_reads_exact_boxes_and_unique_ids(tmp_path):
    parsed = load_dataset(_ultralytics(tmp_path / "ds"))
    assert parsed.format == "yolo" and parsed.meta["layout"] == "ultralytics"
    assert parsed.classes == ["person", "car"]
    by_id = parsed.sample_by_id()
    assert sorted(by_id) == ["train/a", "train/b", "val/a"]  # the two a.png stay two images
    a = by_id["train/a"]
    assert (a.width, a.height) == (40, 30)
    np.testing.assert_allclose(a.boxes, [[10, 7.5, 30, 22.5], [8, 4.5, 12, 10.5]], atol=1e-5)
    assert a.labels.tolist() == [0, 1]
    np.testing.assert_allclose(by_id["train/b"].boxes, [[0, 0, 40, 30]])
    np.testing.assert_allclose(by_id["val/a"].boxes, [[20, 0, 40, 30]])
    assert parsed.problems == []


def test_split_folders_are_the_imagesets_split(tmp_path):
    parsed = load_dataset(_ultralytics(tmp_path / "ds"))
    ids = [s.image_id for s in parsed.samples]
    split = make_split(ids, "imagesets", given=parsed.meta["given_split"])
    assert (split.train, split.val, split.test) == (["train/a", "train/b"], [], ["val/a"])

    rf = load_dataset(_roboflow(tmp_path / "rf"))
    assert rf.meta["layout"] == "roboflow" and rf.classes == ["head", "helmet"]
    split = make_split([s.image_id for s in rf.samples], "imagesets", given=rf.meta["given_split"])
    assert (split.train, split.val, split.test) == (["train/t1", "train/t2", "train/t3"], ["valid/v1"], ["test/s1"])
    assert ("no_objects", "train/t3") in _kinds(rf)  # an empty label file: a negative image, kept


def test_quality_report_of_a_plain_folder(tmp_path):
    root = tmp_path / "plain"
    (root).mkdir()
    (root / "classes.txt").write_text("cat\ndog\n")
    lines = {
        "ok": ["0 0.5 0.5 0.5 0.5"],
        "outside": ["1 0.9 0.5 0.4 0.2"],            # right edge at 1.1: clipped
        "pixels": ["0 20 15 10 10"],                 # pixel values where normalised ones belong
        "badclass": ["2 0.5 0.5 0.2 0.2", "0 0.5 0.5 0.2 0.2"],
        "malformed": ["0 0.5 0.5 0.2", "0 a b c d", "0 0.5 0.5 0.2 0.2 0.9"],
        "polygon": ["1 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5"],
        "empty": [],
        "nolabel": None,
    }
    write_yolo_part(root / "images", root / "labels", lines)
    (root / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")       # label file without image
    write_image(root / "images" / "ok.jpg")                                 # a second image for ok.txt
    parsed = load_dataset(root)
    assert parsed.format == "yolo" and parsed.meta["layout"] == "plain" and "given_split" not in parsed.meta
    assert _kinds(parsed) == sorted([
        ("box_clipped", "outside"), ("degenerate_box", "pixels"), ("unknown_class", "badclass"),
        ("malformed_line", "malformed"), ("malformed_line", "malformed"), ("malformed_line", "malformed"),
        ("no_objects", "malformed"), ("no_objects", "pixels"), ("no_objects", "empty"), ("no_objects", "nolabel"),
        ("missing_image", "ghost"), ("duplicate_image", "ok")])
    by_id = parsed.sample_by_id()
    assert by_id["ok"].image_path.name == "ok.jpg"  # the first in name order keeps the label file
    np.testing.assert_allclose(by_id["outside"].boxes, [[28, 12, 40, 18]], atol=1e-5)
    assert by_id["badclass"].labels.tolist() == [0]
    np.testing.assert_allclose(by_id["polygon"].boxes, [[4, 3, 20, 15]], atol=1e-4)
    assert by_id["polygon"].segmentations == [[[4.0, 3.0, 20.0, 3.0, 20.0, 15.0, 4.0, 15.0]]]
    assert by_id["nolabel"].num_objects == 0 and by_id["empty"].num_objects == 0
    detail = {p.image_id: p.detail for p in parsed.problems if p.kind in ("degenerate_box", "unknown_class")}
    assert "pixel coordinates" in detail["pixels"] and "line 1" in detail["badclass"]
    assert "classes.txt" in detail["badclass"]


def test_class_names_from_yaml_are_checked(tmp_path):
    root = tmp_path / "ds"
    write_yolo_part(root / "images", root / "labels", {"a": ["0 0.5 0.5 0.2 0.2"]})
    write_yolo_yaml(root, ["a", "b"], nc=3)
    with pytest.raises(DataError, match=r"data\.yaml: nc is 3 but 'names' lists 2"):
        load_yolo(root)
    write_yolo_yaml(root, {0: "a", 2: "b"})
    with pytest.raises(DataError, match="without gaps"):
        load_yolo(root)
    (root / "data.yaml").write_text("names: [a, b\n")
    with pytest.raises(DataError, match="not valid YAML"):
        load_yolo(root)
    (root / "data.yaml").unlink()
    with pytest.raises(DataError, match="without class names"):
        load_dataset(root)


def test_labels_folder_of_txt_is_yolo_and_of_voc_xml_is_voc(tmp_path):
    yolo = tmp_path / "y"
    write_yolo_part(yolo / "images", yolo / "labels", {"a": ["0 0.5 0.5 0.2 0.2"]})
    (yolo / "classes.txt").write_text("cat\n")
    assert detect_format(yolo) == "yolo"
    voc = tmp_path / "v"
    write_image(voc / "images" / "a.png")
    (voc / "labels").mkdir()
    (voc / "labels" / "a.xml").write_text("<annotation><filename>a.png</filename><object><name>cat</name><bndbox>"
                                          "<xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox>"
                                          "</object></annotation>")
    (voc / "classes.txt").write_text("cat\n")
    assert detect_format(voc) == "voc"


def _zip_folder(path, folder, prefix="export/"):
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(folder).as_posix())
    return path


def test_zip_of_a_roboflow_export(tmp_path):
    zip_path = _zip_folder(tmp_path / "rf.zip", _roboflow(tmp_path / "rf"))
    assert detect_format(zip_path) == "yolo"
    parsed = load_dataset(zip_path)
    assert parsed.format == "yolo" and parsed.num_images == 5


def test_inspect_and_train_cli_accept_yolo(tmp_path, capsys):
    root = _roboflow(tmp_path / "rf")
    assert main(["inspect", str(root), "--format", "yolo", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "yolo" and out["layout"] == "roboflow"
    assert out["given_split"] == {"source": "roboflow split folders", "train": 3, "val": 1, "test": 1}
    assert main(["inspect", str(root)]) == 0
    assert "train with --split-method imagesets" in capsys.readouterr().out


def test_a_split_folder_without_labels_is_negatives(tmp_path):
    root = _ultralytics(tmp_path / "ds")
    write_image(root / "images" / "test" / "x.png")  # images/test exists, labels/test does not
    parsed = load_dataset(root)
    assert parsed.sample_by_id()["test/x"].num_objects == 0
    assert ("no_objects", "test/x") in _kinds(parsed)
    assert parsed.meta["given_split"]["parts"]["test"] == ["test/x"]

"""`python -m detcore convert`: round trips keep images, boxes (within rounding), classes and masks
where the target holds them; problems found while reading are reported, never silently fixed; the
writers never leave the output folder."""

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detcore.cli import main
from detcore.data.convert import REPORT_FILE, convert_dataset, output_names, zip_bytes
from detcore.data.detect import load_dataset
from detcore.errors import DataError
from detcore.structures import Sample
from tests.data.builders import SHARED_DATA, voc_object, write_coco, write_image, write_voc, write_yolo_part, \
    write_yolo_yaml

FACEMASK = SHARED_DATA / "facemask-sample"
PENNFUDAN = SHARED_DATA / "PennFudanPed-sample"
needs_shared = pytest.mark.skipif(not FACEMASK.is_dir() or not PENNFUDAN.is_dir(), reason="shared samples absent")


def _by_name(parsed):
    return {s.image_path.name: s for s in parsed.samples}


def _same_annotations(a, b, *, atol):
    assert a.classes == b.classes
    sa, sb = _by_name(a), _by_name(b)
    assert sorted(sa) == sorted(sb)
    for name, s in sa.items():
        t = sb[name]
        assert (s.width, s.height) == (t.width, t.height), name
        np.testing.assert_allclose(s.boxes, t.boxes, atol=atol, err_msg=name)
        assert s.labels.tolist() == t.labels.tolist(), name


def _convert(src, to, out, *extra):
    assert main(["convert", str(src), "--to", to, "--out", str(out), "--json", *extra]) == 0


def _problem_voc(root):
    """A VOC folder with what real folders have: a box past the image edge, a negative, an orphan image."""
    write_voc(root, {"a": [voc_object("cat", (1, 2, 30, 20)), voc_object("dog", (5, 5, 45, 9))],
                     "b": [voc_object("dog", (3.5, 3, 9.25, 9), difficult=1)], "c": []})
    write_image(root / "images" / "orphan.png")
    return root


def test_voc_to_coco_to_voc_and_yolo_round_trip(tmp_path, capsys):
    src = _problem_voc(tmp_path / "voc")
    original = load_dataset(src, verify_images=True)
    _convert(src, "coco", tmp_path / "coco")
    summary = json.loads(capsys.readouterr().out)
    # The problems of the source are reported by convert, and the output holds what was read.
    assert summary["problem_counts"] == {"box_clipped": 1, "missing_annotation": 1, "no_objects": 1}
    assert any("difficult" in n for n in summary["notes"])
    report = (tmp_path / "coco" / REPORT_FILE).read_text()
    assert "box_clipped" in report and "orphan.png" in report

    coco = load_dataset(tmp_path / "coco", verify_images=True)
    assert coco.format == "coco"
    _same_annotations(original, coco, atol=1e-3)
    _convert(tmp_path / "coco", "voc", tmp_path / "voc2")
    back = load_dataset(tmp_path / "voc2", verify_images=True)
    _same_annotations(original, back, atol=1e-3)
    assert sorted(s.image_id for s in back.samples) == ["a", "b", "c"]
    # What was fixed while reading the first time is not there to be found again; the negative still is.
    assert sorted(p.kind for p in back.problems) == ["no_objects"]

    _convert(src, "yolo", tmp_path / "yolo")
    yolo = load_dataset(tmp_path / "yolo", verify_images=True)
    assert yolo.format == "yolo"
    _same_annotations(original, yolo, atol=1e-3)


@needs_shared
def test_shared_facemask_sample_round_trips(tmp_path):
    original = load_dataset(FACEMASK, verify_images=True)
    for first, second in (("coco", "voc"), ("yolo", "voc"), ("voc", "coco")):
        _convert(FACEMASK, first, tmp_path / first)
        _convert(tmp_path / first, second, tmp_path / f"{first}-{second}")
        for folder in (tmp_path / first, tmp_path / f"{first}-{second}"):
            _same_annotations(original, load_dataset(folder, verify_images=True), atol=1e-3)
    kinds = sorted(p.kind for p in original.problems)
    assert kinds == ["box_clipped", "box_clipped"]  # the real set's xmax=401 on 400-px images
    assert (tmp_path / "coco" / REPORT_FILE).read_text().count("box_clipped:") == 3  # count line + two problems


@needs_shared
def test_pennfudan_masks_become_coco_rle_and_other_targets_say_they_cannot(tmp_path, capsys):
    original = load_dataset(PENNFUDAN, verify_images=True)
    _convert(PENNFUDAN, "coco", tmp_path / "coco")
    assert not [n for n in json.loads(capsys.readouterr().out)["notes"] if "mask" in n]
    coco = load_dataset(tmp_path / "coco", verify_images=True)
    _same_annotations(original, coco, atol=1e-3)
    from pycocotools import mask as mask_utils

    for s in original.samples:
        t = _by_name(coco)[s.image_path.name]
        ids = np.asarray(Image.open(s.mask_path))
        for j, mask_id in enumerate(s.mask_ids):
            rle = t.segmentations[j]  # compressed RLE, exact: no polygon approximation
            assert isinstance(rle["counts"], str) and rle["size"] == [t.height, t.width]
            decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
            np.testing.assert_array_equal(decoded.astype(bool), ids == mask_id)
    for to in ("voc", "yolo"):
        _convert(PENNFUDAN, to, tmp_path / to)
        notes = json.loads(capsys.readouterr().out)["notes"]
        assert any(n.startswith("masks not written") for n in notes), notes
        _same_annotations(original, load_dataset(tmp_path / to, verify_images=True), atol=1e-3)


def _roboflow(root):
    write_yolo_yaml(root, ["head", "helmet"], train="../train/images", val="../valid/images", test="../test/images")
    for part, stems in {"train": ["a", "b"], "valid": ["a"], "test": ["c"]}.items():
        write_yolo_part(root / part / "images", root / part / "labels",
                        {s: ["0 0.5 0.5 0.25 0.5", "1 0.2 0.3 0.1 0.2"] for s in stems}, size=(64, 48))
    return root


def _split(parsed):
    from detcore.data.splits import make_split

    s = make_split([x.image_id for x in parsed.samples], "imagesets", given=parsed.meta["given_split"])
    return [sorted(_by_id_name(parsed)[i] for i in part) for part in (s.train, s.val, s.test)]


def _by_id_name(parsed):
    return {s.image_id: s.image_path.stem for s in parsed.samples}


def test_yolo_split_folders_survive_voc_and_back(tmp_path):
    src = load_dataset(_roboflow(tmp_path / "rf"))
    _convert(tmp_path / "rf", "voc", tmp_path / "voc")
    voc = load_dataset(tmp_path / "voc")
    # train/a and valid/a share a file name: the flat VOC folder names them by their ids.
    assert sorted(s.image_path.name for s in voc.samples) == ["b.png", "c.png", "train_a.png", "valid_a.png"]
    assert _split(voc) == [["b", "train_a"], ["valid_a"], ["c"]]
    _convert(tmp_path / "voc", "yolo", tmp_path / "yolo")
    yolo = load_dataset(tmp_path / "yolo")
    assert yolo.meta["layout"] == "ultralytics"
    assert _split(yolo) == [["b", "train_a"], ["valid_a"], ["c"]]
    for parsed in (voc, yolo):
        boxes = sorted(np.round(np.concatenate([s.boxes for s in parsed.samples]), 3).tolist())
        assert boxes == sorted(np.round(np.concatenate([s.boxes for s in src.samples]), 3).tolist())


def test_coco_problems_are_reported_and_unsafe_files_never_copied(tmp_path, capsys):
    root = tmp_path / "coco"
    write_image(root / "images" / "a.png")
    secret = tmp_path / "secret.png"
    write_image(secret)
    write_coco(root / "annotations" / "instances.json", {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30},
                   {"id": 2, "file_name": "../../secret.png", "width": 40, "height": 30},
                   {"id": 3, "file_name": "missing.png", "width": 40, "height": 30}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 1, 10, 10], "iscrowd": 0, "area": 100},
                        {"id": 2, "image_id": 1, "category_id": 9, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 7, "name": "cat"}, {"id": 9, "name": "dog"}]})
    _convert(root, "coco", tmp_path / "out")
    summary = json.loads(capsys.readouterr().out)
    assert summary["problem_counts"] == {"missing_image": 1, "unsafe_path": 1}
    written = [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert sorted(written) == ["a.png", REPORT_FILE, "instances.json"]
    out = json.loads((tmp_path / "out" / "annotations" / "instances.json").read_text())
    assert [c["id"] for c in out["categories"]] == [7, 9]  # the source's category ids are kept
    assert [a["category_id"] for a in out["annotations"]] == [7, 9]


def test_output_names_are_flat_safe_and_unique():
    samples = [Sample(image_id=i, image_path=Path(p), width=1, height=1) for i, p in [
        ("train/a", "/d/train/images/a.jpg"), ("val/a", "/d/val/images/a.jpg"), ("x", "/d/images/A.png"),
        ("../../etc/passwd", "/d/images/..hidden name!.png"), ("q", "/d/images/b.jpg"), ("r", "/d/images/b.png")]]
    names = output_names(samples)
    assert names[:2] == ["train_a.jpg", "val_a.jpg"]
    assert all("/" not in n and not n.startswith(".") and n.strip("._") for n in names)
    stems = [n.rsplit(".", 1)[0].lower() for n in names]
    assert len(set(stems)) == len(stems)  # b.jpg and b.png cannot share b.xml / b.txt


def test_out_folder_rules(tmp_path, capsys):
    src = _problem_voc(tmp_path / "voc")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert main(["convert", str(src), "--to", "yolo", "--out", str(busy)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {busy}: is not empty")
    assert main(["convert", str(src), "--to", "yolo", "--out", str(busy), "--force"]) == 2
    assert "did not write it" in capsys.readouterr().err and (busy / "keep.txt").read_text() == "mine"
    assert main(["convert", str(src), "--to", "yolo", "--out", str(src / "inside")]) == 2
    assert "inside the dataset" in capsys.readouterr().err and not (src / "inside").exists()
    _convert(src, "yolo", tmp_path / "out")
    _convert(src, "coco", tmp_path / "out", "--force")  # an earlier conversion is replaced whole
    assert load_dataset(tmp_path / "out").format == "coco" and not (tmp_path / "out" / "labels").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_zip_download_reads_back_and_is_bounded(tmp_path):
    parsed = load_dataset(_problem_voc(tmp_path / "voc"), verify_images=True)
    data, conv = zip_bytes(parsed, "yolo", max_bytes=10 * 2**20)
    assert conv.images == 3
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert all(n.startswith("voc-yolo/") for n in names) and "voc-yolo/data.yaml" in names
    (tmp_path / "dl.zip").write_bytes(data)
    back = load_dataset(tmp_path / "dl.zip", verify_images=True)
    _same_annotations(parsed, back, atol=1e-3)
    with pytest.raises(DataError, match="above the 0 MB limit for a download"):
        zip_bytes(parsed, "coco", max_bytes=1000)


def test_an_image_gone_since_reading_is_a_one_line_error(tmp_path):
    parsed = load_dataset(_problem_voc(tmp_path / "voc"), verify_images=True)
    (tmp_path / "voc" / "images" / "b.png").unlink()
    with pytest.raises(DataError, match="b.png"):
        zip_bytes(parsed, "coco", max_bytes=10 * 2**20)
    with pytest.raises(DataError, match="cannot write the converted dataset"):
        convert_dataset(parsed, "voc", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

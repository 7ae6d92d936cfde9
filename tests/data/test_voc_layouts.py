"""VOC folders whose annotation folder has another name, found by what the files hold; ImageSets kept."""

import zipfile

import numpy as np
import pytest

from detcore.data.detect import detect_format, load_dataset
from detcore.data.splits import make_split
from detcore.data.voc import load_voc_folder
from detcore.errors import DataError
from tests.data.builders import voc_object, voc_xml, write_image


def _voc_with(root, ann_name, img_name="images"):
    for stem, objects in {"a": [voc_object("cat", (1, 2, 30, 20))], "b": [voc_object("dog", (3, 3, 41, 9))],
                          "c": []}.items():
        write_image(root / img_name / f"{stem}.png")
        (root / ann_name).mkdir(parents=True, exist_ok=True)
        (root / ann_name / f"{stem}.xml").write_text(voc_xml(f"{stem}.png", (40, 30), objects), encoding="utf-8")
    return root


@pytest.mark.parametrize("ann_name", ["annots", "labels", "xml", "Annotations", "my_voc_files"])
def test_annotation_folder_found_by_content(tmp_path, ann_name):
    root = _voc_with(tmp_path / "ds", ann_name)
    assert detect_format(root) == "voc"
    parsed = load_dataset(root)
    assert parsed.format == "voc" and parsed.num_images == 3
    assert parsed.classes == ["cat", "dog"]
    by_id = parsed.sample_by_id()
    np.testing.assert_array_equal(by_id["a"].boxes, [[1, 2, 30, 20]])
    # The same quality report as the Face Mask layout: the box past the 40-px edge, the negative.
    assert sorted((p.kind, p.image_id) for p in parsed.problems) == [("box_clipped", "b"), ("no_objects", "c")]
    expected = "facemask" if ann_name == "Annotations" else f"images+{ann_name}"
    assert parsed.meta["layout"] == expected


def test_folders_of_other_xml_are_not_annotations(tmp_path):
    root = _voc_with(tmp_path / "ds", "xml")
    (root / "metadata").mkdir()
    (root / "metadata" / "a.xml").write_text("<?xml version='1.0'?><!-- <annotation> --><config><x/></config>")
    assert load_dataset(root).meta["layout"] == "images+xml"
    only_other = tmp_path / "other"
    write_image(only_other / "images" / "a.png")
    (only_other / "meta").mkdir()
    (only_other / "meta" / "a.xml").write_text("<?xml version='1.0'?><config/>")
    with pytest.raises(DataError, match="found no dataset"):
        load_dataset(only_other)


def test_preferred_annotation_folder_name_wins(tmp_path):
    root = _voc_with(tmp_path / "ds", "annots")
    (root / "backup").mkdir()
    (root / "backup" / "a.xml").write_text(voc_xml("a.png", (40, 30), []))
    assert load_dataset(root).meta["annotation_dir"].endswith("annots")


def test_imagesets_are_the_given_split_of_any_layout(tmp_path):
    root = _voc_with(tmp_path / "ds", "annots")
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("a\nc\n")
    (main / "val.txt").write_text("b\n")
    parsed = load_dataset(root)
    assert parsed.meta["given_split"] == {"source": "ImageSets/Main", "parts": {"train": ["a", "c"], "val": ["b"]}}
    split = make_split([s.image_id for s in parsed.samples], "imagesets", given=parsed.meta["given_split"])
    assert (split.train, split.val, split.test) == (["a", "c"], [], ["b"])


def test_imagesets_without_a_given_split_says_so(tmp_path):
    parsed = load_voc_folder(_voc_with(tmp_path / "ds", "annots"))
    assert "given_split" not in parsed.meta
    with pytest.raises(DataError, match="gives no split"):
        make_split([s.image_id for s in parsed.samples], "imagesets", root=parsed.root,
                   given=parsed.meta.get("given_split"))


def test_overlapping_given_parts_are_refused(tmp_path):
    given = {"source": "ImageSets/Main", "parts": {"train": ["a", "b"], "test": ["b"]}}
    with pytest.raises(DataError, match="more than one part"):
        make_split(["a", "b"], "imagesets", given=given)


def test_zip_with_annots_folder_is_voc(tmp_path):
    root = _voc_with(tmp_path / "ds", "annots")
    zip_path = tmp_path / "ds.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, "ds/" + p.relative_to(root).as_posix())
    assert detect_format(zip_path) == "voc"
    assert load_dataset(zip_path).num_images == 3

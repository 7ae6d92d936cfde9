import os
import stat

import numpy as np
import pytest

from detcore.data import voc
from detcore.data.voc import load_voc_folder, parse_voc_xml
from detcore.errors import DataError
from tests.data.builders import SHARED_DATA, voc_object, voc_xml, write_image, write_voc


def kinds(parsed):
    return [p.kind for p in parsed.problems]


def test_reads_boxes_labels_flags_and_size_exactly(tmp_path):
    root = write_voc(tmp_path / "ds", {
        "b": [voc_object("without_mask", (1, 2, 11, 12), difficult=1)],
        "a": [voc_object("with_mask", (3.5, 4, 20, 25), truncated=1), voc_object("mask_weared_incorrect", (5, 5, 9, 9))],
    })
    parsed = load_voc_folder(root)
    assert parsed.format == "voc" and parsed.meta["layout"] == "facemask"
    assert parsed.classes == ["mask_weared_incorrect", "with_mask", "without_mask"]  # sorted unique names
    assert [s.image_id for s in parsed.samples] == ["a", "b"]
    a, b = parsed.samples
    np.testing.assert_array_equal(a.boxes, np.array([[3.5, 4, 20, 25], [5, 5, 9, 9]], np.float32))  # no +-1
    assert a.labels.tolist() == [1, 0] and a.truncated.tolist() == [True, False]
    assert b.difficult.tolist() == [True] and (a.width, a.height) == (40, 30)
    assert a.image_path == root / "images" / "a.png" and a.annotation_path == root / "annotations" / "a.xml"
    assert parsed.problems == []


def test_box_outside_image_is_clipped_and_reported(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [voc_object("x", (30, -2, 41, 20))]}, size=(40, 30))
    parsed = load_voc_folder(root)
    assert parsed.samples[0].boxes.tolist() == [[30, 0, 40, 20]]
    (p,) = parsed.problems
    assert p.kind == "box_clipped" and p.file.endswith("a.xml") and "41" in p.detail


def test_degenerate_box_is_dropped_and_reported(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [voc_object("x", (10, 10, 10, 20)), voc_object("x", (45, 5, 50, 9)),
                                             voc_object("x", (1, 1, 5, 5))]}, size=(40, 30))
    parsed = load_voc_folder(root)
    assert parsed.samples[0].boxes.tolist() == [[1, 1, 5, 5]]
    assert kinds(parsed).count("degenerate_box") == 2


def test_non_numeric_coordinates_and_missing_bndbox_drop_only_that_object(tmp_path):
    bad = "<object><name>x</name><bndbox><xmin>a</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
    nobox = "<object><name>x</name></object>"
    half = "<object><name>x</name><bndbox><xmin>1</xmin><ymin>1</ymin></bndbox></object>"
    root = write_voc(tmp_path / "ds", {"a": [bad, nobox, half, voc_object("x", (2, 2, 8, 8))]})
    parsed = load_voc_folder(root)
    assert parsed.samples[0].boxes.tolist() == [[2, 2, 8, 8]]
    assert sorted(kinds(parsed)) == ["bad_coordinates", "missing_bndbox", "missing_bndbox"]


def test_malformed_xml_is_recovered_leniently_and_reported(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [], "b": [voc_object("x", (1, 1, 5, 5))]})
    # an unescaped '&' and a missing closing tag: ElementTree refuses, BeautifulSoup recovers the object
    (root / "annotations" / "a.xml").write_text(
        "<annotation><filename>a.png</filename><size><width>40</width><height>30</height></size>"
        "<object><name>x & y</name><bndbox><xmin>3</xmin><ymin>4</ymin><xmax>9</xmax><ymax>10</ymax></bndbox></object>",
        encoding="utf-8")
    parsed = load_voc_folder(root)
    a = parsed.sample_by_id()["a"]
    assert a.boxes.tolist() == [[3, 4, 9, 10]] and parsed.classes[a.labels[0]] == "x & y"
    (p,) = [p for p in parsed.problems if p.kind == "malformed_xml"]
    assert p.file.endswith("a.xml") and "recovered 1 object" in p.detail


def test_unrecoverable_xml_is_dropped_and_the_rest_loads(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [voc_object("x", (1, 1, 5, 5))], "b": [voc_object("x", (1, 1, 5, 5))]})
    (root / "annotations" / "b.xml").write_bytes(b"\x00\x01 this is not xml <<<")
    parsed = load_voc_folder(root)
    assert [s.image_id for s in parsed.samples] == ["a"]
    assert "malformed_xml" in kinds(parsed)
    assert "missing_annotation" in kinds(parsed)  # b.png is now an orphan


@pytest.mark.parametrize("payload", [
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    b"<annotation><filename>&lol2;</filename></annotation>",
    b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b"<annotation><filename>&xxe;</filename></annotation>",
])
def test_entity_declarations_are_refused_not_expanded(payload):
    record = parse_voc_xml(payload)
    assert record["ok"] is False and record["problems"][0][0] == "unsafe_xml"
    assert record["filename"] is None


def test_utf16_encoded_entity_declaration_is_refused_too():
    payload = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY x "y">]><annotation/>'.encode("utf-16")
    assert parse_voc_xml(payload)["problems"][0][0] == "unsafe_xml"


def test_wrong_filename_falls_back_to_same_stem_image(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [voc_object("x", (1, 1, 5, 5))]})
    (root / "annotations" / "a.xml").write_text(voc_xml("a.jpg", (40, 30), [voc_object("x", (1, 1, 5, 5))]))
    parsed = load_voc_folder(root)
    assert parsed.samples[0].image_path.name == "a.png"
    (p,) = parsed.problems
    assert p.kind == "filename_mismatch" and "'a.jpg'" in p.detail


def test_orphans_on_both_sides_are_reported(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [voc_object("x", (1, 1, 5, 5))], "b": [voc_object("x", (1, 1, 5, 5))]})
    os.remove(root / "images" / "b.png")
    write_image(root / "images" / "c.png")
    parsed = load_voc_folder(root)
    assert [s.image_id for s in parsed.samples] == ["a"]
    by_kind = {p.kind: p for p in parsed.problems}
    assert by_kind["missing_image"].file.endswith("b.xml")
    assert by_kind["missing_annotation"].file.endswith("c.png")


def test_image_without_objects_is_kept_as_a_negative(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [], "b": [voc_object("x", (1, 1, 5, 5))]})
    parsed = load_voc_folder(root)
    assert parsed.num_images == 2 and parsed.sample_by_id()["a"].num_objects == 0
    assert kinds(parsed) == ["no_objects"]


def test_spelling_variants_are_normalised_and_reported(tmp_path):
    root = write_voc(tmp_path / "ds", {
        "a": [voc_object("with_mask", (1, 1, 5, 5)), voc_object("with_mask", (1, 1, 5, 5))],
        "b": [voc_object("With-Mask", (1, 1, 5, 5)), voc_object(" with mask ", (1, 1, 5, 5)),
              voc_object("without_mask", (1, 1, 5, 5))],
    })
    parsed = load_voc_folder(root)
    assert parsed.classes == ["with_mask", "without_mask"]
    assert parsed.sample_by_id()["b"].labels.tolist() == [0, 0, 1]
    variants = [p.detail for p in parsed.problems if p.kind == "class_name_variant"]
    assert len(variants) == 2 and all("read as 'with_mask'" in d for d in variants)


def test_class_list_file_fixes_order_and_unknown_names_are_dropped(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [voc_object("cat", (1, 1, 5, 5)), voc_object("Dog", (2, 2, 6, 6)),
                                             voc_object("horse", (1, 1, 5, 5))]})
    (root / "classes.txt").write_text("dog\ncat\nbird\n")
    parsed = load_voc_folder(root)
    assert parsed.classes == ["dog", "cat", "bird"]
    assert parsed.samples[0].labels.tolist() == [1, 0]
    assert sorted(kinds(parsed)) == ["class_name_variant", "unknown_class"]
    assert load_voc_folder(root, classes=["horse"]).samples[0].labels.tolist() == [0]


def test_missing_size_leaves_boxes_unclipped_and_says_so(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": []})
    (root / "annotations" / "a.xml").write_text(voc_xml("a.png", None, [voc_object("x", (1, 1, 500, 5))]))
    parsed = load_voc_folder(root)
    assert parsed.samples[0].width is None and parsed.samples[0].boxes.tolist() == [[1, 1, 500, 5]]
    assert kinds(parsed) == ["missing_size"]


def test_vocdevkit_layout(tmp_path):
    root = write_voc(tmp_path / "VOC2007", {"000001": [voc_object("dog", (1, 1, 5, 5))]}, layout="vocdevkit", ext=".jpg")
    parsed = load_voc_folder(root)
    assert parsed.meta["layout"] == "vocdevkit" and parsed.samples[0].image_path.parent.name == "JPEGImages"


def test_not_a_voc_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not a VOC folder"):
        load_voc_folder(tmp_path)


def test_index_is_keyed_by_size_and_mtime(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [voc_object("x", (1, 1, 5, 5))]})
    xml = root / "annotations" / "a.xml"
    load_voc_folder(root)
    before = os.stat(xml)
    # Same size, same mtime, different content: the cached record is used (nothing re-parsed) ...
    xml.write_text(xml.read_text().replace("<xmin>1</xmin>", "<xmin>2</xmin>"))
    os.utime(xml, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert load_voc_folder(root).samples[0].boxes[0, 0] == 1
    voc._MEMORY_INDEX.clear()  # ... also from the on-disk index a new process would read
    assert load_voc_folder(root).samples[0].boxes[0, 0] == 1
    # ... and a new mtime makes it re-read the file.
    os.utime(xml, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert load_voc_folder(root).samples[0].boxes[0, 0] == 2
    xml.unlink()
    assert load_voc_folder(root).num_images == 0


def test_index_lives_outside_the_dataset_and_read_only_places_still_load(tmp_path, monkeypatch):
    root = write_voc(tmp_path / "ds", {"a": [voc_object("x", (1, 1, 5, 5))]})
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    cache = tmp_path / "ro-cache"
    cache.mkdir()
    os.chmod(cache, stat.S_IRUSR | stat.S_IXUSR)
    os.chmod(root, stat.S_IRUSR | stat.S_IXUSR)
    monkeypatch.setenv("DETBOARD_CACHE", str(cache))
    try:
        assert load_voc_folder(root).num_objects == 1
        assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    finally:
        os.chmod(root, stat.S_IRWXU)
        os.chmod(cache, stat.S_IRWXU)


def test_damaged_index_file_is_ignored(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [voc_object("x", (1, 1, 5, 5))]})
    load_voc_folder(root)
    (index,) = (tmp_path / "cache").rglob("*.json")
    index.write_text("{not json")
    voc._MEMORY_INDEX.clear()
    assert load_voc_folder(root).num_objects == 1


@pytest.mark.skipif(not (SHARED_DATA / "facemask-sample").is_dir(), reason="shared real sample absent")
def test_shared_facemask_sample_is_read_exactly():
    parsed = load_voc_folder(SHARED_DATA / "facemask-sample")
    assert parsed.num_images == 20 and parsed.num_objects == 58
    counts = dict(zip(parsed.classes, np.bincount(np.concatenate([s.labels for s in parsed.samples]))))
    assert counts == {"mask_weared_incorrect": 4, "with_mask": 41, "without_mask": 13}
    s0 = parsed.sample_by_id()["maksssksksss0"]
    assert (s0.width, s0.height) == (512, 366)
    assert s0.boxes.tolist() == [[79, 105, 109, 142], [185, 100, 226, 144], [325, 90, 360, 141]]
    assert [parsed.classes[i] for i in s0.labels] == ["without_mask", "with_mask", "without_mask"]
    clipped = [p for p in parsed.problems if p.kind == "box_clipped"]
    assert sorted(p.image_id for p in clipped) == ["maksssksksss5", "maksssksksss93"]
    assert all("401" in p.detail for p in clipped) and kinds(parsed) == ["box_clipped", "box_clipped"]
    assert parsed.sample_by_id()["maksssksksss5"].boxes[1].tolist() == [364, 30, 400, 66]


def test_bare_doctype_without_declarations_still_parses():
    record = parse_voc_xml(b'<?xml version="1.0"?><!DOCTYPE annotation SYSTEM "http://example.invalid/voc.dtd">'
                           b"<annotation><filename>a.png</filename></annotation>")
    assert record["ok"] and record["filename"] == "a.png" and record["problems"] == []


def test_flat_layout_xml_beside_images(tmp_path):
    root = tmp_path / "labelimg"
    write_image(root / "a.jpg")
    (root / "a.xml").write_text(voc_xml("a.jpg", (40, 30), [voc_object("cat", (1, 2, 3, 4))]))
    write_image(root / "b.jpg")
    parsed = load_voc_folder(root)
    assert parsed.meta["layout"] == "flat" and parsed.samples[0].boxes.tolist() == [[1, 2, 3, 4]]
    assert [p.kind for p in parsed.problems] == ["missing_annotation"]


def test_index_with_wrong_shapes_is_not_trusted(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [voc_object("x", (1, 1, 5, 5))]})
    load_voc_folder(root)
    (index,) = (tmp_path / "cache").rglob("*.json")
    payload = __import__("json").loads(index.read_text())
    payload["files"]["a.xml"] = [1, 2]
    index.write_text(__import__("json").dumps(payload))
    voc._MEMORY_INDEX.clear()
    assert load_voc_folder(root).num_objects == 1


def test_unknown_declared_encoding_is_recovered_or_reported():
    record = parse_voc_xml(b'<?xml version="1.0" encoding="bogus"?><annotation><filename>a.png</filename>'
                           b"</annotation>")
    assert record["problems"][0][0] == "malformed_xml"

import pytest

from detcore.data.coco import load_coco_json
from detcore.errors import DataError
from tests.data.builders import write_coco, write_image

RLE = {"size": [30, 40], "counts": "0a0"}


def _coco(tmp_path, **overrides):
    for name in ("a.png", "b.png", "c.png"):
        write_image(tmp_path / "images" / name, 40, 30)
    coco = {
        "images": [{"id": 10, "file_name": "a.png", "width": 40, "height": 30},
                   {"id": 20, "file_name": "b.png", "width": 40, "height": 30},
                   {"id": 30, "file_name": "c.png", "width": 40, "height": 30}],
        "categories": [{"id": 7, "name": "zebra"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [1, 2, 10, 5], "area": 50, "iscrowd": 0,
             "segmentation": [[1, 2, 11, 2, 11, 7]]},
            {"id": 2, "image_id": 10, "category_id": 1, "bbox": [30, 20, 20, 20], "iscrowd": 1, "segmentation": RLE},
            {"id": 3, "image_id": 20, "category_id": 3, "bbox": [5, 5, 4, 4]},
        ],
    }
    coco.update(overrides)
    return write_coco(tmp_path / "annotations" / "instances.json", coco)


def test_boxes_categories_segmentation_and_negatives(tmp_path):
    parsed = load_coco_json(_coco(tmp_path))
    assert parsed.format == "coco" and parsed.root == tmp_path / "images"
    assert parsed.classes == ["person", "car", "zebra"]  # category-id order 1, 3, 7
    assert parsed.meta["category_ids"] == [1, 3, 7]
    a, b, c = parsed.samples
    assert a.image_id == "10" and a.boxes.tolist() == [[1, 2, 11, 7], [30, 20, 40, 30]]
    assert a.labels.tolist() == [2, 0] and a.iscrowd.tolist() == [False, True]
    assert a.segmentations == [[[1, 2, 11, 2, 11, 7]], RLE] and a.areas.tolist() == [50, 400]
    assert b.labels.tolist() == [1]
    assert c.num_objects == 0  # image without annotations is kept
    assert [(p.kind, p.image_id) for p in parsed.problems] == [("box_clipped", "10"), ("no_objects", "30")]


def test_references_to_missing_images_and_categories_are_reported(tmp_path):
    path = _coco(tmp_path)
    import json

    coco = json.loads(path.read_text())
    coco["annotations"] += [{"id": 8, "image_id": 99, "category_id": 1, "bbox": [1, 1, 2, 2]},
                            {"id": 9, "image_id": 10, "category_id": 42, "bbox": [1, 1, 2, 2]},
                            {"id": 11, "image_id": 20, "category_id": 1, "bbox": ["x", 1, 2, 2]},
                            {"id": 12, "image_id": 20, "category_id": 1, "bbox": [1, 1, 0, 2]},
                            {"id": 13, "image_id": 20, "category_id": 1}]
    coco["images"].append({"id": 40, "file_name": "gone.png", "width": 40, "height": 30})
    path.write_text(json.dumps(coco))
    parsed = load_coco_json(path)
    kinds = [p.kind for p in parsed.problems]
    for kind in ("missing_image_ref", "unknown_category", "bad_coordinates", "degenerate_box", "missing_bndbox",
                 "missing_image"):
        assert kind in kinds, kind
    assert parsed.num_images == 3 and parsed.num_objects == 3


def test_polygon_only_annotation_gets_a_box(tmp_path):
    path = _coco(tmp_path, annotations=[{"id": 1, "image_id": 10, "category_id": 1,
                                         "segmentation": [[2, 3, 12, 3, 12, 9, 2, 9]]}])
    assert load_coco_json(path).samples[0].boxes.tolist() == [[2, 3, 12, 9]]


@pytest.mark.parametrize("content,match", [("{", "not valid JSON"), ('{"images": []}', "instances file"),
                                           ('{"images": [], "annotations": [], "categories": [{"id": 1}]}', "name")])
def test_unusable_json_is_a_data_error(tmp_path, content, match):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        load_coco_json(path)


def test_explicit_image_root(tmp_path):
    path = _coco(tmp_path)
    other = tmp_path / "elsewhere"
    write_image(other / "a.png", 40, 30)
    parsed = load_coco_json(path, image_root=other)
    assert [s.image_id for s in parsed.samples] == ["10"]


def test_official_coco_layout_finds_the_split_folder(tmp_path):
    write_image(tmp_path / "val2017" / "000000000139.jpg", 40, 30)
    path = write_coco(tmp_path / "annotations" / "instances_val2017.json", {
        "images": [{"id": 139, "file_name": "000000000139.jpg", "width": 40, "height": 30}],
        "annotations": [], "categories": [{"id": 1, "name": "person"}]})
    parsed = load_coco_json(path)
    assert parsed.root == tmp_path / "val2017" and parsed.num_images == 1

"""Mask AP from instance-id PNGs (Penn-Fudan style) and polygons; COCO export round trips."""

import json

import numpy as np
import pytest
from PIL import Image

from detcore.metrics import evaluate_detections
from detcore.metrics.coco_files import evaluate_coco_files
from detcore.metrics.export import coco_image_id_map, to_coco_detections, to_coco_gt
from detcore.structures import Detections, Sample
from tests.metrics.cocogen import pycocotools_eval, random_mask_case

# pycocotools' mask decoding warns under numpy 2 (its issue; our code paths do not)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def png_case(tmp_path):
    ids = np.zeros((40, 60), np.uint8)
    ids[5:25, 5:20] = 1  # a person: 300 px
    ids[10:30, 30:50] = 2  # another: 400 px
    Image.fromarray(ids).save(tmp_path / "mask.png")
    gt = [Sample("p1", tmp_path / "p1.png", 60, 40, boxes=[[5, 5, 20, 25], [30, 10, 50, 30]], labels=[0, 0],
                 mask_path=tmp_path / "mask.png", mask_ids=[1, 2])]
    masks = np.zeros((2, 40, 60), bool)
    masks[0] = ids == 1  # perfect
    masks[1, 10:30, 30:40] = True  # half of person 2: mask IoU 0.5, box IoU 0.5 too
    dt = [Detections("p1", [[5, 5, 20, 25], [30, 10, 40, 30]], [0.9, 0.8], [0, 0], masks=masks)]
    return gt, dt, ["person"]


def test_mask_ap_from_an_instance_png_by_hand(tmp_path):
    result = evaluate_detections(*png_case(tmp_path), iou_type="segm")
    s = result.summary()
    assert s["AP50"] == pytest.approx(1.0)  # mask IoU exactly 0.5 matches at 0.5
    # at IoU >= 0.55 only the perfect mask matches: 51 of 101 recall points → 9 thresholds
    assert s["AP"] == pytest.approx((1 + 9 * 51 / 101) / 10)
    ev = pycocotools_eval(*png_case(tmp_path), iou_type="segm")
    assert s["AP"] == pytest.approx(ev.stats[0], abs=1e-12)


def test_segm_without_masks_is_a_clear_error(tmp_path):
    from detcore.errors import DataError

    gt, dt, classes = png_case(tmp_path)
    dt[0].masks = None
    with pytest.raises(DataError, match="no masks"):
        evaluate_detections(gt, dt, classes, iou_type="segm")


def test_segm_files_through_the_file_evaluator_equal_pycocotools(tmp_path):
    samples, dets, classes = random_mask_case(np.random.default_rng(5))
    gt = to_coco_gt(samples, classes, with_masks=True)
    dt = to_coco_detections(dets, classes, with_masks=True)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    ours = evaluate_coco_files(tmp_path / "gt.json", tmp_path / "dt.json", iou_type="segm").summary()
    ev = pycocotools_eval(samples, dets, classes, iou_type="segm")
    np.testing.assert_allclose([-1 if v is None else v for v in ours.values()], ev.stats, atol=1e-9)


def test_export_keeps_numeric_ids_in_order_and_numbers_others():
    assert coco_image_id_map(["3", "10", "42"]) == {"3": 3, "10": 10, "42": 42}
    assert coco_image_id_map(["b", "a"]) == {"b": 1, "a": 2}
    assert coco_image_id_map(["10", "3"]) == {"10": 1, "3": 2}  # renumbered: keeps our image order


def test_export_writes_a_valid_coco_pair():
    gt = [Sample("x", "x.jpg", 50, 50, boxes=[[1.5, 2, 11.5, 22]], labels=[1], iscrowd=[True])]
    dt = [Detections("x", [[1, 2, 11, 22]], [0.25], [1])]
    g = to_coco_gt(gt, ["a", "b"])
    assert g["categories"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    ann = g["annotations"][0]
    assert ann == {"id": 1, "image_id": 1, "category_id": 2, "bbox": [1.5, 2.0, 10.0, 20.0], "iscrowd": 1, "area": 200.0}
    assert to_coco_detections(dt, ["a", "b"]) == [{"image_id": 1, "category_id": 2, "bbox": [1.0, 2.0, 10.0, 20.0], "score": 0.25}]


def test_written_pair_evaluates_to_the_same_numbers(tmp_path):
    from detcore.metrics.coco_files import evaluate_coco_files
    from detcore.metrics.export import write_coco_pair

    samples, dets, classes = random_mask_case(np.random.default_rng(9))
    dets = dets[::-1]  # detections in another order than the samples: ids must still line up
    gt_path, dt_path = write_coco_pair(tmp_path / "export", samples, dets, classes, with_masks=True)
    direct = evaluate_detections(samples, dets, classes, iou_type="segm").summary()
    for iou_type in ("segm", "bbox"):
        from_files = evaluate_coco_files(gt_path, dt_path, iou_type=iou_type).summary()
        want = direct if iou_type == "segm" else evaluate_detections(samples, dets, classes).summary()
        assert from_files == pytest.approx(want, abs=1e-9)

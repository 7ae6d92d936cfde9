"""VOC AP (py-faster-rcnn voc_eval semantics) against values computed by hand."""

import numpy as np
import pytest

from detcore.metrics import evaluate_detections
from detcore.metrics.voc import evaluate_voc, voc_ap
from detcore.structures import Detections, Sample

BOX = [[0, 0, 40, 40], [100, 100, 140, 140], [200, 0, 240, 40]]


def test_three_gt_two_perfect_detections_golden_values():
    gt = [Sample("a", "a.jpg", 300, 300, boxes=BOX, labels=[0, 0, 0])]
    dt = [Detections("a", BOX[:2], [0.9, 0.8], [0, 0])]
    # recall 1/3, 2/3 at precision 1: all-point area = 2/3; 11-point: t = 0.0..0.6 reachable → 7/11
    assert evaluate_voc(gt, dt, ["x"])["mAP"] == pytest.approx(2 / 3, abs=1e-12)
    assert evaluate_voc(gt, dt, ["x"], use_07_metric=True)["mAP"] == pytest.approx(7 / 11, abs=1e-12)
    assert evaluate_detections(gt, dt, ["x"]).summary()["AP50"] == pytest.approx(67 / 101, abs=1e-12)


def test_voc_ap_on_a_hand_made_curve():
    rec = np.array([0.25, 0.25, 0.5, 0.75])
    prec = np.array([1.0, 0.5, 2 / 3, 0.5])
    # envelope: [1 at r .25], [2/3 at r .5], [.5 at r .75], 0 after → .25 + .25*2/3 + .25*.5
    assert voc_ap(rec, prec) == pytest.approx(0.25 + 0.25 * 2 / 3 + 0.25 * 0.5)
    # 11-point: t=0,.1,.2 → 1; t=.3,.4,.5 → 2/3; t=.6,.7 → .5; t=.8,.9,1 → 0
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx((3 + 3 * 2 / 3 + 2 * 0.5) / 11)


def test_difficult_objects_are_neither_positives_nor_false_positives():
    gt = [Sample("a", "a.jpg", 300, 300, boxes=BOX, labels=[0, 0, 0], difficult=[False, False, True])]
    dt = [Detections("a", [BOX[2], BOX[0], BOX[1]], [0.95, 0.9, 0.8], [0, 0, 0])]
    out = evaluate_voc(gt, dt, ["x"])
    assert out["per_class"][0]["n_gt"] == 2
    assert out["mAP"] == pytest.approx(1.0)  # the hit on the difficult box costs nothing


def test_iou_must_exceed_half_strictly_and_duplicates_are_false_positives():
    gt = [Sample("a", "a.jpg", 100, 100, boxes=[[0, 0, 10, 10]], labels=[0])]
    on_boundary = [Detections("a", [[0, 0, 10, 20]], [0.9], [0])]  # IoU exactly 0.5
    assert evaluate_voc(gt, on_boundary, ["x"])["mAP"] == 0.0  # VOC: ovmax > 0.5 (COCO: >=)
    duplicate = [Detections("a", [[0, 0, 10, 10], [0, 0, 10, 10.5]], [0.9, 0.95], [0, 0])]
    # the higher-scoring (less exact) box takes the gt; the second is an FP — at recall 1 precision 1
    assert evaluate_voc(gt, duplicate, ["x"])["mAP"] == pytest.approx(1.0)
    late = [Detections("a", [[50, 50, 60, 60], [0, 0, 10, 10]], [0.9, 0.5], [0, 0])]
    assert evaluate_voc(gt, late, ["x"])["mAP"] == pytest.approx(0.5)


def test_continuous_coordinates_no_plus_one():
    # voc_eval's +1 would make this IoU (11*5.9)/(11*11) = 0.536 > 0.5; continuous IoU is 0.49
    gt = [Sample("a", "a.jpg", 100, 100, boxes=[[0, 0, 10, 10]], labels=[0])]
    dt = [Detections("a", [[0, 0, 10, 4.9]], [0.9], [0])]
    assert evaluate_voc(gt, dt, ["x"])["mAP"] == 0.0


def test_class_without_positives_is_none_and_left_out_of_the_mean():
    gt = [Sample("a", "a.jpg", 300, 300, boxes=BOX[:1], labels=[0])]
    dt = [Detections("a", [BOX[0], BOX[1]], [0.9, 0.8], [0, 1])]
    out = evaluate_voc(gt, dt, ["a", "b"])
    assert out["per_class"][1]["AP"] is None and out["per_class"][1]["n_det"] == 1
    assert out["mAP"] == pytest.approx(1.0)

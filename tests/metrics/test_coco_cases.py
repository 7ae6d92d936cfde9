"""Hand-computed COCO values and the traps the issue names (empty lists, id 0, boundaries, crowd)."""

import contextlib
import copy
import io

import numpy as np
import pandas as pd
import pytest

from detcore.metrics import evaluate_detections
from detcore.metrics.export import to_coco_detections, to_coco_gt
from detcore.structures import Detections, Sample
from tests.metrics.cocogen import pycocotools_eval

BOX = [[0, 0, 40, 40], [100, 100, 140, 140], [200, 0, 240, 40]]


def three_gt_two_perfect():
    gt = [Sample("a", "a.jpg", 300, 300, boxes=BOX, labels=[0, 0, 0])]
    dt = [Detections("a", BOX[:2], [0.9, 0.8], [0, 0])]
    return gt, dt, ["thing"]


def test_three_gt_two_perfect_detections_golden_ap50():
    result = evaluate_detections(*three_gt_two_perfect())
    # recall reaches 2/3: recall points 0.00..0.66 (67 of 101) have precision 1, the rest 0
    assert result.summary()["AP50"] == pytest.approx(67 / 101, abs=1e-12)
    assert result.summary()["AP"] == pytest.approx(67 / 101, abs=1e-12)  # perfect boxes: every IoU
    assert result.summary()["AR100"] == pytest.approx(2 / 3, abs=1e-12)


def test_empty_detection_list_gives_zero_ap_not_a_crash():
    gt, _, classes = three_gt_two_perfect()
    result = evaluate_detections(gt, [], classes)
    s = result.summary()
    assert s["AP"] == 0.0 and s["AP50"] == 0.0 and s["AR100"] == 0.0
    row = result.per_class().iloc[0]
    assert row["AP"] == 0.0 and row["n_det"] == 0 and row["n_gt"] == 3
    assert result.to_json()["per_class"][0]["precision"] is None  # nothing kept: precision undefined


def test_class_without_ground_truth_is_null_not_zero():
    gt = [Sample("a", "a.jpg", 300, 300, boxes=BOX[:1], labels=[0])]
    dt = [Detections("a", [BOX[0], BOX[1]], [0.9, 0.7], [0, 1])]
    result = evaluate_detections(gt, dt, ["cat", "dog"])
    table = result.per_class()
    assert table.loc[0, "AP"] == pytest.approx(1.0)
    assert pd.isna(table.loc[1, "AP"]) and table.loc[1, "n_det"] == 1 and table.loc[1, "n_gt"] == 0
    js = result.to_json()
    assert js["per_class"][1]["AP"] is None and js["per_class"][1]["recall"] is None
    assert js["AP"] == pytest.approx(1.0)  # the mean skips the undefined class, as COCOeval does
    assert js["APl"] is None  # no large objects at all: undefined


def test_image_without_ground_truth_counts_its_detections_as_false_positives():
    gt = [Sample("a", "a.jpg", 300, 300, boxes=BOX[:1], labels=[0]), Sample("b", "b.jpg", 300, 300)]
    dt = [Detections("a", BOX[:1], [0.5], [0]), Detections("b", BOX[:1], [0.9], [0])]
    result = evaluate_detections(gt, dt, ["x"])
    # the FP on b ranks first: precision 1/2 at recall 1 → AP50 = 0.5
    assert result.summary()["AP50"] == pytest.approx(0.5)
    assert result.per_class(0.6).loc[0, "recall"] == 0.0  # only the FP on b is kept at 0.6


def test_iou_exactly_on_the_threshold_matches():
    gt = [Sample("a", "a.jpg", 100, 100, boxes=[[0, 0, 10, 10]], labels=[0])]
    dt = [Detections("a", [[0, 0, 10, 20]], [0.9], [0])]  # IoU = 100 / 200 = 0.5 exactly
    result = evaluate_detections(gt, dt, ["x"])
    assert result.summary()["AP50"] == pytest.approx(1.0)
    assert result.class_ap(0, iou=0.55) == 0.0
    assert result.summary()["AP"] == pytest.approx(0.1)


def test_detection_on_a_crowd_region_is_ignored_not_a_false_positive():
    gt = [Sample("a", "a.jpg", 300, 300, boxes=[BOX[0], [100, 100, 200, 200]], labels=[0, 0], iscrowd=[False, True])]
    dt = [Detections("a", [[110, 110, 150, 150], BOX[0]], [0.9, 0.5], [0, 0])]
    result = evaluate_detections(gt, dt, ["person"])
    assert result.summary()["AP"] == pytest.approx(1.0)
    assert result.per_class().loc[0, "n_gt"] == 1  # crowd regions are not objects to find
    assert set(result.errors(0.0)["kind"]) == {"tp"}


def test_ties_broken_like_pycocotools_across_images():
    gt = [Sample(i, f"{i}.jpg", 100, 100, boxes=[[0, 0, 10, 10]], labels=[0]) for i in ("a", "b")]
    dt = [Detections("a", [[50, 50, 60, 60]], [0.5], [0]), Detections("b", [[0, 0, 10, 10]], [0.5], [0])]
    ours = evaluate_detections(gt, dt, ["x"])
    ev = pycocotools_eval(gt, dt, ["x"])
    # the FP (image a, first in order) is ranked before the tied TP: precision 1/2 at recall 1/2
    assert ours.summary()["AP50"] == pytest.approx(ev.stats[1], abs=1e-12) == pytest.approx(51 / 101 * 0.5)


def test_annotation_id_zero_trap_and_our_export_never_emits_it():
    gt, dt, classes = three_gt_two_perfect()
    gt_json, dt_json = to_coco_gt(gt, classes), to_coco_detections(dt, classes)
    assert min(a["id"] for a in gt_json["annotations"]) == 1
    # what goes wrong with id 0: pycocotools stores the matched gt id, and 0 reads as "unmatched"
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    broken = copy.deepcopy(gt_json)
    for a in broken["annotations"]:
        a["id"] -= 1
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = broken
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dt_json)), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[1] < 67 / 101 - 0.1  # the TP on gt id 0 was counted as a false positive
    assert evaluate_detections(gt, dt, classes).summary()["AP50"] == pytest.approx(67 / 101)


def test_max_dets_keeps_the_top_scores_per_image_and_class():
    boxes = [[i * 10, 0, i * 10 + 8, 8] for i in range(12)]
    gt = [Sample("a", "a.jpg", 200, 200, boxes=boxes, labels=[0] * 12)]
    dt = [Detections("a", boxes, np.linspace(0.9, 0.1, 12), [0] * 12)]
    s = evaluate_detections(gt, dt, ["x"]).summary()
    assert s["AR1"] == pytest.approx(1 / 12) and s["AR10"] == pytest.approx(10 / 12) and s["AR100"] == 1.0


def test_bad_inputs_raise_data_errors_naming_the_problem():
    from detcore.errors import ConfigError, DataError

    gt, dt, classes = three_gt_two_perfect()
    with pytest.raises(DataError, match="not in the ground truth"):
        evaluate_detections(gt, [Detections("zzz", BOX[:1], [0.5], [0])], classes)
    with pytest.raises(DataError, match="class index 3"):
        evaluate_detections(gt, [Detections("a", BOX[:1], [0.5], [3])], classes)
    with pytest.raises(ConfigError, match="IoU"):
        evaluate_detections(gt, dt, classes, iou_thresholds=[0.0])
    with pytest.raises(DataError, match="more than once"):
        evaluate_detections(gt + gt, dt, classes)

"""The seed tutorials' metric code got these cases wrong; our engine gets them right.

Each test re-implements the tutorial's logic faithfully in a few lines (numpy instead of torch),
runs it on a tiny case, and shows it disagrees with the correct value, which ours returns.
"""

import numpy as np
import pytest

from detcore.metrics import evaluate_detections
from detcore.structures import Detections, Sample


def tutorial_bbox_iou(box1, box2):
    """The tutorial's bbox_iou: integer-pixel '+1' widths."""
    x1 = np.maximum(box1[:, 0], box2[:, 0])
    y1 = np.maximum(box1[:, 1], box2[:, 1])
    x2 = np.minimum(box1[:, 2], box2[:, 2])
    y2 = np.minimum(box1[:, 3], box2[:, 3])
    inter = np.clip(x2 - x1 + 1, 0, None) * np.clip(y2 - y1 + 1, 0, None)
    a1 = (box1[:, 2] - box1[:, 0] + 1) * (box1[:, 3] - box1[:, 1] + 1)
    a2 = (box2[:, 2] - box2[:, 0] + 1) * (box2[:, 3] - box2[:, 1] + 1)
    return inter / (a1 + a2 - inter + 1e-16)


def tutorial_batch_statistics(outputs, targets, iou_threshold):
    """get_batch_statistics as in the tutorial, including `len(annotations)` (a dict's key count)
    as the stop condition and class-agnostic matching against every target box."""
    out = []
    for output, annotations in zip(outputs, targets):
        tp = np.zeros(len(output["boxes"]))
        detected = []
        for i, (box, label) in enumerate(zip(output["boxes"], output["labels"])):
            if len(detected) == len(annotations):
                break
            if label not in annotations["labels"]:
                continue
            ious = tutorial_bbox_iou(np.asarray([box], float), np.asarray(annotations["boxes"], float))
            j = int(np.argmax(ious))
            if ious[j] >= iou_threshold and j not in detected:
                tp[i] = 1
                detected.append(j)
        out.append(tp)
    return out


def test_break_on_dict_length_stops_counting_after_three_matches():
    boxes = [[i * 20, 0, i * 20 + 15, 15] for i in range(5)]
    target = {"boxes": boxes, "labels": [0] * 5, "image_id": 0}  # 3 keys → "3 targets"
    output = {"boxes": boxes, "labels": [0] * 5, "scores": [0.9] * 5}
    assert tutorial_batch_statistics([output], [target], 0.5)[0].sum() == 3  # 2 perfect boxes lost
    result = evaluate_detections([Sample("a", "a.jpg", 200, 50, boxes=boxes, labels=[0] * 5)],
                                 [Detections("a", boxes, [0.9] * 5, [0] * 5)], ["x"])
    assert result.per_class(0.5).loc[0, "recall"] == 1.0
    assert result.summary()["AP50"] == pytest.approx(1.0)


def test_plus_one_pixel_iou_turns_a_miss_into_a_match():
    gt, det = np.array([[0, 0, 10, 10]], float), np.array([[0, 0, 10, 4.9]], float)
    assert tutorial_bbox_iou(det, gt)[0] > 0.5  # 0.536: the tutorial counts it as a hit
    result = evaluate_detections([Sample("a", "a.jpg", 20, 20, boxes=gt, labels=[0])],
                                 [Detections("a", det, [0.9], [0])], ["x"])
    assert result.summary()["AP50"] == 0.0  # continuous IoU 0.49 < 0.5
    assert result.errors(0.5)["kind"].tolist() == ["localization", "missed"]


def test_class_agnostic_matching_counts_a_wrong_class_box_as_a_hit():
    # a cat and a dog; the model says "dog" on the cat
    target = {"boxes": [[0, 0, 40, 40], [100, 0, 140, 40]], "labels": [0, 1], "image_id": 0}
    output = {"boxes": [[0, 0, 40, 40]], "labels": [1], "scores": [0.9]}
    assert tutorial_batch_statistics([output], [target], 0.5)[0].tolist() == [1.0]
    result = evaluate_detections([Sample("a", "a.jpg", 200, 50, boxes=target["boxes"], labels=[0, 1])],
                                 [Detections("a", output["boxes"], [0.9], [1])], ["cat", "dog"])
    assert result.class_ap(1, iou=0.5) == 0.0
    assert result.errors(0.5).query("kind == 'wrong_class'")["other_class"].tolist() == ["cat"]


def tutorial_ap_per_class_classes(target_cls):
    """ap_per_class iterates over the classes present in the targets only, returning AP by position."""
    return np.unique(target_cls)


def test_ap_only_over_present_classes_shifts_the_table():
    # class 0 has no ground truth in this test split; class 1 is detected perfectly
    classes = ["without_mask", "with_mask", "mask_weared_incorrect"]
    present = tutorial_ap_per_class_classes(np.array([1, 2]))
    # the tutorial prints `AP : tensor([...])`; read in class order, position 0 is labelled
    # "without_mask" although it holds with_mask's AP
    assert present[0] != 0
    gt = [Sample("a", "a.jpg", 300, 300, boxes=[[0, 0, 40, 40], [100, 100, 140, 140]], labels=[1, 2])]
    dt = [Detections("a", [[0, 0, 40, 40]], [0.9], [1])]
    table = evaluate_detections(gt, dt, classes).per_class().set_index("class")
    assert np.isnan(table.loc["without_mask", "AP"])  # undefined, not shifted, not 0
    assert table.loc["with_mask", "AP"] == pytest.approx(1.0)
    assert table.loc["mask_weared_incorrect", "AP"] == 0.0


def test_scores_matter_unlike_mapcalc():
    # the mapcalc demo: two perfect boxes of two classes scored 0.5 mAP; they are perfect
    gt = [Sample("a", "a.jpg", 300, 300, boxes=[[0, 0, 100, 100], [200, 0, 250, 100]], labels=[0, 1])]
    dt = [Detections("a", [[0, 0, 100, 100], [200, 0, 250, 100]], [0.9, 0.6], [0, 1])]
    range_result = evaluate_detections(gt, dt, ["a", "b"], iou_thresholds=np.arange(0.05, 0.951, 0.05))
    assert range_result.summary()["AP"] == pytest.approx(1.0)
    # a score-blind metric cannot tell these apart; AP must: the FP ranked first halves precision
    one = [Sample("a", "a.jpg", 300, 300, boxes=[[0, 0, 100, 100]], labels=[0])]
    tp_first = [Detections("a", [[0, 0, 100, 100], [200, 200, 250, 250]], [0.9, 0.1], [0, 0])]
    fp_first = [Detections("a", [[0, 0, 100, 100], [200, 200, 250, 250]], [0.1, 0.9], [0, 0])]
    assert evaluate_detections(one, tp_first, ["a"]).summary()["AP50"] == pytest.approx(1.0)
    assert evaluate_detections(one, fp_first, ["a"]).summary()["AP50"] == pytest.approx(0.5)

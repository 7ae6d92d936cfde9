"""Re-thresholding from cached matches equals evaluating the thresholded detections afresh."""

import numpy as np
import pytest

from detcore.metrics import evaluate_detections
from detcore.structures import Detections, Sample
from tests.metrics.cocogen import random_case


def fresh_counts(samples, dets, classes, thresholds, iou):
    """Evaluate only the detections above the thresholds (a full re-match) → per-class tp, fp."""
    kept = [d.above(np.asarray(thresholds, np.float32)) for d in dets]
    fresh = evaluate_detections(samples, kept, classes, iou_thresholds=[iou])
    return fresh.sweep(iou).counts_at(np.full(len(classes), -np.inf))


@pytest.mark.parametrize("seed", range(12))
def test_cached_counts_equal_a_fresh_evaluation(seed):
    rng = np.random.default_rng(seed)
    samples, dets, classes = random_case(rng, n_classes=3)
    result = evaluate_detections(samples, dets, classes)
    for iou in (0.5, 0.75):
        thr = rng.choice([0.0, 0.2, 0.45, 0.5, 0.8, 1.1], size=len(classes))
        # thresholds equal to a float32 score keep that score
        thr = np.asarray(thr, np.float32).astype(np.float64)
        tp, fp = result.sweep(iou).counts_at(thr)
        want_tp, want_fp = fresh_counts(samples, dets, classes, thr, iou)
        assert tp.tolist() == want_tp.tolist() and fp.tolist() == want_fp.tolist()


def small_case():
    gt = [Sample("a", "a.jpg", 300, 300, boxes=[[0, 0, 40, 40], [100, 100, 140, 140], [200, 0, 240, 40]], labels=[0, 0, 0])]
    dt = [Detections("a", [[0, 0, 40, 40], [150, 150, 190, 190], [100, 100, 140, 140], [200, 0, 240, 40]],
                     [0.9, 0.8, 0.7, 0.3], [0, 0, 0, 0])]
    return gt, dt, ["x"]


def test_threshold_curve_and_recommendations_by_hand():
    result = evaluate_detections(*small_case())
    curve = result.threshold_curve("x")
    # TP(0.9) FP(0.8) TP(0.7) TP(0.3)
    assert curve["threshold"].tolist() == pytest.approx([0.9, 0.8, 0.7, 0.3])
    assert curve["precision"].tolist() == pytest.approx([1, 0.5, 2 / 3, 0.75])
    assert curve["recall"].tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3, 1])
    assert curve["f1"].tolist() == pytest.approx([0.5, 0.4, 2 / 3, 6 / 7])
    assert result.recommend_thresholds("f1")["x"] == pytest.approx(0.3)
    assert result.recommend_thresholds("precision", 0.7)["x"] == pytest.approx(0.3)
    assert result.recommend_thresholds("precision", 0.9)["x"] == pytest.approx(0.9)
    assert result.recommend_thresholds("recall", 0.6)["x"] == pytest.approx(0.7)
    assert result.recommend_thresholds("recall", 1.0)["x"] == pytest.approx(0.3)
    row = result.per_class(0.75).iloc[0]
    assert (row["precision"], row["recall"], row["best_f1_threshold"]) == pytest.approx((0.5, 1 / 3, 0.3))


def test_pr_curve_is_cocos_interpolated_precision():
    result = evaluate_detections(*small_case())
    pr = result.pr_curve("x", iou=0.5)
    assert len(pr) == 101
    assert pr["precision"].iloc[0] == pytest.approx(1.0)
    assert pr["precision"].iloc[50] == pytest.approx(0.75)  # envelope after recall 1/3
    assert pr["precision"].to_numpy().mean() == pytest.approx(result.summary()["AP50"])
    all_iou = result.pr_curve("x", iou=None)
    assert all_iou["precision"].mean() == pytest.approx(result.summary()["AP"])


def test_unknown_iou_or_class_is_a_clear_error():
    from detcore.errors import ConfigError

    result = evaluate_detections(*small_case(), iou_thresholds=[0.5])
    with pytest.raises(ConfigError, match="0.75"):
        result.threshold_curve("x", iou=0.75)
    with pytest.raises(ConfigError, match="unknown class"):
        result.pr_curve("nope")


def test_thresholds_accept_scalar_array_or_dict_and_reject_typos():
    from detcore.errors import ConfigError

    result = evaluate_detections(*small_case())
    as_dict = result.per_class({"x": 0.75})
    assert as_dict.equals(result.per_class(0.75)) and as_dict.equals(result.per_class([0.75]))
    with pytest.raises(ConfigError, match="unknown classes"):
        result.per_class({"X": 0.75})
    with pytest.raises(ConfigError, match="one threshold per class"):
        result.per_class([0.5, 0.5])

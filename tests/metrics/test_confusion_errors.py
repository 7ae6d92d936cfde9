"""Confusion matrix, error kinds, worst images and bootstrap CIs on cases worked out by hand."""

import numpy as np
import pytest

from detcore.metrics import evaluate_detections
from detcore.structures import Detections, Sample
from tests.metrics.cocogen import random_case

CAT, DOG = 0, 1


def one_of_each():
    gt = [
        Sample("a", "a.jpg", 400, 400, boxes=[[0, 0, 40, 40], [100, 0, 140, 40], [200, 0, 240, 40]], labels=[CAT, CAT, DOG]),
        Sample("b", "b.jpg", 400, 400, boxes=[[0, 0, 40, 40]], labels=[DOG]),
    ]
    dt = [
        Detections("a", [[0, 0, 40, 40],  # tp cat
                         [0, 0, 40, 41],  # duplicate cat
                         [100, 0, 130, 20],  # localization (IoU 0.375)
                         [200, 0, 240, 40],  # wrong class: "cat" on the dog
                         [300, 300, 340, 340]],  # background
                   [0.9, 0.8, 0.7, 0.6, 0.5], [CAT, CAT, CAT, CAT, DOG]),
        Detections("b", [[0, 0, 40, 40]], [0.2], [DOG]),  # a dog TP below a 0.3 threshold
    ]
    return gt, dt, ["cat", "dog"]


def test_each_detection_gets_its_kind_and_missed_gt_are_listed():
    result = evaluate_detections(*one_of_each())
    err = result.errors({"cat": 0.3, "dog": 0.3})
    kinds = err.sort_values("score", ascending=False)["kind"].tolist()
    assert kinds[:5] == ["tp", "duplicate", "localization", "wrong_class", "background"]
    missed = err[err.kind == "missed"]
    assert sorted(zip(missed.image_id, missed["class"])) == [("a", "cat"), ("a", "dog"), ("b", "dog")]
    assert err.loc[err.kind == "wrong_class", "other_class"].item() == "dog"
    # lowering dog's threshold finds the dog on b without re-matching anything
    lower = result.errors({"cat": 0.3, "dog": 0.1})
    assert ("b", "tp") in set(zip(lower.image_id, lower.kind))


def test_confusion_matrix_by_hand():
    result = evaluate_detections(*one_of_each())
    cm = result.confusion_matrix({"cat": 0.3, "dog": 0.3})
    assert list(cm.index) == ["cat", "dog", "background"] == list(cm.columns)
    # cats: one found, one missed; dog on a: called "cat"; dog on b: missed (below threshold)
    assert cm.loc["cat"].tolist() == [1, 0, 1]
    assert cm.loc["dog"].tolist() == [1, 0, 1]
    # background row: the duplicate and the loose box (cat), the box on nothing (dog)
    assert cm.loc["background"].tolist() == [2, 1, 0]
    cm_low = result.confusion_matrix({"cat": 0.3, "dog": 0.1})
    assert cm_low.loc["dog"].tolist() == [1, 1, 0]


@pytest.mark.parametrize("seed", range(6))
def test_confusion_matrix_accounts_for_every_object_and_detection(seed):
    samples, dets, classes = random_case(np.random.default_rng(seed), n_classes=3)
    result = evaluate_detections(samples, dets, classes)
    thr = np.array([0.3, 0.5, 0.7])
    cm = result.confusion_matrix(thr).to_numpy()
    err = result.errors(thr)
    n_gt = result.per_class()["n_gt"].to_numpy()
    assert cm[:-1].sum(axis=1).tolist() == n_gt.tolist()  # each counted gt exactly once
    assert cm.sum() - cm[:-1, -1].sum() == (err.kind != "missed").sum()  # each kept det once
    assert (err.kind == "tp").sum() == np.trace(cm[:-1, :-1])


def test_worst_images_ranks_by_error_count():
    result = evaluate_detections(*one_of_each())
    worst = result.worst_images({"cat": 0.3, "dog": 0.3})
    assert worst["image_id"].tolist() == ["a", "b"]
    assert worst["errors"].tolist() == [6, 1]  # a: dup, loc, wrong, bkg, 2 missed; b: 1 missed
    only_missed = result.worst_images({"cat": 0.3, "dog": 0.3}, kind="missed")
    assert only_missed["errors"].tolist() == [2, 1]


def test_bootstrap_ci_is_seeded_and_brackets_stable_aps():
    samples, dets, classes = random_case(np.random.default_rng(7), n_images=7, n_classes=2)
    result = evaluate_detections(samples, dets, classes)
    a = result.bootstrap_ci(n_boot=60, seed=3)
    b = result.bootstrap_ci(n_boot=60, seed=3)
    assert a.equals(b)
    ok = a.dropna()
    assert (ok["AP_ci_low"] <= ok["AP_ci_high"]).all()
    merged = result.per_class().merge(a, on="class")
    inside = merged.dropna()
    assert len(inside) and ((inside.AP_ci_low <= inside.AP + 1e-12) & (inside.AP <= inside.AP_ci_high + 1e-12)).mean() >= 0.5
    # a perfect detector has a degenerate interval at AP = 1
    gt = [Sample(str(i), f"{i}.jpg", 100, 100, boxes=[[0, 0, 20, 20]], labels=[0]) for i in range(5)]
    dt = [Detections(str(i), [[0, 0, 20, 20]], [0.9], [0]) for i in range(5)]
    perfect = evaluate_detections(gt, dt, ["x"]).bootstrap_ci(n_boot=20)
    assert perfect.loc[0, ["AP_ci_low", "AP_ci_high"]].tolist() == pytest.approx([1.0, 1.0], abs=1e-12)


def test_detections_on_an_image_without_ground_truth_are_background_errors():
    gt = [Sample("empty", "e.jpg", 50, 50)]
    dt = [Detections("empty", [[0, 0, 10, 10]], [0.9], [DOG])]
    result = evaluate_detections(gt, dt, ["cat", "dog"])
    assert result.errors(0.5)["kind"].tolist() == ["background"]
    assert result.confusion_matrix(0.5).loc["background", "dog"] == 1
    assert result.worst_images(0.5)["image_id"].tolist() == ["empty"]

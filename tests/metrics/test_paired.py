"""The paired bootstrap of per-class differences (detcore/metrics/paired.py).

A replicate's AP must be the AP a fresh evaluation of the resampled image list gives (checked
against our pycocotools-exact engine); identical runs differ by exactly 0; a run whose boxes miss on
one class is flagged on that class only."""

from __future__ import annotations

import numpy as np
import pytest

from detcore.errors import DataError
from detcore.metrics import evaluate_detections
from detcore.metrics.paired import (_class_matches, image_draws, paired_bootstrap, weighted_ap,
                                    weighted_f1)
from detcore.structures import Detections, Sample
from tests.metrics.cocogen import random_case

CLASSES = ["cat", "dog", "bird"]


def _scene(n_images: int = 60, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n_images):
        n = int(rng.integers(1, 5))
        xy = rng.uniform(0, 300, size=(n, 2))
        wh = rng.uniform(30, 90, size=(n, 2))
        samples.append(Sample(f"im{i:03d}", f"im{i:03d}.jpg", 400, 400, boxes=np.hstack([xy, xy + wh]),
                              labels=rng.integers(0, len(CLASSES), size=n)))
    return samples


def _detector(samples: list[Sample], seed: int, *, miss_class: int | None = None) -> list[Detections]:
    """A decent detector: each object found with a small jitter (sometimes missed), a few false alarms.
    ``miss_class``: that class's boxes are pushed one box-width to the side (IoU 0 with their object)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in samples:
        found = rng.random(len(s.boxes)) < 0.9
        boxes = s.boxes[found] + rng.normal(0, 3, size=(int(found.sum()), 4))
        labels = s.labels[found].copy()
        if miss_class is not None:
            off = labels == miss_class
            boxes[off] += np.repeat((boxes[off, 2] - boxes[off, 0])[:, None] * 1.2, 4, axis=1) * [1, 0, 1, 0]
        n_fp = int(rng.integers(0, 3))
        fp_xy = rng.uniform(0, 300, size=(n_fp, 2))
        boxes = np.vstack([boxes, np.hstack([fp_xy, fp_xy + 40])])
        labels = np.concatenate([labels, rng.integers(0, len(CLASSES), size=n_fp)])
        scores = np.concatenate([rng.uniform(0.5, 1.0, int(found.sum())), rng.uniform(0.05, 0.7, n_fp)])
        out.append(Detections(s.image_id, boxes, scores, labels))
    return out


def _thresholds(n: int = len(CLASSES), value: float = 0.5) -> np.ndarray:
    return np.full(n, value)


def test_identical_runs_differ_by_exactly_zero_in_every_replicate():
    samples = _scene()
    dets = _detector(samples, seed=1)
    a = evaluate_detections(samples, dets, CLASSES)
    b = evaluate_detections(samples, [Detections(d.image_id, d.boxes.copy(), d.scores.copy(), d.labels.copy())
                                      for d in dets], CLASSES)
    (out,) = paired_bootstrap([a, b], [_thresholds(), _thresholds()], n_boot=300, seed=0)
    for metric in ("AP", "AP50", "f1"):
        for d in out[metric]:
            assert d.delta == 0.0 and d.ci == (0.0, 0.0) and not d.significant and d.n_boot == 300


def test_boxes_off_target_on_one_class_flag_that_class_only():
    samples = _scene(n_images=60)
    dets_a = _detector(samples, seed=1)
    a = evaluate_detections(samples, dets_a, CLASSES)
    # B: A's detections with slightly different scores (a retrained model ranks boxes a little
    # differently), and its "dog" boxes one box-width beside the dogs
    rng = np.random.default_rng(9)
    dets_b = []
    for d in dets_a:
        boxes = d.boxes.copy()
        dog = d.labels == 1
        boxes[dog, 0::2] += (boxes[dog, 2] - boxes[dog, 0])[:, None] * 1.2
        dets_b.append(Detections(d.image_id, boxes, np.clip(d.scores + rng.normal(0, 0.03, len(d)), 0.01, 1), d.labels))
    b = evaluate_detections(samples, dets_b, CLASSES)
    (out,) = paired_bootstrap([a, b], [_thresholds(), _thresholds()], n_boot=500, seed=0)
    assert [CLASSES[k] for k, d in enumerate(out["AP"]) if d.significant] == ["dog"]
    dog = out["AP"][1]
    assert dog.delta < -0.5 and dog.ci[1] < 0
    assert dog.delta == pytest.approx(b.class_ap(1) - a.class_ap(1), abs=1e-12)
    for k in (0, 2):  # re-ranked only: a small nonzero difference whose interval holds 0
        d = out["AP"][k]
        assert d.delta != 0 and d.ci[0] < 0 < d.ci[1]
    assert [d.significant for d in out["AP50"]] == [False, True, False]
    assert out["f1"][1].significant and out["f1"][1].delta < 0


def test_pairing_removes_the_variation_both_runs_share():
    """B also finds half of the objects A missed: a small gain on a few images. How hard an image is
    varies a lot and both runs share it, so the runs' separate AP intervals overlap, while the paired
    interval of the difference lies above 0."""
    samples = _scene(n_images=80, seed=3)
    dets_a = _detector(samples, seed=4)
    a = evaluate_detections(samples, dets_a, CLASSES)
    errors = a.errors(0.5)
    missed = errors[errors["kind"] == "missed"].iloc[::2]
    added = {d.image_id: d for d in dets_a}
    for row in missed.to_dict(orient="records"):
        d = added[row["image_id"]]
        box = [[row["x1"], row["y1"], row["x2"], row["y2"]]]
        added[d.image_id] = Detections(d.image_id, np.vstack([d.boxes, box]), np.r_[d.scores, 0.95],
                                       np.r_[d.labels, CLASSES.index(row["class"])])
    b = evaluate_detections(samples, [added[d.image_id] for d in dets_a], CLASSES)
    (out,) = paired_bootstrap([a, b], [_thresholds(), _thresholds()], n_boot=400, seed=0)
    ci_a, ci_b = a.bootstrap_ci(n_boot=400, seed=1, iou=0.5), b.bootstrap_ci(n_boot=400, seed=2, iou=0.5)
    assert all(d.delta >= 0 for d in out["AP50"]) and any(d.delta > 0 for d in out["AP50"])
    shown = [k for k in range(3) if out["AP50"][k].significant and ci_b["AP_ci_low"][k] < ci_a["AP_ci_high"][k]]
    assert shown, (out["AP50"], ci_a, ci_b)


@pytest.mark.parametrize("seed", range(6))
def test_a_replicate_is_the_evaluation_of_the_resampled_images(seed):
    rng = np.random.default_rng(seed)
    samples, dets, classes = random_case(rng, n_images=7, n_classes=3)
    # distinct scores: with ties, COCO orders equal scores by image, which a resampled copy reorders
    dets = [Detections(d.image_id, d.boxes, rng.uniform(0.01, 1, len(d)), d.labels) for d in dets]
    full = evaluate_detections(samples, dets, classes)
    weights = image_draws(len(samples), 5, seed)
    for w in weights:
        copies_s, copies_d = [], []
        for i, count in enumerate(w.astype(int)):
            for c in range(count):
                s, d = samples[i], dets[i]
                copies_s.append(Sample(f"{s.image_id}#{c}", s.image_path, s.width, s.height, boxes=s.boxes,
                                       labels=s.labels, iscrowd=s.iscrowd))
                copies_d.append(Detections(f"{s.image_id}#{c}", d.boxes, d.scores, d.labels))
        resampled = evaluate_detections(copies_s, copies_d, classes)
        for k in range(len(classes)):
            expected = resampled.class_ap(k)
            got = weighted_ap(_class_matches(full, k, slice(0, 10)), w[None])[0]
            assert (np.nan if expected is None else expected) == pytest.approx(got, abs=1e-12, nan_ok=True)
            expected50 = resampled.class_ap(k, iou=0.5)
            got50 = weighted_ap(_class_matches(full, k, slice(0, 1)), w[None])[0]
            assert (np.nan if expected50 is None else expected50) == pytest.approx(got50, abs=1e-12, nan_ok=True)
        thr = np.array([0.3, 0.5, 0.7])
        f1 = weighted_f1(full, thr, w[None])[:, 0]
        np.testing.assert_allclose(f1, resampled.per_class(thr)["f1"].to_numpy(), atol=1e-12)


def test_unit_weights_give_the_tables_numbers():
    samples = _scene(n_images=20, seed=5)
    result = evaluate_detections(samples, _detector(samples, seed=6), CLASSES)
    ones = np.ones((1, 20))
    table = result.per_class(np.array([0.4, 0.6, 0.8]))
    for k in range(3):
        assert weighted_ap(_class_matches(result, k, slice(0, 10)), ones)[0] == pytest.approx(table["AP"][k], abs=1e-12)
        assert weighted_ap(_class_matches(result, k, slice(0, 1)), ones)[0] == pytest.approx(table["AP50"][k], abs=1e-12)
    np.testing.assert_allclose(weighted_f1(result, np.array([0.4, 0.6, 0.8]), ones)[:, 0], table["f1"], atol=1e-12)


def test_a_class_without_ground_truth_has_no_difference():
    samples = [Sample("a", "a.jpg", 100, 100, boxes=[[0, 0, 10, 10]], labels=[0])]
    dets = [Detections("a", [[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.8], [0, 1])]
    r = evaluate_detections(samples, dets, ["x", "y"])
    (out,) = paired_bootstrap([r, r], [_thresholds(2), _thresholds(2)], n_boot=20)
    assert out["AP"][1].delta is None and out["AP"][1].ci is None and not out["AP"][1].significant


def test_a_class_with_few_objects_is_never_called_significant():
    samples = _scene(n_images=30, seed=7)
    for s in samples:  # "bird" keeps 3 objects, one on each of the first three images
        s.labels[s.labels == 2] = 0
    for s in samples[:3]:
        s.labels[0] = 2
    dets_a = [Detections(s.image_id, s.boxes, np.full(len(s.boxes), 0.9), s.labels) for s in samples]
    dets_b = [Detections(d.image_id, d.boxes[d.labels != 2], d.scores[d.labels != 2], d.labels[d.labels != 2])
              for d in dets_a]  # B finds no bird
    a, b = evaluate_detections(samples, dets_a, CLASSES), evaluate_detections(samples, dets_b, CLASSES)
    assert a.n_gt[2] == 3
    (out,) = paired_bootstrap([a, b], [_thresholds(), _thresholds()], n_boot=200)
    bird = out["AP"][2]
    assert bird.delta == -1.0 and bird.ci[1] < 0  # every replicate that draws a bird says "worse"...
    assert not bird.significant  # ...but three objects are too few to call it
    (lowered,) = paired_bootstrap([a, b], [_thresholds(), _thresholds()], n_boot=200, min_objects=3)
    assert lowered["AP"][2].significant


def test_runs_on_different_images_are_refused():
    samples = _scene(n_images=6)
    a = evaluate_detections(samples, _detector(samples, 1), CLASSES)
    b = evaluate_detections(samples[:5], _detector(samples[:5], 1), CLASSES)
    with pytest.raises(DataError, match="different images"):
        paired_bootstrap([a, b], [_thresholds(), _thresholds()], n_boot=10)

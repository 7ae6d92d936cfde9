"""Predictor: safe loading, checks against the run, numpy output, re-thresholding, batching."""

import numpy as np
import pytest
import torch

from detcore.errors import CheckpointError, DataError
from detcore.inference import Predictor


def _images(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), rng.integers(0, 255, (90, 140, 3), dtype=np.uint8),
            rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)]


def test_predicts_numpy_class_indices_above_the_floor_inside_the_image(make_run):
    p = Predictor.from_run(make_run(), device="cpu")
    assert p.classes == ["with_mask", "without_mask", "mask_weared_incorrect"]
    assert not p.model.training
    images = _images()
    dets = p.predict(images, image_ids=["a", "b", "c"], score_floor=0.01)
    assert [d.image_id for d in dets] == ["a", "b", "c"]
    assert sum(len(d) for d in dets) > 0
    for d, img in zip(dets, images):
        assert isinstance(d.boxes, np.ndarray) and d.boxes.dtype == np.float32
        assert d.labels.min() >= 0 and d.labels.max() < 3  # background (model label 0) never leaks
        assert (d.scores >= 0.01).all()
        h, w = img.shape[:2]
        assert (d.boxes[:, [0, 2]] <= w + 1e-3).all() and (d.boxes[:, [1, 3]] <= h + 1e-3).all()


def test_low_floor_then_rethreshold_equals_running_at_the_threshold(make_run):
    # (Faster R-CNN here: a freshly initialised SSD gives many boxes exactly tied scores, and NMS
    # breaks ties by input order, which the threshold changes — a test artefact, not a trained-model one.)
    p = Predictor.from_run(make_run("fasterrcnn_mobilenet_v3_large_320_fpn", min_size=128, max_size=160),
                           device="cpu")
    low = p.predict(_images(), score_floor=0.001)
    cut = float(np.median(np.concatenate([d.scores for d in low])))
    high = p.predict(_images(), score_floor=cut)
    for a, b in zip(low, high):
        kept = a.above(cut)
        assert len(kept) == len(b) and len(b) < len(a)
        np.testing.assert_allclose(np.sort(kept.scores), np.sort(b.scores), rtol=1e-5)


def test_model_threshold_is_lowered_so_the_floor_is_reachable(make_run):
    # torchvision's Faster R-CNN drops boxes under 0.05 by default; a floor of 0.001 must see them.
    p = Predictor.from_run(make_run("fasterrcnn_mobilenet_v3_large_320_fpn", min_size=128, max_size=160),
                           device="cpu")
    with torch.no_grad():  # make background win everywhere: every object score falls under 0.05
        p.model.roi_heads.box_predictor.cls_score.bias[0] = 6.0
    (dets,) = p.predict(_images()[:1], score_floor=0.001)
    assert len(dets) > 0 and (dets.scores < 0.05).all()


def test_batched_equals_one_at_a_time(make_run):
    p = Predictor.from_run(make_run(), device="cpu")
    batched = p.predict(_images(), score_floor=0.2, batch_size=3)
    single = p.predict(_images(), score_floor=0.2, batch_size=1)
    for a, b in zip(batched, single):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)


def test_mask_rcnn_masks_are_bool_at_image_size(make_run):
    p = Predictor.from_run(make_run("maskrcnn_resnet50_fpn", classes=["person"], min_size=64, max_size=96),
                           device="cpu")
    (d,) = p.predict(_images()[:1], score_floor=0.0)
    assert len(d) > 0 and d.masks is not None
    assert d.masks.dtype == bool and d.masks.shape == (len(d), 120, 160)


def test_classes_mismatch_is_refused_naming_both_lists(make_run):
    run = make_run(ckpt_classes=["cat", "dog", "bird"])
    with pytest.raises(CheckpointError, match=r"classes \['cat', 'dog', 'bird'\] do not match"):
        Predictor.from_run(run, device="cpu")


def test_model_mismatch_is_refused(make_run):
    run = make_run(ckpt_model="fasterrcnn_mobilenet_v3_large_320_fpn")
    with pytest.raises(CheckpointError, match="fasterrcnn_mobilenet_v3_large_320_fpn"):
        Predictor.from_run(run, device="cpu")


class _Payload:  # a pickled object: weights_only loading must refuse to rebuild it
    pass


def test_checkpoint_with_pickled_code_is_refused(make_run):
    run = make_run()
    torch.save({"model": {}, "evil": _Payload()}, run / "checkpoints" / "best.pt")
    with pytest.raises(CheckpointError, match="weights-only"):
        Predictor.from_run(run, device="cpu")


def test_best_falls_back_to_last_and_missing_checkpoint_is_clear(make_run, tmp_path):
    run = make_run(which="last")
    p = Predictor.from_run(run, device="cpu")
    assert p.checkpoint_path.name == "last.pt"
    (run / "checkpoints" / "last.pt").unlink()
    with pytest.raises(CheckpointError, match="no best.pt checkpoint"):
        Predictor.from_run(run, device="cpu")


def test_bad_image_array_names_the_image(make_run):
    p = Predictor.from_run(make_run(), device="cpu")
    with pytest.raises(DataError, match="grey.png"):
        p.predict([np.zeros((10, 10), np.uint8)], image_ids=["grey.png"])

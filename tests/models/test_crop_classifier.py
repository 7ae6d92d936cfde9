"""The crop classifier's re-scoring rule (detcore/crop_classifier.py), against hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from detcore.crop_classifier import (
    CropClassifier,
    Rescorer,
    check_spec,
    default_spec,
    load_rescorer,
    model_view,
    object_crops,
)
from detcore.models import build_model


def _rescorer(k: int = 3, max_detections: int = 100) -> Rescorer:
    spec = default_spec(k)
    torch.manual_seed(0)
    return Rescorer(CropClassifier(spec), spec, max_detections)


def test_crops_sample_the_box_grown_by_the_margin():
    # A ramp whose value is the column index: bilinear sampling of it is exact, so each crop column
    # must read the x of its bin's centre (pixel j covers [j, j + 1], its value sits at j + 0.5).
    h, w, size = 60, 80, 8
    view = torch.arange(w, dtype=torch.float32).repeat(3, h, 1)
    box = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    crop = object_crops(view, box, size, 0.25)  # grown 5 px each side: x from 5 to 35
    assert crop.shape == (1, 3, size, size)
    bin_width = 30.0 / size
    expected = torch.tensor([5.0 + (i + 0.5) * bin_width - 0.5 for i in range(size)])
    assert torch.allclose(crop[0, 0, 3], expected, atol=1e-4)
    assert torch.allclose(crop[0, 2, 0], expected, atol=1e-4)  # every row and channel alike


def test_boxes_of_different_classes_on_one_object_merge_into_it():
    r = _rescorer()
    boxes = torch.tensor([[10.0, 10, 50, 50], [11, 10, 51, 50], [100, 100, 140, 140], [12, 12, 50, 50]])
    scores = torch.tensor([0.6, 0.9, 0.3, 0.8])
    labels = torch.tensor([1, 2, 3, 0])  # the last is background: dropped, never an object
    obj_boxes, obj_scores = r.objects(boxes, scores, labels)
    assert obj_scores.tolist() == pytest.approx([0.9, 0.3])  # the best box of each object
    assert obj_boxes.tolist() == [[11, 10, 51, 50], [100, 100, 140, 140]]


def test_each_object_is_offered_once_per_class_scored_object_score_times_probability():
    r = _rescorer(3, max_detections=5)
    boxes = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    out = r.combine(boxes, torch.tensor([0.9, 0.4]), probs)
    # all six: 0.63 (obj 0, class 1), 0.32 (obj 1, class 3), 0.18, 0.09, 0.04, 0.04; the cap keeps five
    assert out["scores"].tolist() == pytest.approx([0.63, 0.32, 0.18, 0.09, 0.04])
    assert out["labels"].tolist()[:4] == [1, 3, 2, 3]
    assert out["boxes"][0].tolist() == [0, 0, 10, 10] and out["boxes"][1].tolist() == [20, 20, 30, 30]


def test_a_higher_floor_gives_the_same_detections_as_cutting_at_it():
    # The Predict page's slider re-thresholds cached predictions: predicting at 0.3 must equal
    # predicting at 0.05 and keeping scores >= 0.3.
    r = _rescorer()
    view = torch.rand(3, 120, 160, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    xy = torch.rand(60, 2, generator=g) * 120
    boxes = torch.cat([xy, xy + 10 + torch.rand(60, 2, generator=g) * 30], 1)
    raw = {"boxes": boxes, "scores": torch.rand(60, generator=g), "labels": torch.randint(1, 4, (60,), generator=g)}
    factor = torch.ones(4)

    def at(floor):
        keep = raw["scores"] >= floor
        with torch.inference_mode():
            out = r(view, factor, {k: v[keep] for k, v in raw.items()})
        keep = out["scores"] >= floor
        return {k: v[keep] for k, v in out.items()}

    low, high = at(0.05), at(0.3)
    kept = low["scores"] >= 0.3
    assert len(high["scores"]) > 3
    for key in ("boxes", "scores", "labels"):
        assert torch.equal(low[key][kept], high[key])


def test_no_detections_gives_no_detections():
    r = _rescorer()
    empty = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    with torch.inference_mode():
        out = r(torch.rand(3, 50, 50), torch.ones(4), empty)
    assert all(len(v) == 0 for v in out.values())


def test_the_view_is_the_detectors_resized_image_and_the_factor_maps_boxes_into_it():
    model = build_model("fcos_resnet18_fpn8", classes=["a", "b"], weights="none", min_size=96, max_size=160).eval()
    image = torch.rand(3, 60, 90)
    view, factor = model_view(model.transform, image)
    batch = model.transform([image, torch.rand(3, 100, 40)])[0]  # batched and padded, as in prediction
    h, w = batch.image_sizes[0]
    std = torch.tensor(model.transform.image_std)[:, None, None]
    mean = torch.tensor(model.transform.image_mean)[:, None, None]
    assert view.shape == (3, 96, 144) and (h, w) == (96, 144)
    assert torch.allclose(view, batch.tensors[0, :, :h, :w] * std + mean, atol=1e-6)
    assert factor.tolist() == pytest.approx([1.6, 1.6, 1.6, 1.6])


def test_a_stored_classifier_must_fit_the_run():
    spec = default_spec(3)
    state = CropClassifier(spec).state_dict()
    model = build_model("fcos_resnet18_fpn8", classes=["a", "b", "c"], weights="none", min_size=64, max_size=96)
    assert load_rescorer({"spec": spec, "state": state}, model, 3).num_classes == 3
    with pytest.raises(ValueError, match="3 classes, the run 2"):
        load_rescorer({"spec": spec, "state": state}, model, 2)
    with pytest.raises(ValueError, match="do not fit"):
        load_rescorer({"spec": {**spec, "widths": [8, 8]}, "state": state}, model, 3)
    with pytest.raises(ValueError, match="unknown crop classifier format"):
        check_spec({**spec, "version": 99})
    with pytest.raises(ValueError, match="out of range"):
        check_spec({**spec, "crop_size": 0})

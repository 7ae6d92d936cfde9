"""detcore.geometry: the numpy description of each model's anchors equals what torchvision generates,
best possible recall on a hand-computed case, and fitting raises recall on tiny boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detcore import geometry as g
from detcore.errors import ConfigError
from detcore.models import build_model, get_spec, list_models

CLASSES = ["a", "b"]


def _torchvision_anchors(model, image: torch.Tensor) -> tuple[np.ndarray, tuple[int, int]]:
    """The anchors the model itself makes for one image (after its own resize and padding)."""
    model.eval()
    with torch.no_grad():
        images, _ = model.transform([image])
        features = model.backbone(images.tensors)
        if isinstance(features, torch.Tensor):
            features = {"0": features}
        maps = list(features.values())
        generator = model.rpn.anchor_generator if hasattr(model, "rpn") else model.anchor_generator
        anchors = generator(images, maps)[0]
    return anchors.numpy().astype(np.float64), tuple(images.image_sizes[0])


def _models():
    return [pytest.param(s.name, id=s.name, marks=[pytest.mark.slow] if s.heavy else []) for s in list_models()]


def test_every_registry_model_has_a_layout():
    assert {s.name for s in list_models()} <= set(g.LAYOUTS)
    for spec in list_models():
        layout = g.layout_for(spec.name)
        assert layout.kind == {"ssd": "ssd", "fcos": "points"}.get(spec.family, "grid")


@pytest.mark.parametrize("name", _models())
def test_numpy_anchors_equal_torchvision_anchors(name):
    """Default anchors at a small input, on an image whose sides are not multiples of any stride."""
    layout = g.layout_for(name)
    small = {"fixed_size": 160} if "fixed_size" in layout.input else {"min_size": 100, "max_size": 150}
    geometry = {"input": small, "anchors": layout.anchors}
    model = build_model(name, classes=CLASSES, weights="none", geometry=geometry)
    image = torch.rand(3, 77, 131)
    theirs, (h, w) = _torchvision_anchors(model, image)
    ours = g.all_anchors(layout, geometry, h, w)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


@pytest.mark.parametrize("name", ["fasterrcnn_mobilenet_v3_large_320_fpn", "retinanet_mobilenet_v3_fpn8",
                                  "ssdlite320_mobilenet_v3_large"])
def test_custom_anchors_equal_torchvision_anchors(name):
    layout = g.layout_for(name)
    n = len(layout.levels)
    if layout.kind == "ssd":
        anchors = {"kind": "ssd", "scales": [0.05 * 1.5 ** k for k in range(n + 1)],
                   "aspect_ratios": [[1.3, 1.7]] * n}
        small = {"fixed_size": 192}
    else:
        per = len(layout.anchors["sizes"][0])
        anchors = {"kind": "grid", "sizes": [[7.5 * 2 ** (l + j / per) for j in range(per)] for l in range(n)],
                   "aspect_ratios": [[0.8, 1.25, 2.6]] * n}
        small = {"min_size": 120, "max_size": 200}
    geometry = {"input": small, "anchors": anchors}
    model = build_model(name, classes=CLASSES, weights="none", geometry=geometry)
    assert model.reinitialised == []  # same count per location: the heads keep their shapes
    theirs, (h, w) = _torchvision_anchors(model, torch.rand(3, 90, 151))
    np.testing.assert_allclose(g.all_anchors(layout, geometry, h, w), theirs, atol=1e-3)


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


@pytest.mark.parametrize("name", ["fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_resnet50_fpn",
                                  "retinanet_mobilenet_v3_fpn8", "ssdlite320_mobilenet_v3_large"])
def test_nearest_anchor_shortcut_equals_brute_force(name):
    """best_iou takes one anchor per shape and level; brute force over every anchor agrees."""
    rng = np.random.default_rng(3)
    layout = g.layout_for(name)
    geometry = layout.default_geometry()
    w, h = 500.0, 375.0
    n = 120  # every anchor of an 800 px input against n boxes: the brute force is the slow side
    xy = rng.uniform(0, [w - 8, h - 8], size=(n, 2))
    wh = np.exp(rng.uniform(np.log(4), np.log(300), size=(n, 2)))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [w, h])], axis=1)
    boxset = g.BoxSet(boxes, np.zeros(n, np.int64), np.full(n, w), np.full(n, h), ["x"], 1)
    resized = g.resize(boxset, geometry["input"])
    shortcut = g.best_iou(layout, geometry, resized)
    whole = g.resize(g.BoxSet(np.array([[0.0, 0.0, w, h]]), np.zeros(1, np.int64), np.array([w]), np.array([h]),
                              ["x"], 1), geometry["input"]).boxes[0]
    every = g.all_anchors(layout, geometry, int(whole[3]), int(whole[2]))
    brute = _iou_matrix(resized.boxes, every).max(axis=1)
    np.testing.assert_allclose(shortcut, brute, atol=1e-5)  # all_anchors makes SSD boxes in float32 as torch does


def test_best_possible_recall_hand_computed():
    """One level of stride 32, one 32x32 anchor (RPN grid at cell corners 0, 32, 64 ...), input
    kept at 128 x 128: a 32x32 box on a grid point has IoU 1; shifted by 8 px in x, IoU
    24*32 / (2*1024 - 24*32) = 0.6; by 16 px in x and y, IoU 16*16 / (2048 - 256) = 1/7; a 16x16
    box centred on a grid point, IoU 256 / 1024 = 0.25."""
    layout = g.Layout((5,), "grid", {"min_size": 128, "max_size": 128}, g._grid([(32,)], (1.0,)))
    geometry = layout.default_geometry()
    boxes = np.array([[48, 48, 80, 80],      # centre (64, 64): on the grid point → IoU 1
                      [56, 48, 88, 80],      # centre (72, 64): 8 px off → 0.6
                      [64, 64, 96, 96],      # centre (80, 80): 16 px off in both → 1/7
                      [56, 56, 72, 72]],     # 16 x 16 on a grid point → 0.25
                     np.float64)
    boxset = g.BoxSet(boxes, np.array([0, 0, 1, 1]), np.full(4, 128.0), np.full(4, 128.0), ["p", "q"], 1)
    best = g.best_iou(layout, geometry, g.resize(boxset, geometry["input"]))
    np.testing.assert_allclose(best, [1.0, 0.6, 1 / 7, 0.25], atol=1e-9)
    report = g.recall_report(layout, geometry, boxset)
    assert report["best_possible_recall"] == 0.5
    assert report["per_class"] == {"p": {"boxes": 2, "best_possible_recall": 1.0},
                                   "q": {"boxes": 2, "best_possible_recall": 0.0}}
    assert report["per_size"]["small"] == {"boxes": 1, "best_possible_recall": 0.0}  # 16x16 < 32²
    assert report["per_size"]["medium"] == {"boxes": 3, "best_possible_recall": 2 / 3}


def test_resize_follows_torchvision():
    """min_size/max_size scaling with the output size floored, then padding to 32 (checked on the model)."""
    model = build_model("fasterrcnn_mobilenet_v3_large_320_fpn", classes=CLASSES, weights="none")
    model.eval()
    for h, w in [(267, 400), (333, 500), (480, 321), (1000, 150)]:
        images, _ = model.transform([torch.rand(3, h, w)])
        boxset = g.BoxSet(np.array([[0.0, 0.0, w, h]]), np.zeros(1, np.int64), np.array([float(w)]),
                          np.array([float(h)]), ["x"], 1)
        r = g.resize(boxset, {"min_size": 320, "max_size": 640})
        assert (r.boxes[0, 3], r.boxes[0, 2]) == tuple(float(v) for v in images.image_sizes[0])
        assert (int(r.pad_h[0]), int(r.pad_w[0])) == tuple(images.tensors.shape[-2:])


def _tiny_boxes(n=400, seed=0) -> g.BoxSet:
    """Faces 6-20 px on 400 x 300 photos: far below SSDlite's smallest default box."""
    rng = np.random.default_rng(seed)
    side = rng.uniform(6, 20, n)
    ratio = rng.uniform(1.0, 1.3, n)
    x = rng.uniform(0, 400 - 30, n)
    y = rng.uniform(0, 300 - 30, n)
    boxes = np.stack([x, y, x + side, y + side * ratio], axis=1)
    return g.BoxSet(boxes, rng.integers(0, 2, n), np.full(n, 400.0), np.full(n, 300.0), CLASSES, n // 4)


@pytest.mark.parametrize("name,default_at_most,fitted_at_least", [
    ("ssdlite320_mobilenet_v3_large", 0.3, 0.6),  # stride 16 and 32 grids cannot go much further
    ("fasterrcnn_mobilenet_v3_large_320_fpn", 0.1, 0.7),
    ("retinanet_mobilenet_v3_fpn8", 1.0, 0.97),  # stride 8 from 512 px: already good, the fit still helps
])
def test_fit_raises_recall_on_tiny_boxes(name, default_at_most, fitted_at_least):
    boxset = _tiny_boxes()
    layout = g.layout_for(name)
    default = g.best_possible_recall(layout, layout.default_geometry(), boxset)
    fitted = g.fit_geometry(name, boxset, anchors="auto", input_size="auto")
    assert default <= default_at_most
    assert fitted["best_possible_recall"] >= max(fitted_at_least, default)
    # the same count of anchors per location as the default, so a pretrained head keeps its shape
    assert g.anchors_per_location(fitted["anchors"]) == g.anchors_per_location(layout.anchors)
    # and the fitted geometry builds a model that trains a step
    model = build_model(name, classes=CLASSES, weights="none", geometry=fitted)
    assert model.reinitialised == []


def test_fit_anchors_only_keeps_the_input_and_never_loses_recall():
    boxset = _tiny_boxes(seed=1)
    layout = g.layout_for("fasterrcnn_mobilenet_v3_large_320_fpn")
    fitted = g.fit_geometry("fasterrcnn_mobilenet_v3_large_320_fpn", boxset, anchors="auto", input_size="default")
    assert fitted["input"] == layout.input
    assert fitted["best_possible_recall"] >= g.best_possible_recall(layout, layout.default_geometry(), boxset)


def test_input_size_number_and_bad_values():
    boxset = _tiny_boxes(50)
    fitted = g.fit_geometry("ssdlite320_mobilenet_v3_large", boxset, anchors="default", input_size=416)
    assert fitted["input"] == {"fixed_size": 416}
    fitted = g.fit_geometry("fasterrcnn_resnet50_fpn", boxset, anchors="default", input_size=600)
    assert fitted["input"] == {"min_size": 600, "max_size": 1000}
    with pytest.raises(ConfigError, match="input_size"):
        g.fit_geometry("ssdlite320_mobilenet_v3_large", boxset, input_size="huge")
    with pytest.raises(ConfigError, match="anchors"):
        g.fit_geometry("ssdlite320_mobilenet_v3_large", boxset, anchors={"kind": "grid", "sizes": [[8]]})
    with pytest.raises(ConfigError, match="same number of anchors"):
        g.fit_geometry("fasterrcnn_resnet50_fpn", boxset, anchors={
            "sizes": [[16], [32, 48], [64], [128], [256]], "aspect_ratios": [[1.0]] * 5})


def test_explicit_anchors_with_another_count_reinitialise_the_head_and_say_so():
    layout = g.layout_for("retinanet_mobilenet_v3_fpn8")
    anchors = {"kind": "grid", "sizes": [[16 * 2 ** l] for l in range(5)], "aspect_ratios": [[1.0]] * 5}
    model = build_model("retinanet_mobilenet_v3_fpn8", classes=CLASSES, weights="none",
                        geometry={"input": layout.input, "anchors": anchors})
    assert model.reinitialised == ["RetinaNet head (classification and box regression)"]
    assert model.head.classification_head.num_anchors == 1
    model.train()
    losses = model([torch.rand(3, 96, 128)], [{"boxes": torch.tensor([[10.0, 10, 40, 40]]),
                                                "labels": torch.tensor([1])}])
    assert all(torch.isfinite(v) for v in losses.values())


def test_fcos_points_rule_matches_torchvision_matching():
    """For FCOS the recall is torchvision's own assignment: a box is learnable when some point is
    matched to it in FCOS.compute_loss (run here on the real model)."""
    name = "fcos_mobilenet_v3_fpn8"
    layout = g.layout_for(name)
    geometry = {"input": {"min_size": 256, "max_size": 427}, "anchors": layout.anchors}
    model = build_model(name, classes=CLASSES, weights="none", geometry=geometry).train()
    rng = np.random.default_rng(5)
    n = 200
    side = np.exp(rng.uniform(np.log(3), np.log(200), n))
    x, y = rng.uniform(0, 300, n), rng.uniform(0, 180, n)
    boxes = np.stack([x, y, np.minimum(x + side, 399), np.minimum(y + side * rng.uniform(0.5, 2, n), 299)], axis=1)
    boxset = g.BoxSet(boxes, np.zeros(n, np.int64), np.full(n, 400.0), np.full(n, 300.0), ["x"], 1)
    ours = g.best_iou(layout, geometry, g.resize(boxset, geometry["input"])) > 0
    captured = {}
    original = model.head.compute_loss

    def spy(targets, head_outputs, anchors, matched_idxs):
        captured["matched"] = matched_idxs
        return original(targets, head_outputs, anchors, matched_idxs)

    model.head.compute_loss = spy
    theirs = []
    for i in range(n):  # one box per image, so no other box can take its points
        model([torch.rand(3, 300, 400)], [{"boxes": torch.tensor(boxes[i:i + 1], dtype=torch.float32),
                                           "labels": torch.tensor([1])}])
        theirs.append(bool((captured["matched"][0] >= 0).any()))
    np.testing.assert_array_equal(ours, theirs)
    assert 0 < sum(theirs) < n  # the case has boxes both sides of the rule


def test_registry_spec_families_unchanged():
    assert get_spec("fcos_mobilenet_v3_fpn8").family == "fcos"
    assert get_spec("retinanet_mobilenet_v3_fpn8").family == "retinanet"


def test_points_models_count_boxes_spanning_a_finest_cell():
    """FCOS (stride 8 first): a 6 px box that gets a point is still too small (< 8 px); a 12 px one counts."""
    layout = g.layout_for("fcos_resnet18_fpn8")
    geometry = {"input": {"min_size": 128, "max_size": 128}, "anchors": layout.anchors}
    boxes = np.array([[61.0, 61.0, 67.0, 67.0], [58.0, 58.0, 70.0, 70.0]])  # both contain the point (64, 64)
    boxset = g.BoxSet(boxes, np.zeros(2, np.int64), np.full(2, 128.0), np.full(2, 128.0), ["x"], 1)
    resized = g.resize(boxset, geometry["input"])
    assert (g.best_iou(layout, geometry, resized) > 0).all()  # torchvision assigns a point to both
    assert g.matched(layout, geometry, resized).tolist() == [False, True]
    assert g.best_possible_recall(layout, geometry, boxset) == 0.5


def test_crop_runs_cut_crops_at_the_fitted_size_and_predict_larger():
    """Crop training with input_size auto: crops at the fitted size, prediction at CROP_PREDICT_SCALE
    times it (rounded to the padding multiple, never above max_input); other settings are unchanged."""
    boxset = _tiny_boxes()
    plain = g.fit_geometry("fcos_resnet18_fpn8", boxset, anchors="auto", input_size="auto")
    cropped = g.fit_geometry("fcos_resnet18_fpn8", boxset, anchors="auto", input_size="auto", crops=True)
    assert "crop_input" not in plain
    assert cropped["crop_input"] == plain["input"]
    size = plain["input"]["min_size"]
    want = int(round(size * g.CROP_PREDICT_SCALE / 32)) * 32
    assert want > size and cropped["input"] == g.input_spec_for(g.layout_for("fcos_resnet18_fpn8"), want)
    assert cropped["best_possible_recall"] >= plain["best_possible_recall"]
    capped = g.fit_geometry("fcos_resnet18_fpn8", boxset, input_size="auto", crops=True, max_input=size)
    assert capped["input"] == capped["crop_input"] == plain["input"]
    # a number (or default) is the user's own input size: used as it is, for crops and prediction
    fixed = g.fit_geometry("fcos_resnet18_fpn8", boxset, input_size=320, crops=True)
    assert fixed["input"]["min_size"] == 320 and "crop_input" not in fixed
    assert "crops cut at min_size" in g.describe({**cropped, "anchors": cropped["anchors"]})

"""The registry: every entry builds for K classes, trains one step and predicts; weights resolution
goes through the real torchvision loading path with state dicts staged under TORCH_HOME."""

from __future__ import annotations

import os
import time

import pytest
import torch
from torchvision.ops.misc import FrozenBatchNorm2d

from detcore.errors import CheckpointError, ConfigError, WeightsUnavailable
from detcore.models import build_model, get_spec, list_models, weights_file

CLASSES = ["with_mask", "without_mask", "mask_weared_incorrect"]
EXPECTED = {
    "fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v2_custom", "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2", "maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2", "fcos_resnet50_fpn",
    "ssdlite320_mobilenet_v3_large", "fcos_mobilenet_v3_fpn8", "retinanet_mobilenet_v3_fpn8", "fcos_resnet18_fpn8",
}


def _batch(with_masks: bool):
    torch.manual_seed(0)
    images = [torch.rand(3, 64, 80), torch.rand(3, 72, 64)]
    targets = []
    for label in (1, 3):  # model labels are class index + 1: both ends of the range
        t = {"boxes": torch.tensor([[8.0, 10.0, 40.0, 50.0]]), "labels": torch.tensor([label])}
        if with_masks:
            m = torch.zeros(1, 64 if label == 1 else 72, 80 if label == 1 else 64, dtype=torch.uint8)
            m[0, 10:50, 8:40] = 1
            t["masks"] = m
        targets.append(t)
    return images, targets


def test_registry_has_every_family():
    assert {s.name for s in list_models()} == EXPECTED
    assert get_spec("maskrcnn_resnet50_fpn").has_masks
    assert not get_spec("fasterrcnn_mobilenet_v2_custom").supports("coco")
    with pytest.raises(ConfigError, match="unknown model"):
        get_spec("yolo")


@pytest.mark.parametrize("spec", [pytest.param(s, id=s.name, marks=[pytest.mark.slow] if s.heavy else [])
                                  for s in list_models()])
def test_each_model_trains_one_step_and_predicts(spec):
    model = build_model(spec.name, classes=CLASSES, weights="none", min_size=64, max_size=96)
    images, targets = _batch(spec.has_masks)
    model.train()
    losses = model(images, targets)
    total = sum(losses.values())
    assert torch.isfinite(total)
    params = [p for p in model.parameters() if p.requires_grad]
    total.backward()
    with_grad = [p for p in params if p.grad is not None and bool(p.grad.abs().sum() > 0)]
    assert len(with_grad) > len(params) // 2  # the loss reaches backbone and heads
    assert all(torch.isfinite(p.grad).all() for p in with_grad)
    torch.optim.SGD(params, lr=0.01).step()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for o in out:
        assert o["boxes"].shape[1] == 4
        # model labels are 0..K; 0 is background, which R-CNN heads never emit and the one-stage heads
        # (RetinaNet, FCOS, SSD score it as a class) can — the Predictor and the export graph drop it
        lowest = 1 if spec.family in ("faster_rcnn", "mask_rcnn") else 0
        assert len(o["labels"]) == 0 or (o["labels"].min() >= lowest and o["labels"].max() <= len(CLASSES))
        if spec.has_masks:
            assert "masks" in o


def _class_outputs(model, spec) -> int:
    """How many classes the head scores (K + 1 for every family)."""
    if spec.family in ("faster_rcnn", "mask_rcnn"):
        return model.roi_heads.box_predictor.cls_score.out_features
    head = model.head.classification_head
    return head.num_columns if spec.family == "ssd" else head.num_classes


@pytest.mark.parametrize("name", ["fasterrcnn_mobilenet_v3_large_320_fpn", "ssdlite320_mobilenet_v3_large",
                                  "fasterrcnn_mobilenet_v2_custom"])
def test_heads_sized_k_plus_one_and_scratch_batchnorm_trains(name):
    spec = get_spec(name)
    model = build_model(name, classes=CLASSES, weights="none", min_size=64)
    assert _class_outputs(model, spec) == len(CLASSES) + 1
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(p.requires_grad for m in bns for p in m.parameters())


def _stage(weights_enum, state_dict) -> None:
    path = weights_file(weights_enum)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, path)


def test_missing_weights_offline_names_file_and_folder_fast():
    spec = get_spec("fasterrcnn_mobilenet_v3_large_fpn")
    t0 = time.monotonic()
    with pytest.raises(WeightsUnavailable) as err:
        build_model(spec.name, classes=CLASSES, weights="coco")
    assert time.monotonic() - t0 < 5  # looked on disk, never tried the network
    expected = weights_file(spec.coco_weights)
    assert expected.name == "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"
    assert expected.name in str(err.value)
    assert os.path.join(os.environ["TORCH_HOME"], "hub", "checkpoints") in str(err.value)
    with pytest.raises(WeightsUnavailable, match="mobilenet_v3_large-8738ca79.pth"):
        build_model(spec.name, classes=CLASSES, weights="backbone")


def test_staged_coco_weights_load_heads_replaced_and_frozen_layers_stay_frozen():
    import torchvision.models.detection as tvd

    spec = get_spec("fasterrcnn_mobilenet_v3_large_320_fpn")
    official = tvd.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=91)
    state = official.state_dict()
    state["backbone.body.0.0.weight"].fill_(0.125)  # a value we can recognise after loading
    state["rpn.head.conv.0.0.weight"].fill_(-0.25)
    _stage(spec.coco_weights, state)

    model = build_model(spec.name, classes=CLASSES, weights="coco", trainable_backbone_layers=2, min_size=64)
    assert torch.all(model.backbone.body["0"][0].weight == 0.125)
    assert torch.all(model.rpn.head.conv[0][0].weight == -0.25)
    assert model.roi_heads.box_predictor.cls_score.out_features == len(CLASSES) + 1  # COCO's 91 replaced
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert "backbone.body.0.0.weight" in frozen  # the stem is outside the 2 trainable blocks

    images, targets = _batch(False)
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    head_before = model.roi_heads.box_head.fc6.weight.detach().clone()
    sum(model(images, targets).values()).backward()
    opt.step()
    assert not torch.equal(model.roi_heads.box_head.fc6.weight, head_before)  # trainable parts did move
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), f"{name} changed although frozen"



def test_staged_backbone_weights_load_into_ssdlite():
    import torchvision.models as tvm

    spec = get_spec("ssdlite320_mobilenet_v3_large")
    state = tvm.mobilenet_v3_large().state_dict()
    state["features.0.0.weight"].fill_(0.5)
    _stage(spec.backbone_weights, state)
    model = build_model(spec.name, classes=CLASSES, weights="backbone")
    assert torch.all(model.backbone.features[0][0][0].weight == 0.5)
    assert _class_outputs(model, spec) == len(CLASSES) + 1


@pytest.mark.parametrize("name", ["fcos_mobilenet_v3_fpn8", "retinanet_mobilenet_v3_fpn8"])
def test_light_stride8_models_take_staged_imagenet_backbones(name):
    """cpu-real trains them from scratch here, but with the ImageNet file on disk they start from it:
    backbone loaded, frozen BatchNorm, the first stages frozen, the FPN and heads trainable."""
    import torchvision.models as tvm
    from torchvision.ops.misc import FrozenBatchNorm2d

    spec = get_spec(name)
    assert not spec.supports("coco") and spec.supports("backbone")
    state = tvm.mobilenet_v3_large().state_dict()
    state["features.0.0.weight"].fill_(0.5)
    _stage(spec.backbone_weights, state)
    model = build_model(name, classes=CLASSES, weights="backbone", min_size=96, max_size=128)
    body = model.backbone.body
    assert torch.all(body["0"][0].weight == 0.5)
    assert isinstance(body["0"][1], FrozenBatchNorm2d)
    assert not body["0"][0].weight.requires_grad and body["16"][0].weight.requires_grad
    images, targets = _batch(False)
    model.train()
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(ConfigError, match="no 'coco' weights"):
        build_model(name, classes=CLASSES, weights="coco")


def test_local_pth_loads_matching_layers_and_refuses_garbage(tmp_path):
    source = build_model("fasterrcnn_mobilenet_v3_large_320_fpn", classes=CLASSES, weights="none")
    path = tmp_path / "mine.pth"
    torch.save({"model": source.state_dict(), "epoch": 3}, path)  # one of our checkpoints
    model = build_model("fasterrcnn_mobilenet_v3_large_320_fpn", classes=CLASSES, weights=str(path))
    for (name, a), b in zip(source.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name

    other = build_model("fasterrcnn_mobilenet_v3_large_320_fpn", classes=["one"], weights=str(path))
    assert other.roi_heads.box_predictor.cls_score.out_features == 2  # head of another K skipped, not forced
    assert torch.equal(other.backbone.body["0"][0].weight, source.backbone.body["0"][0].weight)

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        build_model("ssdlite320_mobilenet_v3_large", classes=CLASSES, weights=str(tmp_path / "junk.pth"))
    with pytest.raises(CheckpointError, match="no parameter matches"):
        build_model("ssdlite320_mobilenet_v3_large", classes=CLASSES, weights=str(path))
    with pytest.raises(ConfigError, match="neither"):
        build_model("ssdlite320_mobilenet_v3_large", classes=CLASSES, weights="imagenet")
    with pytest.raises(ConfigError, match="has no 'coco' weights"):
        build_model("fasterrcnn_mobilenet_v2_custom", classes=CLASSES, weights="coco")

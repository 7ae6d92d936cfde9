"""The detector registry: name → builder with heads sized for K dataset classes.

What each model is (title, family, weights it has) is plain data in detcore/catalog.py, readable
without torch; this module joins each entry with its torchvision builder and Weights enums.

Every family gets ``num_classes = K + 1``: model label ``i + 1`` is class ``i`` and label 0 is
background — also for RetinaNet, FCOS and SSD, whose losses would accept K; one convention
everywhere means the dataset and the Predictor never ask which family they talk to.

Weights (one resolver, :func:`_resolve_weights`):
  - ``coco``     the detector's COCO weights, class-dependent heads replaced for K + 1;
  - ``backbone`` ImageNet backbone only, detector layers from scratch;
  - ``none``     everything from scratch, with trainable BatchNorm (torchvision picks
                 ``nn.BatchNorm2d`` instead of ``FrozenBatchNorm2d`` when nothing is pretrained);
  - a path to a local ``.pth`` (a state dict or one of our checkpoints), loaded where shapes match.
Offline, a missing pretrained file is a :class:`WeightsUnavailable` naming the exact file and the
folder to put it in. We look on disk *before* torchvision would try to download, so nothing hangs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models import detection as tvd
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

from detcore.catalog import MODELS, WEIGHT_MODES, ModelInfo, model_info
from detcore.errors import CheckpointError, ConfigError, WeightsUnavailable
from detcore.geometry import anchors_per_location, layout_for

# Set to 1 on a machine with internet access to let torchvision download missing weights.
ALLOW_DOWNLOAD_ENV = "DETBOARD_ALLOW_DOWNLOAD"


@dataclass(frozen=True)
class ModelSpec:
    """A catalog entry (``info``) with its builder and torchvision Weights enums."""

    info: ModelInfo
    builder: Callable[..., nn.Module] = field(repr=False)
    coco_weights: Any = None
    backbone_weights: Any = None

    name = property(lambda self: self.info.name)
    title = property(lambda self: self.info.title)
    family = property(lambda self: self.info.family)
    has_masks = property(lambda self: self.info.has_masks)
    heavy = property(lambda self: self.info.heavy)
    fixed_size = property(lambda self: self.info.fixed_size)

    def as_dict(self) -> dict:
        return self.info.as_dict()

    def supports(self, mode: str) -> bool:
        return self.info.supports(mode)


def _mobilenet_v2_custom(*, weights=None, weights_backbone=None, num_classes: int, **kwargs) -> nn.Module:
    """The finetuning tutorial's model B: MobileNetV2 features as a single-map backbone, its own
    5-size x 3-ratio anchors and a 7x7 RoIAlign over map '0'."""
    if weights is not None:
        raise ConfigError("weights", "the custom MobileNetV2 Faster R-CNN has no COCO weights; use backbone or none")
    kwargs.pop("trainable_backbone_layers", None)
    backbone = tvm.mobilenet_v2(weights=weights_backbone).features
    backbone.out_channels = 1280
    anchors = tvd.anchor_utils.AnchorGenerator(sizes=((32, 64, 128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),))
    pooler = tvm.detection.faster_rcnn.MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    return tvd.FasterRCNN(backbone, num_classes=num_classes, rpn_anchor_generator=anchors,
                          box_roi_pool=pooler, **kwargs)


LITE_CHANNELS = 64  # FPN and head width of the light CPU models
LITE_HEAD_CONVS = 2  # conv layers per head branch (torchvision's default is 4)


def _mobilenet_v3_fpn8(*, weights_backbone=None, trainable_backbone_layers: int | None = None):
    """MobileNetV3-Large features with a light FPN over strides 8, 16 and 32 plus P6/P7 (strides 64,
    128): torchvision's MobileNetV3 FPN starts at stride 32, too coarse for small objects."""
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7
    from torchvision.ops.misc import FrozenBatchNorm2d

    pretrained = weights_backbone is not None
    norm = FrozenBatchNorm2d if pretrained else partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    features = tvm.mobilenet_v3_large(weights=weights_backbone, norm_layer=norm).features
    stages = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    if pretrained:  # freeze the first stages as torchvision does (3 trainable stages by default)
        trainable = 3 if trainable_backbone_layers is None else trainable_backbone_layers
        freeze_before = len(features) if trainable == 0 else stages[len(stages) - trainable]
        for block in features[:freeze_before]:
            block.requires_grad_(False)
    returned = [2, 3, len(stages) - 1]  # strides 8, 16, 32
    return BackboneWithFPN(features, {str(stages[k]): str(v) for v, k in enumerate(returned)},
                           [features[stages[k]].out_channels for k in returned], LITE_CHANNELS,
                           extra_blocks=LastLevelP6P7(LITE_CHANNELS, LITE_CHANNELS))


def _fcos_mobilenet_v3_fpn8(*, weights=None, weights_backbone=None, num_classes: int,
                            trainable_backbone_layers: int | None = None, **kwargs) -> nn.Module:
    """FCOS (anchor-free) on the stride-8 MobileNetV3 FPN with a 2-conv, 64-channel head."""
    if weights is not None:
        raise ConfigError("weights", "the light FCOS has no COCO weights; use backbone or none")
    backbone = _mobilenet_v3_fpn8(weights_backbone=weights_backbone,
                                  trainable_backbone_layers=trainable_backbone_layers)
    anchors = tvd.anchor_utils.AnchorGenerator(((8,), (16,), (32,), (64,), (128,)), ((1.0,),) * 5)
    head = tvd.fcos.FCOSHead(LITE_CHANNELS, 1, num_classes, num_convs=LITE_HEAD_CONVS)
    kwargs = {"min_size": 512, "max_size": 853, **kwargs}
    return tvd.FCOS(backbone, num_classes, anchor_generator=anchors, head=head, **kwargs)


def _resnet18_fpn8(*, weights_backbone=None, trainable_backbone_layers: int | None = None):
    """ResNet-18 with a light FPN over strides 8, 16, 32 (+ P6/P7). Dense 3x3 convolutions: on a
    CPU it trains about as fast per image as MobileNetV3-Large (which spends its time in depthwise
    and squeeze-excitation layers); the cpu-real notes in detcore/train/presets.py have the measurements."""
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7
    from torchvision.ops.misc import FrozenBatchNorm2d

    pretrained = weights_backbone is not None
    body = tvm.resnet18(weights=weights_backbone, norm_layer=FrozenBatchNorm2d if pretrained else nn.BatchNorm2d)
    if pretrained:
        trainable = 3 if trainable_backbone_layers is None else trainable_backbone_layers
        keep = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable]
        for name, param in body.named_parameters():
            if not any(name.startswith(k) for k in keep):
                param.requires_grad_(False)
    return BackboneWithFPN(body, {"layer2": "0", "layer3": "1", "layer4": "2"}, [128, 256, 512], LITE_CHANNELS,
                           extra_blocks=LastLevelP6P7(LITE_CHANNELS, LITE_CHANNELS))


def _fcos_resnet18_fpn8(*, weights=None, weights_backbone=None, num_classes: int,
                        trainable_backbone_layers: int | None = None, **kwargs) -> nn.Module:
    """FCOS (anchor-free) on the stride-8 ResNet-18 FPN with a 2-conv, 64-channel head."""
    if weights is not None:
        raise ConfigError("weights", "the light FCOS has no COCO weights; use backbone or none")
    backbone = _resnet18_fpn8(weights_backbone=weights_backbone, trainable_backbone_layers=trainable_backbone_layers)
    anchors = tvd.anchor_utils.AnchorGenerator(((8,), (16,), (32,), (64,), (128,)), ((1.0,),) * 5)
    head = tvd.fcos.FCOSHead(LITE_CHANNELS, 1, num_classes, num_convs=LITE_HEAD_CONVS)
    kwargs = {"min_size": 512, "max_size": 853, **kwargs}
    return tvd.FCOS(backbone, num_classes, anchor_generator=anchors, head=head, **kwargs)


def _retinanet_head(in_channels: int, num_anchors: int, num_classes: int, convs: int) -> nn.Module:
    head = tvd.retinanet.RetinaNetHead(in_channels, num_anchors, num_classes, norm_layer=partial(nn.GroupNorm, 16))
    head.classification_head.conv = head.classification_head.conv[:convs]
    head.regression_head.conv = head.regression_head.conv[:convs]
    return head


def _retinanet_mobilenet_v3_fpn8(*, weights=None, weights_backbone=None, num_classes: int,
                                 trainable_backbone_layers: int | None = None, **kwargs) -> nn.Module:
    """RetinaNet on the stride-8 MobileNetV3 FPN with a 2-conv, 64-channel GroupNorm head."""
    if weights is not None:
        raise ConfigError("weights", "the light RetinaNet has no COCO weights; use backbone or none")
    backbone = _mobilenet_v3_fpn8(weights_backbone=weights_backbone,
                                  trainable_backbone_layers=trainable_backbone_layers)
    default = layout_for("retinanet_mobilenet_v3_fpn8").anchors
    anchors = tvd.anchor_utils.AnchorGenerator(tuple(tuple(s) for s in default["sizes"]),
                                               tuple(tuple(r) for r in default["aspect_ratios"]))
    head = _retinanet_head(LITE_CHANNELS, anchors.num_anchors_per_location()[0], num_classes, LITE_HEAD_CONVS)
    kwargs = {"min_size": 512, "max_size": 853, **kwargs}
    return tvd.RetinaNet(backbone, num_classes, anchor_generator=anchors, head=head, **kwargs)


def _builders() -> dict[str, tuple[Callable[..., nn.Module], Any, Any]]:
    """name → (builder, COCO weights enum or None, backbone weights enum or None)."""
    R50, MV3 = tvm.ResNet50_Weights.IMAGENET1K_V1, tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V1
    return {
        "fasterrcnn_resnet50_fpn": (tvd.fasterrcnn_resnet50_fpn, tvd.FasterRCNN_ResNet50_FPN_Weights.COCO_V1, R50),
        "fasterrcnn_resnet50_fpn_v2": (tvd.fasterrcnn_resnet50_fpn_v2, tvd.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
                                       R50),
        "fasterrcnn_mobilenet_v3_large_fpn": (tvd.fasterrcnn_mobilenet_v3_large_fpn,
                                              tvd.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1, MV3),
        "fasterrcnn_mobilenet_v3_large_320_fpn": (tvd.fasterrcnn_mobilenet_v3_large_320_fpn,
                                                  tvd.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1, MV3),
        "fasterrcnn_mobilenet_v2_custom": (_mobilenet_v2_custom, None, tvm.MobileNet_V2_Weights.IMAGENET1K_V1),
        "retinanet_resnet50_fpn": (tvd.retinanet_resnet50_fpn, tvd.RetinaNet_ResNet50_FPN_Weights.COCO_V1, R50),
        "retinanet_resnet50_fpn_v2": (tvd.retinanet_resnet50_fpn_v2, tvd.RetinaNet_ResNet50_FPN_V2_Weights.COCO_V1,
                                      tvm.ResNet50_Weights.IMAGENET1K_V2),
        "maskrcnn_resnet50_fpn": (tvd.maskrcnn_resnet50_fpn, tvd.MaskRCNN_ResNet50_FPN_Weights.COCO_V1, R50),
        "maskrcnn_resnet50_fpn_v2": (tvd.maskrcnn_resnet50_fpn_v2, tvd.MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1, R50),
        "fcos_resnet50_fpn": (tvd.fcos_resnet50_fpn, tvd.FCOS_ResNet50_FPN_Weights.COCO_V1, R50),
        "ssdlite320_mobilenet_v3_large": (tvd.ssdlite320_mobilenet_v3_large,
                                          tvd.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1, MV3),
        "fcos_mobilenet_v3_fpn8": (_fcos_mobilenet_v3_fpn8, None, MV3),
        "retinanet_mobilenet_v3_fpn8": (_retinanet_mobilenet_v3_fpn8, None, MV3),
        "fcos_resnet18_fpn8": (_fcos_resnet18_fpn8, None, tvm.ResNet18_Weights.IMAGENET1K_V1),
    }


def _specs() -> list[ModelSpec]:
    builders = _builders()
    return [ModelSpec(info, *builders[info.name]) for info in MODELS]


_REGISTRY: dict[str, ModelSpec] = {s.name: s for s in _specs()}


def list_models() -> list[ModelSpec]:
    return list(_REGISTRY.values())


def get_spec(name: str) -> ModelSpec:
    return _REGISTRY[model_info(name).name]  # an unknown name is the catalog's ConfigError


def weights_file(weights_enum: Any) -> Path:
    """Where torchvision caches this Weights entry: ``$TORCH_HOME/hub/checkpoints/<official name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights_enum.url).path)


def _require_on_disk(weights_enum: Any) -> None:
    path = weights_file(weights_enum)
    if path.is_file() or os.environ.get(ALLOW_DOWNLOAD_ENV) == "1":
        return
    raise WeightsUnavailable(path, f"pretrained weights {weights_enum} are not on disk and cannot be downloaded "
                                   f"here; put the file {path.name} into the folder {path.parent}/ "
                                   f"(from {weights_enum.url}) or train with --weights none")


def _resolve_weights(spec: ModelSpec, weights: str) -> tuple[Any, Any, Path | None]:
    """Map a weights setting to (detector enum, backbone enum, local path)."""
    if weights in WEIGHT_MODES:
        if not spec.supports(weights):
            raise ConfigError("weights", f"{spec.name} has no {weights!r} weights; "
                                         f"choose one of {spec.info.weights} or a local .pth")
        detector = spec.coco_weights if weights == "coco" else None
        backbone = spec.backbone_weights if weights == "backbone" else None
        for enum in (detector, backbone):
            if enum is not None:
                _require_on_disk(enum)
        return detector, backbone, None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError("weights", f"{weights!r} is neither coco|backbone|none nor an existing .pth file")
    return None, None, path


def require_weights(name: str, weights: str) -> None:
    """Fail fast (before any data is read) when ``weights`` for model ``name`` cannot be had."""
    _resolve_weights(get_spec(name), weights)


def _replace_heads(model: nn.Module, spec: ModelSpec, num_classes: int) -> None:
    """Swap every class-dependent layer of a COCO-trained detector for a fresh one sized num_classes."""
    if spec.family in ("faster_rcnn", "mask_rcnn"):
        box = model.roi_heads.box_predictor
        model.roi_heads.box_predictor = FastRCNNPredictor(box.cls_score.in_features, num_classes)
        if spec.family == "mask_rcnn":  # the Penn-Fudan tutorial's mask head, 256 hidden channels
            in_ch = model.roi_heads.mask_predictor.conv5_mask.in_channels
            model.roi_heads.mask_predictor = MaskRCNNPredictor(in_ch, 256, num_classes)
    elif spec.family in ("retinanet", "fcos"):
        old = model.head.classification_head
        in_ch = old.conv[0][0].in_channels if isinstance(old.conv[0], nn.Sequential) else old.conv[0].in_channels
        num_anchors = model.anchor_generator.num_anchors_per_location()[0]
        if spec.family == "retinanet":
            norm = partial(nn.GroupNorm, 32) if spec.name.endswith("_v2") else None
            model.head.classification_head = tvd.retinanet.RetinaNetClassificationHead(
                in_ch, num_anchors, num_classes, norm_layer=norm)
        else:
            model.head.classification_head = tvd.fcos.FCOSClassificationHead(in_ch, num_anchors, num_classes)
    elif spec.family == "ssd":
        in_channels = tvd._utils.retrieve_out_channels(model.backbone, (320, 320))
        model.head.classification_head = tvd.ssdlite.SSDLiteClassificationHead(
            in_channels, model.anchor_generator.num_anchors_per_location(), num_classes,
            partial(nn.BatchNorm2d, eps=0.001, momentum=0.03))
    else:  # pragma: no cover - a new family must say how its heads are replaced
        raise NotImplementedError(spec.family)
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes


def load_local_weights(model: nn.Module, path: Path) -> int:
    """Load a local state dict (or our checkpoint's ``model``) where names and shapes match.

    Class-dependent heads of a different class count are skipped; a file that matches nothing
    is refused, because silently training from scratch would be a wrong result.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, pickle with code, not a torch file
        raise CheckpointError(path, f"cannot load as a weights-only state dict: {e}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(path, "is not a state dict")
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and getattr(v, "shape", None) == own[k].shape}
    if not usable:
        raise CheckpointError(path, "no parameter matches this model's architecture")
    model.load_state_dict(usable, strict=False)
    return len(usable)


def anchor_generator_for(anchors: dict) -> nn.Module:
    """The torchvision module that makes ``anchors`` (a detcore.geometry specification)."""
    if anchors["kind"] == "ssd":
        return tvd.anchor_utils.DefaultBoxGenerator([list(r) for r in anchors["aspect_ratios"]],
                                                    scales=[float(x) for x in anchors["scales"]])
    ratios = anchors.get("aspect_ratios") or [[1.0] for _ in anchors["sizes"]]
    return tvd.anchor_utils.AnchorGenerator(tuple(tuple(float(x) for x in s) for s in anchors["sizes"]),
                                            tuple(tuple(float(x) for x in r) for r in ratios))


def apply_geometry(model: nn.Module, spec: ModelSpec, geometry: dict, num_classes: int) -> list[str]:
    """Set the model's input size and anchors to ``geometry`` (detcore.geometry's JSON form).

    Returns the parts re-initialised because the number of anchors per location changed (a head
    predicts a fixed number per location); fitted anchors keep the count, so nothing is.
    """
    layout = layout_for(spec.name)
    inp, t = geometry["input"], model.transform
    if "fixed_size" in inp:
        if "fixed_size" not in layout.input:
            raise ConfigError("geometry", f"{spec.name} resizes by min_size/max_size, not to a fixed square")
        n = int(inp["fixed_size"])
        t.fixed_size, t.min_size, t.max_size = (n, n), (n,), n
    else:
        if "fixed_size" in layout.input:
            raise ConfigError("geometry", f"{spec.name} resizes every image to a fixed square; give fixed_size")
        t.min_size, t.max_size = (int(inp["min_size"]),), int(inp["max_size"])
    anchors = geometry["anchors"]
    if anchors["kind"] != layout.kind:
        raise ConfigError("geometry", f"{spec.name} uses {layout.kind!r} anchors, not {anchors['kind']!r}")
    generator = anchor_generator_for(anchors)
    new_count = anchors_per_location(anchors)
    reinitialised = []
    if spec.family in ("faster_rcnn", "mask_rcnn"):
        rpn = model.rpn
        if rpn.anchor_generator.num_anchors_per_location() != new_count:
            rpn.head = tvd.rpn.RPNHead(rpn.head.conv[0][0].in_channels, new_count[0], conv_depth=len(rpn.head.conv))
            reinitialised.append("RPN head (objectness and box deltas)")
        rpn.anchor_generator = generator
    elif spec.family == "retinanet":
        if model.anchor_generator.num_anchors_per_location() != new_count:
            cls = model.head.classification_head
            first = cls.conv[0][0]
            norm = cls.conv[0][1]
            norm_layer = partial(nn.GroupNorm, norm.num_groups) if isinstance(norm, nn.GroupNorm) else None
            model.head = tvd.retinanet.RetinaNetHead(first.in_channels, new_count[0], num_classes, norm_layer=norm_layer)
            if len(cls.conv) != len(model.head.classification_head.conv):
                model.head.classification_head.conv = model.head.classification_head.conv[:len(cls.conv)]
                model.head.regression_head.conv = model.head.regression_head.conv[:len(cls.conv)]
            reinitialised.append("RetinaNet head (classification and box regression)")
        model.anchor_generator = generator
    elif spec.family == "ssd":
        if model.anchor_generator.num_anchors_per_location() != new_count:
            in_channels = tvd._utils.retrieve_out_channels(model.backbone, (320, 320))
            model.head = tvd.ssdlite.SSDLiteHead(in_channels, new_count, num_classes,
                                                 partial(nn.BatchNorm2d, eps=0.001, momentum=0.03))
            reinitialised.append("SSDlite head (classification and box regression)")
        model.anchor_generator = generator
    elif spec.family == "fcos":
        if anchors["sizes"] != layout.anchors["sizes"]:
            raise ConfigError("anchors", "FCOS has no anchors to change; its points follow the strides")
    return reinitialised


def build_model(name: str, *, classes: list[str], weights: str = "none", min_size: int | None = None,
                max_size: int | None = None, trainable_backbone_layers: int | None = None,
                geometry: dict | None = None, **options: Any) -> nn.Module:
    """Build detector ``name`` for ``classes`` (num_classes = len(classes) + 1).

    ``min_size``/``max_size`` set the internal resize (keep tiny test images tiny; SSD ignores
    them, its input is fixed at 320). ``geometry`` (detcore.geometry's JSON form: input size and
    anchors, e.g. fitted to the data) replaces both the resize and the anchors.
    ``trainable_backbone_layers`` only applies to pretrained weights.
    Extra ``options`` go to the torchvision builder (e.g. ``box_detections_per_img``).
    """
    spec = get_spec(name)
    if not classes:
        raise ConfigError("classes", "a detector needs at least one class")
    num_classes = len(classes) + 1
    detector_w, backbone_w, local = _resolve_weights(spec, weights)
    kwargs = dict(options)
    if spec.fixed_size is None:
        kwargs.update({k: v for k, v in (("min_size", min_size), ("max_size", max_size)) if v is not None})
    if trainable_backbone_layers is not None and (detector_w or backbone_w):
        kwargs["trainable_backbone_layers"] = trainable_backbone_layers
    if detector_w is not None:
        model = spec.builder(weights=detector_w, weights_backbone=None, **kwargs)
        _replace_heads(model, spec, num_classes)
    else:
        model = spec.builder(weights=None, weights_backbone=backbone_w, num_classes=num_classes, **kwargs)
    if geometry is not None:
        model.reinitialised = apply_geometry(model, spec, geometry, num_classes)  # before local weights load
    if local is not None:
        load_local_weights(model, local)
    return model

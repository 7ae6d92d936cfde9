"""The detector registry: name → builder with heads sized for K dataset classes (DESIGN.md §2, §7).

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

from detcore.errors import CheckpointError, ConfigError, WeightsUnavailable

WEIGHT_MODES = ("coco", "backbone", "none")
# Set to 1 on a machine with internet access to let torchvision download missing weights.
ALLOW_DOWNLOAD_ENV = "DETBOARD_ALLOW_DOWNLOAD"


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry. ``coco_weights``/``backbone_weights`` are torchvision Weights enums."""

    name: str
    title: str
    family: str  # "faster_rcnn" | "mask_rcnn" | "retinanet" | "fcos" | "ssd"
    builder: Callable[..., nn.Module] = field(repr=False)
    coco_weights: Any = None
    backbone_weights: Any = None
    has_masks: bool = False
    heavy: bool = False  # ResNet-50 class: slow on a CPU
    fixed_size: int | None = None  # SSD resizes every image to this square; min/max_size ignored

    def as_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "family": self.family, "has_masks": self.has_masks,
                "heavy": self.heavy, "weights": [m for m in WEIGHT_MODES if self.supports(m)]}

    def supports(self, mode: str) -> bool:
        return {"coco": self.coco_weights is not None, "backbone": self.backbone_weights is not None,
                "none": True}[mode]


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


def _specs() -> list[ModelSpec]:
    R50, MV3 = tvm.ResNet50_Weights.IMAGENET1K_V1, tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V1
    return [
        ModelSpec("fasterrcnn_resnet50_fpn", "Faster R-CNN ResNet-50 FPN", "faster_rcnn", tvd.fasterrcnn_resnet50_fpn,
                  tvd.FasterRCNN_ResNet50_FPN_Weights.COCO_V1, R50, heavy=True),
        ModelSpec("fasterrcnn_resnet50_fpn_v2", "Faster R-CNN ResNet-50 FPN v2", "faster_rcnn",
                  tvd.fasterrcnn_resnet50_fpn_v2, tvd.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1, R50, heavy=True),
        ModelSpec("fasterrcnn_mobilenet_v3_large_fpn", "Faster R-CNN MobileNetV3-Large FPN", "faster_rcnn",
                  tvd.fasterrcnn_mobilenet_v3_large_fpn, tvd.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1, MV3),
        ModelSpec("fasterrcnn_mobilenet_v3_large_320_fpn", "Faster R-CNN MobileNetV3-Large 320 FPN", "faster_rcnn",
                  tvd.fasterrcnn_mobilenet_v3_large_320_fpn,
                  tvd.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1, MV3),
        ModelSpec("fasterrcnn_mobilenet_v2_custom", "Faster R-CNN on MobileNetV2 features (tutorial)",
                  "faster_rcnn", _mobilenet_v2_custom, None, tvm.MobileNet_V2_Weights.IMAGENET1K_V1),
        ModelSpec("retinanet_resnet50_fpn", "RetinaNet ResNet-50 FPN", "retinanet", tvd.retinanet_resnet50_fpn,
                  tvd.RetinaNet_ResNet50_FPN_Weights.COCO_V1, R50, heavy=True),
        ModelSpec("retinanet_resnet50_fpn_v2", "RetinaNet ResNet-50 FPN v2", "retinanet",
                  tvd.retinanet_resnet50_fpn_v2, tvd.RetinaNet_ResNet50_FPN_V2_Weights.COCO_V1,
                  tvm.ResNet50_Weights.IMAGENET1K_V2, heavy=True),
        ModelSpec("maskrcnn_resnet50_fpn", "Mask R-CNN ResNet-50 FPN", "mask_rcnn", tvd.maskrcnn_resnet50_fpn,
                  tvd.MaskRCNN_ResNet50_FPN_Weights.COCO_V1, R50, has_masks=True, heavy=True),
        ModelSpec("maskrcnn_resnet50_fpn_v2", "Mask R-CNN ResNet-50 FPN v2", "mask_rcnn", tvd.maskrcnn_resnet50_fpn_v2,
                  tvd.MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1, R50, has_masks=True, heavy=True),
        ModelSpec("fcos_resnet50_fpn", "FCOS ResNet-50 FPN", "fcos", tvd.fcos_resnet50_fpn,
                  tvd.FCOS_ResNet50_FPN_Weights.COCO_V1, R50, heavy=True),
        ModelSpec("ssdlite320_mobilenet_v3_large", "SSDlite 320 MobileNetV3-Large", "ssd",
                  tvd.ssdlite320_mobilenet_v3_large, tvd.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1, MV3,
                  fixed_size=320),
    ]


_REGISTRY: dict[str, ModelSpec] = {s.name: s for s in _specs()}


def list_models() -> list[ModelSpec]:
    return list(_REGISTRY.values())


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError("model", f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


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
                                         f"choose one of {spec.as_dict()['weights']} or a local .pth")
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


def build_model(name: str, *, classes: list[str], weights: str = "none", min_size: int | None = None,
                max_size: int | None = None, trainable_backbone_layers: int | None = None,
                **options: Any) -> nn.Module:
    """Build detector ``name`` for ``classes`` (num_classes = len(classes) + 1).

    ``min_size``/``max_size`` set the internal resize (keep tiny test images tiny; SSD ignores
    them, its input is fixed at 320). ``trainable_backbone_layers`` only applies to pretrained weights.
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
    if local is not None:
        load_local_weights(model, local)
    return model

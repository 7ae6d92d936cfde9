"""The model registry as plain data: what each detector is, without importing torch or torchvision.

The app's Train form, ``train --list-models`` and config validation of the model name read this
table; ``detcore.models`` joins each row with its torchvision builder and weights (a test checks
the two agree). Adding a model: a row here and a builder entry in detcore/models.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from detcore.errors import ConfigError

WEIGHT_MODES = ("coco", "backbone", "none")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    title: str
    family: str  # "faster_rcnn" | "mask_rcnn" | "retinanet" | "fcos" | "ssd"
    coco: bool = True  # has COCO detector weights
    backbone: bool = True  # has ImageNet backbone weights
    has_masks: bool = False
    heavy: bool = False  # ResNet-50 class: slow on a CPU
    fixed_size: int | None = None  # SSD resizes every image to this square; min/max_size ignored

    @property
    def batch_invariant(self) -> bool:
        """Whether an image's detections are the same alone and in a batch. A fixed-size model (SSD)
        resizes every image to one square; the others pad a batch to its largest image, which changes
        the features near the border of the smaller ones — so they predict one image at a time."""
        return self.fixed_size is not None

    @property
    def weights(self) -> list[str]:
        """The weight modes this model supports, in WEIGHT_MODES order."""
        return [m for m in WEIGHT_MODES if self.supports(m)]

    def supports(self, mode: str) -> bool:
        return {"coco": self.coco, "backbone": self.backbone, "none": True}[mode]

    def as_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "family": self.family, "has_masks": self.has_masks,
                "heavy": self.heavy, "weights": self.weights}


MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("fasterrcnn_resnet50_fpn", "Faster R-CNN ResNet-50 FPN", "faster_rcnn", heavy=True),
    ModelInfo("fasterrcnn_resnet50_fpn_v2", "Faster R-CNN ResNet-50 FPN v2", "faster_rcnn", heavy=True),
    ModelInfo("fasterrcnn_mobilenet_v3_large_fpn", "Faster R-CNN MobileNetV3-Large FPN", "faster_rcnn"),
    ModelInfo("fasterrcnn_mobilenet_v3_large_320_fpn", "Faster R-CNN MobileNetV3-Large 320 FPN", "faster_rcnn"),
    ModelInfo("fasterrcnn_mobilenet_v2_custom", "Faster R-CNN on MobileNetV2 features (tutorial)", "faster_rcnn",
              coco=False),
    ModelInfo("retinanet_resnet50_fpn", "RetinaNet ResNet-50 FPN", "retinanet", heavy=True),
    ModelInfo("retinanet_resnet50_fpn_v2", "RetinaNet ResNet-50 FPN v2", "retinanet", heavy=True),
    ModelInfo("maskrcnn_resnet50_fpn", "Mask R-CNN ResNet-50 FPN", "mask_rcnn", has_masks=True, heavy=True),
    ModelInfo("maskrcnn_resnet50_fpn_v2", "Mask R-CNN ResNet-50 FPN v2", "mask_rcnn", has_masks=True, heavy=True),
    ModelInfo("fcos_resnet50_fpn", "FCOS ResNet-50 FPN", "fcos", heavy=True),
    ModelInfo("ssdlite320_mobilenet_v3_large", "SSDlite 320 MobileNetV3-Large", "ssd", fixed_size=320),
    # Light CPU models (FPN from stride 8, 64-channel 2-conv heads; detcore/models.py builds them)
    ModelInfo("fcos_mobilenet_v3_fpn8", "FCOS MobileNetV3-Large FPN from stride 8 (light, CPU)", "fcos", coco=False),
    ModelInfo("retinanet_mobilenet_v3_fpn8", "RetinaNet MobileNetV3-Large FPN from stride 8 (light, CPU)",
              "retinanet", coco=False),
    ModelInfo("fcos_resnet18_fpn8", "FCOS ResNet-18 FPN from stride 8 (light head, CPU)", "fcos", coco=False),
)

_BY_NAME = {m.name: m for m in MODELS}


def model_names() -> list[str]:
    return list(_BY_NAME)


def model_info(name: str) -> ModelInfo:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError("model", f"unknown model {name!r}; choose one of: {', '.join(_BY_NAME)}") from None

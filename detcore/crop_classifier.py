"""The crop classifier: a second stage that re-scores the class of each object the detector found.

Why: on real photos a small detector trained from scratch on a CPU finds objects far better than it
tells their classes apart. On Face Mask, cpu-real's checkpoint reaches class-agnostic AP50 0.74 but
AP50 0.44 over the three classes: its stride-8 features see a 20-pixel face as a few cells, and its
rare classes' scores do not separate "a face of my class" from "a face". A small CNN that looks at
each face again, as a crop at a fixed resolution, separates them (numbers: the cpu-real notes in
detcore/train/presets.py).

How a prediction is re-scored (``Rescorer``; the Predictor, the stage's own validation check and the
exported graph all call the same code, so they give the same detections):

1. the detector's boxes of every class are merged into *objects* by class-agnostic NMS at
   ``MERGE_IOU``; an object's box and score are its best box's;
2. each object is cut out of the image as the detector's transform gives it (resized for the
   model; un-normalised back to [0, 1]), ``CROP_MARGIN`` of its width and height around it, at
   ``CROP_SIZE`` x ``CROP_SIZE`` pixels (``torchvision.ops.roi_align``, 2 samples per bin);
3. the classifier's class probabilities, averaged with those of the mirrored crop, times the
   object's score give one detection per object and class; the best ``max_detections`` leave.

A detection's score is therefore "how sure the detector is that there is an object" times "how
sure the classifier is of its class". Re-thresholding the result at a higher floor gives the same
detections as predicting at that floor (NMS keeps a box only for a better box, never for a worse
one), so the app's score slider stays exact.

The classifier is trained on crops of the training split's boxes (``detcore/train/classifier.py``)
and stored in the checkpoint as ``"classifier": {"spec": ..., "state": ...}``.
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

CROP_SIZE = 48  # pixels; faces of 15-40 px on Face Mask are seen at about their own size
CROP_MARGIN = 0.2  # context around the box (hair, chin, the mask's straps), of its width / height
MERGE_IOU = 0.5  # boxes of different classes overlapping this much are one object
WIDTHS = (16, 32, 64, 128)  # channels of the four conv blocks (twice as wide trained 2.8 epochs in 3 min, not kept)
SPEC_VERSION = 1


def default_spec(num_classes: int) -> dict:
    """The classifier's shape and crop rule as plain JSON (stored in the checkpoint)."""
    return {"version": SPEC_VERSION, "num_classes": int(num_classes), "widths": list(WIDTHS),
            "crop_size": CROP_SIZE, "margin": CROP_MARGIN, "merge_iou": MERGE_IOU}


def check_spec(spec: object) -> dict:
    """``spec`` if it is one this code can build, else ValueError saying what is wrong."""
    if not isinstance(spec, dict) or spec.get("version") != SPEC_VERSION:
        raise ValueError(f"unknown crop classifier format {spec.get('version') if isinstance(spec, dict) else spec!r}")
    ok = (isinstance(spec.get("num_classes"), int) and spec["num_classes"] >= 2
          and isinstance(spec.get("widths"), list) and len(spec["widths"]) >= 1
          and all(isinstance(w, int) and 1 <= w <= 1024 for w in spec["widths"])
          and isinstance(spec.get("crop_size"), int) and 8 <= spec["crop_size"] <= 512
          and isinstance(spec.get("margin"), (int, float)) and 0 <= spec["margin"] <= 2
          and isinstance(spec.get("merge_iou"), (int, float)) and 0 < spec["merge_iou"] <= 1)
    if not ok:
        raise ValueError("the crop classifier's settings are out of range")
    return spec


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2))


class CropClassifier(nn.Module):
    """Conv blocks (two 3x3 convs, BatchNorm, ReLU, 2x2 max-pool each), global average pool, a linear
    layer: (N, 3, S, S) crops in [0, 1] -> (N, K) class logits."""

    def __init__(self, spec: dict):
        super().__init__()
        spec = check_spec(spec)
        widths = [3] + list(spec["widths"])
        self.features = nn.Sequential(*[_block(a, b) for a, b in zip(widths, widths[1:])])
        self.dropout = nn.Dropout(0.3)
        self.fc = nn.Linear(widths[-1], spec["num_classes"])

    def forward(self, crops: Tensor) -> Tensor:
        x = self.features((crops - 0.5) / 0.25)
        return self.fc(self.dropout(x.mean(dim=[2, 3])))


def object_crops(view: Tensor, boxes: Tensor, size: int, margin: float) -> Tensor:
    """(N, 3, size, size) crops of ``view`` (3, H, W) around ``boxes`` (N, 4, xyxy in ``view``'s pixels)
    grown by ``margin`` of their width and height on each side; outside the image reads as 0."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    grown = torch.stack([boxes[:, 0] - margin * w, boxes[:, 1] - margin * h,
                         boxes[:, 2] + margin * w, boxes[:, 3] + margin * h], dim=1)
    rois = torch.cat([torch.zeros_like(grown[:, :1]), grown], dim=1)
    return torchvision.ops.roi_align(view[None], rois, [size, size], spatial_scale=1.0, sampling_ratio=2,
                                     aligned=True)


class ModelView(nn.Module):
    """An image (3, H, W) in [0, 1] as the detector sees it — normalised and resized by its eval-mode
    transform (torchvision's GeneralizedRCNNTransform, or the export's exact-resize copy of it), the
    normalisation then undone so values are [0, 1] again — and the (4,) factors that take a box in
    the image's pixels to the view's. Batching only pads, so one image at a time gives the same view.
    A module (not a function) so the exported TorchScript graph can hold it."""

    def __init__(self, transform: nn.Module):
        super().__init__()
        self.transform = transform
        self.register_buffer("mean", torch.tensor(list(transform.image_mean), dtype=torch.float32)[:, None, None],
                             persistent=False)
        self.register_buffer("std", torch.tensor(list(transform.image_std), dtype=torch.float32)[:, None, None],
                             persistent=False)

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor]:
        view = self.transform.resize(self.transform.normalize(image), None)[0]
        view = view * self.std + self.mean
        scale = torch._shape_as_tensor(view)[-2:].to(torch.float32) / torch._shape_as_tensor(image)[-2:].to(torch.float32)
        return view, torch.stack([scale[1], scale[0], scale[1], scale[0]]).to(image.device)


def model_view(transform: nn.Module, image: Tensor) -> Tuple[Tensor, Tensor]:
    """``ModelView(transform)(image)``."""
    return ModelView(transform).to(image.device)(image)


class Rescorer(nn.Module):
    """Re-scores one image's raw detector output (torchvision's dict: boxes in image pixels, model
    labels 1..K, scores) with the crop classifier; see the module docstring for the rule."""

    def __init__(self, classifier: CropClassifier, spec: dict, max_detections: int = 100):
        super().__init__()
        self.classifier = classifier.eval()
        self.num_classes = int(spec["num_classes"])
        self.crop_size = int(spec["crop_size"])
        self.margin = float(spec["margin"])
        self.merge_iou = float(spec["merge_iou"])
        self.max_detections = int(max_detections)

    def objects(self, boxes: Tensor, scores: Tensor, labels: Tensor) -> Tuple[Tensor, Tensor]:
        """The detections merged into objects (boxes, scores), best first; background dropped."""
        keep = labels > 0
        boxes, scores = boxes[keep], scores[keep]
        order = torchvision.ops.nms(boxes, scores, self.merge_iou)
        return boxes[order], scores[order]

    def probabilities(self, crops: Tensor) -> Tensor:
        """(N, K) class probabilities, averaged over the crop and its mirror image."""
        p = F.softmax(self.classifier(crops), dim=1) + F.softmax(self.classifier(crops.flip(-1)), dim=1)
        return p / 2

    def combine(self, boxes: Tensor, scores: Tensor, probs: Tensor) -> Dict[str, Tensor]:
        """One detection per object and class, scored object score x probability, best first."""
        k = self.num_classes
        all_scores = (scores[:, None] * probs).reshape(-1)
        all_boxes = boxes.repeat_interleave(k, dim=0)
        all_labels = torch.arange(1, k + 1, device=boxes.device).repeat(boxes.shape[0])
        top = torch.topk(all_scores, min(self.max_detections, int(all_scores.shape[0]))).indices
        return {"boxes": all_boxes[top], "scores": all_scores[top], "labels": all_labels[top]}

    def prepare(self, view: Tensor, factor: Tensor, raw: Dict[str, Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        """The objects (boxes, scores) of a raw output and their crops: everything before the classifier."""
        boxes, scores = self.objects(raw["boxes"], raw["scores"], raw["labels"])
        return boxes, scores, object_crops(view, boxes * factor, self.crop_size, self.margin)

    def forward(self, view: Tensor, factor: Tensor, raw: Dict[str, Tensor]) -> Dict[str, Tensor]:
        boxes, scores, crops = self.prepare(view, factor, raw)
        return self.combine(boxes, scores, self.probabilities(crops))


def detections_limit(model: nn.Module) -> int:
    """The detector's own cap on detections per image (torchvision's ``detections_per_img``)."""
    heads = getattr(model, "roi_heads", None)
    for owner in (heads, model):
        value = getattr(owner, "detections_per_img", None)
        if isinstance(value, int):
            return value
    return 100


def load_rescorer(saved: dict, model: nn.Module, num_classes: int) -> Rescorer:
    """The Rescorer stored in a checkpoint's ``classifier`` entry; ValueError when it does not fit."""
    spec = check_spec(saved.get("spec"))
    if spec["num_classes"] != num_classes:
        raise ValueError(f"its classifier has {spec['num_classes']} classes, the run {num_classes}")
    classifier = CropClassifier(spec)
    try:
        classifier.load_state_dict(saved["state"])
    except (KeyError, RuntimeError, TypeError) as e:
        raise ValueError(f"its classifier's weights do not fit ({str(e).splitlines()[0][:160]})") from None
    return Rescorer(classifier, spec, detections_limit(model))

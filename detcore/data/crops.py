"""Training on crops at the model's scale, predicting on whole images.

Real photos with small objects need an upscaled input (detcore/geometry.py measures how much), but
a whole upscaled photo per step is slow on a CPU. ``CropAtModelScale`` resizes each training
image exactly as the detector would (``min_size``/``max_size``, times a random ``scale_jitter``
factor), then cuts a ``crop`` x ``crop`` window — most of the time around a random object, so
crops are rarely empty — and flips it. The detector is told not to resize training images again
(torchvision's ``transform._skip_resize``); in eval mode it resizes whole images as usual, so the
objects have the same size in pixels in training and in prediction.

With ``class_weights`` (``balanced_crops``), the object a crop is placed around is drawn with
probability proportional to its class's weight — ``1 / sqrt(class frequency)`` in the training
split — so rare classes are seen more often without repeating whole images.

Boxes cut by the window are clipped; a box keeps its label only if at least ``MIN_VISIBLE`` of
its area is inside the crop (an object cut in half is not taught as a whole one). Randomness comes
from torch's generator, which the trainer reseeds every epoch.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms.v2 import functional as F

from detcore.data.dataset import zoom_range

MIN_VISIBLE = 0.5
OBJECT_BIAS = 0.8  # share of crops placed around a random object (the rest anywhere)


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()))


class CropAtModelScale:
    def __init__(self, input_spec: dict, crop: int, *, scale_jitter=None, hflip: float = 0.5,
                 color_jitter: float = 0.0, class_weights=None):
        if "min_size" not in input_spec:
            raise ValueError("crop training needs a min_size/max_size input, not a fixed square")
        self.min_size, self.max_size = float(input_spec["min_size"]), float(input_spec["max_size"])
        self.crop = int(crop)
        self.scale_jitter = zoom_range(scale_jitter)  # F (CLI flag, form slider) or a [lo, hi] range
        self.hflip = float(hflip or 0.0)
        # per model label (label 0, background, unused)
        self.class_weights = torch.tensor([0.0, *class_weights], dtype=torch.float64) if class_weights else None
        self.color = None
        if color_jitter:
            from torchvision.transforms import v2

            c = float(color_jitter)
            self.color = v2.ColorJitter(brightness=c, contrast=c, saturation=c, hue=min(c / 4, 0.5))

    def scale_for(self, height: int, width: int) -> float:
        """The detector's own resize factor (GeneralizedRCNNTransform), times the jitter."""
        scale = min(self.min_size / min(height, width), self.max_size / max(height, width))
        if self.scale_jitter:
            lo, hi = self.scale_jitter
            scale *= math.exp(_uniform(math.log(lo), math.log(hi)))
        return scale

    def largest_scale(self, height: int, width: int) -> float:
        """The largest resize factor ``scale_for`` can draw for this image (the dataset may cache the
        image at this scale: every crop is cut from a smaller or equal resize of it)."""
        scale = min(self.min_size / min(height, width), self.max_size / max(height, width))
        return scale * (self.scale_jitter[1] if self.scale_jitter else 1.0)

    def window(self, boxes: torch.Tensor, height: int, width: int, labels=None) -> tuple[int, int, int, int]:
        """(top, left, h, w) of the crop: around a random object when there is one (OBJECT_BIAS),
        drawn by class weight when ``class_weights`` are set."""
        ch, cw = min(self.crop, height), min(self.crop, width)
        if len(boxes) and float(torch.rand(())) < OBJECT_BIAS:
            if self.class_weights is not None and labels is not None:
                index = int(torch.multinomial(self.class_weights[torch.as_tensor(labels)], 1))
            else:
                index = int(torch.randint(len(boxes), ()))
            x0, y0, x1, y1 = boxes[index].tolist()
            left = _pick(x0, x1, cw, width)
            top = _pick(y0, y1, ch, height)
        else:
            left = int(torch.randint(width - cw + 1, ()))
            top = int(torch.randint(height - ch + 1, ()))
        return top, left, ch, cw

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        height, width = image.shape[-2:]
        scale = self.scale_for(height, width)
        new_h, new_w = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
        image = F.resize(torch.as_tensor(image), [new_h, new_w], antialias=True)
        boxes = torch.as_tensor(target["boxes"], dtype=torch.float32).reshape(-1, 4)
        boxes = boxes * torch.tensor([new_w / width, new_h / height, new_w / width, new_h / height])
        masks = target.get("masks")
        if masks is not None:
            masks = F.resize(torch.as_tensor(masks), [new_h, new_w], interpolation=F.InterpolationMode.NEAREST)
        top, left, ch, cw = self.window(boxes, new_h, new_w, target["labels"])
        image = image[..., top:top + ch, left:left + cw]
        moved = boxes - torch.tensor([left, top, left, top], dtype=torch.float32)
        clipped = torch.stack([moved[:, 0].clamp(0, cw), moved[:, 1].clamp(0, ch),
                               moved[:, 2].clamp(0, cw), moved[:, 3].clamp(0, ch)], dim=1)
        area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
        visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        keep = (visible >= MIN_VISIBLE * area) & (clipped[:, 2] - clipped[:, 0] >= 1) & \
               (clipped[:, 3] - clipped[:, 1] >= 1)
        out = {k: v for k, v in target.items() if k not in ("boxes", "labels", "iscrowd", "masks")}
        out["boxes"] = clipped[keep]
        out["labels"] = torch.as_tensor(target["labels"])[keep]
        out["iscrowd"] = torch.as_tensor(target["iscrowd"])[keep]
        if masks is not None:
            out["masks"] = masks[..., top:top + ch, left:left + cw][keep]
        if self.hflip and float(torch.rand(())) < self.hflip:
            image = image.flip(-1)
            b = out["boxes"]
            out["boxes"] = torch.stack([cw - b[:, 2], b[:, 1], cw - b[:, 0], b[:, 3]], dim=1)
            if masks is not None:
                out["masks"] = out["masks"].flip(-1)
        if self.color is not None:
            image = self.color(image)
        return image.float().div_(255.0), out


def _pick(lo: float, hi: float, size: int, limit: int) -> int:
    """A window start that puts [lo, hi] inside a window of ``size`` when it fits (else its centre)."""
    first = max(0.0, min(hi - size, limit - size))
    last = min(max(lo, 0.0), limit - size)
    if last < first:  # the object is larger than the window: centre on it
        return int(min(max((lo + hi) / 2 - size / 2, 0), limit - size))
    return int(math.floor(_uniform(first, last + 1e-6)))

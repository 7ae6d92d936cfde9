"""The torch boundary of the data layer: Samples → (image tensor, target dict) for torchvision detectors.

Pixels are decoded lazily, one image per ``__getitem__`` (via ``detcore.data.images.load_rgb``),
so a dataset of any size costs only its annotations in memory. Boxes (and masks) are wrapped as
``tv_tensors`` so torchvision.transforms.v2 moves them together with the pixels; boxes that a
transform pushes out of the picture are dropped by ``SanitizeBoundingBoxes`` together with their
labels, masks and crowd flags. Model label = class index + 1 (label 0 is background everywhere).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as coco_mask
from torchvision import tv_tensors
from torchvision.transforms import v2

from detcore.data.images import load_rgb, open_file
from detcore.errors import DataError
from detcore.structures import Sample


def _labels_and_crowd(inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    target = inputs[1]
    return target["labels"], target["iscrowd"]


def zoom_range(scale_jitter) -> tuple[float, float] | None:
    """``augment.scale_jitter`` as a (lo, hi) zoom range: F means [1 - F, 1 + F] (the CLI flag and the
    Train form's slider), a [lo, hi] pair is itself (the cpu-real preset); 0 / None is no zoom."""
    if not scale_jitter:
        return None
    if isinstance(scale_jitter, (list, tuple)):
        lo, hi = scale_jitter
        return float(lo), float(hi)
    return 1.0 - float(scale_jitter), 1.0 + float(scale_jitter)


def build_transforms(train: bool, augment: dict | None = None) -> v2.Compose:
    """Transforms for training (augmented) or evaluation (tensor conversion only).

    ``augment`` keys: ``hflip`` (probability), ``rotate`` (max degrees, the tutorial used 180),
    ``scale_jitter`` (F: zoom of the content in [1 - F, 1 + F]; or a [lo, hi] range),
    ``color_jitter`` (brightness/contrast/saturation strength). A rotated box is the box around
    its rotated corners, so it still encloses the object (and its mask, which rotates with it).
    """
    steps: list[Callable] = [v2.ToImage()]
    augment = augment or {}
    if train:
        if augment.get("hflip"):
            steps.append(v2.RandomHorizontalFlip(p=float(augment["hflip"])))
        if augment.get("rotate"):
            steps.append(v2.RandomRotation(degrees=float(augment["rotate"])))
        if zoom_range(augment.get("scale_jitter")):
            steps.append(v2.RandomAffine(degrees=0.0, scale=zoom_range(augment["scale_jitter"])))
        if augment.get("color_jitter"):
            c = float(augment["color_jitter"])
            steps.append(v2.ColorJitter(brightness=c, contrast=c, saturation=c, hue=min(c / 4, 0.5)))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.ClampBoundingBoxes(),
              v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_labels_and_crowd)]
    return v2.Compose(steps)


def _instance_masks(sample: Sample, height: int, width: int) -> np.ndarray:
    """(N, H, W) uint8 masks from an instance-id PNG or COCO polygons/RLE; a box is the fallback."""
    n = sample.num_objects
    if sample.mask_path is not None:
        ids = np.asarray(open_file(sample.mask_path))
        if ids.shape[:2] != (height, width):
            raise DataError(sample.mask_path, f"mask is {ids.shape[1]}x{ids.shape[0]} but the image is {width}x{height}")
        return np.stack([(ids == i) for i in (sample.mask_ids or [])]).astype(np.uint8) if n else \
            np.zeros((0, height, width), np.uint8)
    masks = np.zeros((n, height, width), np.uint8)
    segs = sample.segmentations or [None] * n
    for i, (seg, box) in enumerate(zip(segs, sample.boxes)):
        if seg is None:
            x0, y0, x1, y1 = np.round(box).astype(int)
            masks[i, max(y0, 0):y1, max(x0, 0):x1] = 1
        else:
            masks[i] = _decode_coco_segmentation(seg, height, width)
    return masks


def _decode_coco_segmentation(seg: Any, height: int, width: int) -> np.ndarray:
    if isinstance(seg, list):  # polygons: one object may have several parts
        rle = coco_mask.merge(coco_mask.frPyObjects(seg, height, width))
    elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):  # uncompressed RLE
        rle = coco_mask.frPyObjects(seg, height, width)
    else:
        rle = seg
    return coco_mask.decode(rle).astype(np.uint8).reshape(height, width)


class DetectionDataset(torch.utils.data.Dataset):
    """``samples`` (annotation records) as torchvision detection inputs.

    Item ``i`` is ``(image float32 CxHxW in [0, 1], target)`` with target keys ``boxes`` (xyxy),
    ``labels`` (class index + 1), ``image_id`` (= i), ``area``, ``iscrowd`` and, with
    ``with_masks``, ``masks`` (N, H, W uint8).

    ``cache_bytes`` > 0 keeps decoded images (uint8) in memory until that many bytes are held, so later
    epochs skip decoding: a 400 x 500 PNG takes ~11 ms to decode on a CPU core, a fifth of a cpu-real
    training step. When the transforms never need more pixels than ``transforms.largest_scale(h, w)``
    times the image (crops at the model's scale, detcore/data/crops.py), a larger image is cached at
    that scale, with its boxes and masks scaled alike: a 12-megapixel photo then costs its decoding
    and its resize once, not at every step. Each data-loader worker process fills its own cache.
    """

    def __init__(self, samples: Sequence[Sample], classes: Sequence[str], transforms: Callable | None = None,
                 *, with_masks: bool = False, cache_bytes: int = 0):
        self.samples = list(samples)
        self.cache_bytes = max(0, int(cache_bytes))
        self._cache: dict[int, tuple[np.ndarray, int, int]] = {}  # index -> (pixels, original height, width)
        self._cached_bytes = 0
        self.classes = list(classes)
        self.transforms = transforms if transforms is not None else build_transforms(False)
        self.with_masks = with_masks
        k = len(self.classes)
        for s in self.samples:
            if len(s.labels) and (s.labels.min() < 0 or s.labels.max() >= k):
                raise DataError(s.annotation_path or s.image_path,
                                f"label index {int(s.labels.max())} is outside the {k} classes")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        sample = self.samples[index]
        pixels, orig_h, orig_w = self._pixels(index)
        height, width = pixels.shape[:2]
        boxes = torch.as_tensor(sample.boxes, dtype=torch.float32).reshape(-1, 4)
        if (height, width) != (orig_h, orig_w):  # cached at a smaller scale
            boxes = boxes * torch.tensor([width / orig_w, height / orig_h, width / orig_w, height / orig_h])
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
            "labels": torch.as_tensor(sample.labels, dtype=torch.int64) + 1,
            "iscrowd": torch.as_tensor(sample.iscrowd, dtype=torch.int64),
        }
        if self.with_masks:
            masks = torch.from_numpy(_instance_masks(sample, orig_h, orig_w))
            if (height, width) != (orig_h, orig_w):
                masks = v2.functional.resize(masks, [height, width], interpolation=v2.InterpolationMode.NEAREST)
            target["masks"] = tv_tensors.Mask(masks)
        image = tv_tensors.Image(torch.from_numpy(pixels.copy()).permute(2, 0, 1))
        image, target = self.transforms(image, target)
        boxes = target["boxes"]
        target["area"] = (target["masks"].flatten(1).sum(1).float() if self.with_masks and len(boxes)
                          else (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        target["image_id"] = index
        return image, target

    def _pixels(self, index: int) -> tuple[np.ndarray, int, int]:
        """(pixels, original height, original width): from the cache when the image is there (callers
        copy the pixels before changing them), else decoded — and cached while the budget allows."""
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        pixels = load_rgb(self.samples[index].image_path)
        entry = (pixels, *pixels.shape[:2])
        if self.cache_bytes:
            small = self._reduced(pixels)
            if self._cached_bytes + small.nbytes <= self.cache_bytes:
                entry = (small, *pixels.shape[:2])
                self._cache[index] = entry
                self._cached_bytes += small.nbytes
        return entry

    def _reduced(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels`` at the largest scale the transforms will use, when that is smaller than the image."""
        largest = getattr(self.transforms, "largest_scale", None)
        height, width = pixels.shape[:2]
        scale = largest(height, width) if largest is not None else 1.0
        if scale >= 1.0:
            return pixels
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))

    def image_size(self, index: int) -> tuple[int, int]:
        """(height, width) from the annotation when known, for aspect-ratio grouping."""
        s = self.samples[index]
        return (s.height or 0, s.width or 0)


def collate_fn(batch: list) -> tuple:
    """Detectors take lists of differently sized images: keep the batch as tuples, no stacking."""
    return tuple(zip(*batch))


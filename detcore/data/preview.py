"""What the model is fed: random draws of the training transforms (``dataset.build_transforms``) on one
image, with the transformed boxes and masks — for the Data page's augmentation preview and tests.

It runs the very ``DetectionDataset`` the trainer uses, so the preview cannot drift from training:
boxes pushed out of the picture are dropped the same way, a rotated box is the box around its
rotated corners, and masks rotate with the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from detcore import viz
from detcore.data.dataset import DetectionDataset, build_transforms
from detcore.structures import Detections, Sample


@dataclass
class AugmentedDraw:
    image: np.ndarray  # (H, W, 3) uint8, after the transforms
    boxes: np.ndarray  # (N, 4) xyxy
    labels: np.ndarray  # (N,) class indices
    masks: np.ndarray | None  # (N, H, W) bool, when the sample has masks


def has_masks(sample: Sample) -> bool:
    return sample.mask_path is not None or sample.segmentations is not None


def augmented_draws(sample: Sample, classes: list[str], augment: dict, *, n: int = 8, seed: int = 0) -> list[AugmentedDraw]:
    """``n`` independent draws (seeds ``seed .. seed + n - 1``) of the training transforms on ``sample``."""
    with_masks = has_masks(sample)
    dataset = DetectionDataset([sample], classes, build_transforms(True, augment), with_masks=with_masks)
    generator_state = torch.random.get_rng_state()
    draws = []
    try:
        for i in range(n):
            torch.manual_seed(seed + i)
            image, target = dataset[0]
            pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            masks = target["masks"].numpy().astype(bool) if with_masks else None
            draws.append(AugmentedDraw(pixels, target["boxes"].numpy().astype(np.float32),
                                       target["labels"].numpy().astype(np.int64) - 1, masks))
    finally:
        torch.random.set_rng_state(generator_state)  # a preview never changes anyone else's random stream
    return draws


def augmented_previews(sample: Sample, classes: list[str], augment: dict, *, n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """The draws as pictures: boxes with class names, masks filled."""
    return [viz.draw_detections(d.image, Detections(sample.image_id, d.boxes, np.ones(len(d.boxes)), d.labels, d.masks),
                                classes, show_scores=False)
            for d in augmented_draws(sample, classes, augment, n=n, seed=seed)]

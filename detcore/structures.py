"""The records every part of detcore passes around and the conventions they follow.

- Boxes are ``xyxy`` absolute pixels, float32, continuous coordinates, shape (N, 4).
- ``labels`` in a Sample and in Detections are *class indices* 0..K-1 into ``classes``.
  Only the torch boundary (``detcore.data.dataset`` / ``detcore.inference``) shifts them by one,
  because torchvision reserves model label 0 for background: model label = class index + 1.
- Readers never decode pixels: a Sample holds paths and annotation values only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def _boxes(x: Any) -> np.ndarray:
    a = np.asarray(x if x is not None else [], dtype=np.float32)
    return a.reshape(-1, 4)


def _vec(x: Any, dtype, n: int, fill) -> np.ndarray:
    if x is None:
        return np.full((n,), fill, dtype=dtype)
    return np.asarray(x, dtype=dtype).reshape(-1)


@dataclass
class Problem:
    """One data-quality finding. ``kind`` is a short stable slug (e.g. ``box_clipped``,
    ``missing_image``, ``malformed_xml``); ``file`` the offending file; ``detail`` a sentence."""

    kind: str
    file: str
    detail: str
    image_id: str | None = None

    def as_dict(self) -> dict:
        return {"kind": self.kind, "file": self.file, "detail": self.detail, "image_id": self.image_id}


@dataclass
class Sample:
    """One image and its ground truth, as read from annotations (no pixels loaded).

    ``width``/``height`` come from the annotation (VOC ``<size>``, COCO ``images``) or from the
    image header when the reader had to look; None if unknown.
    Segmentation, where the format has it, is one of:
      - ``mask_path`` + ``mask_ids``: an instance-id PNG (Penn-Fudan); object i is ``mask == mask_ids[i]``
      - ``segmentations``: per object a COCO polygon list or RLE dict (COCO JSON), or None
    """

    image_id: str
    image_path: Path
    width: int | None
    height: int | None
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    difficult: np.ndarray | None = None
    truncated: np.ndarray | None = None
    iscrowd: np.ndarray | None = None
    annotation_path: Path | None = None
    mask_path: Path | None = None
    mask_ids: list[int] | None = None
    segmentations: list[Any] | None = None
    areas: np.ndarray | None = None  # COCO 'area' when the file gives it; else box/mask area is used

    def __post_init__(self) -> None:
        self.image_path = Path(self.image_path)
        self.boxes = _boxes(self.boxes)
        n = len(self.boxes)
        self.labels = _vec(self.labels, np.int64, n, 0)
        self.difficult = _vec(self.difficult, bool, n, False)
        self.truncated = _vec(self.truncated, bool, n, False)
        self.iscrowd = _vec(self.iscrowd, bool, n, False)
        if not (len(self.labels) == len(self.difficult) == len(self.truncated) == len(self.iscrowd) == n):
            raise ValueError(f"{self.image_id}: per-object arrays disagree in length")

    @property
    def num_objects(self) -> int:
        return len(self.boxes)


@dataclass
class ParsedDataset:
    """A whole dataset as read: ordered class names, samples, and every problem found."""

    format: str  # "voc" | "pennfudan" | "coco" | "yolo" (demo data is "voc")
    root: Path
    classes: list[str]
    samples: list[Sample]
    problems: list[Problem] = field(default_factory=list)
    # Format-specific facts a reader keeps, e.g. COCO "category_ids" (class index -> category id).
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_images(self) -> int:
        return len(self.samples)

    @property
    def num_objects(self) -> int:
        return sum(s.num_objects for s in self.samples)

    def sample_by_id(self) -> dict[str, Sample]:
        return {s.image_id: s for s in self.samples}


@dataclass
class Detections:
    """Model output for one image, as numpy (nothing torch-specific leaves detcore).

    ``labels`` are class indices 0..K-1 (not model labels). ``masks`` (N, H, W) bool when the model
    predicts masks; ``mask_rles`` the same masks as N COCO RLE dicts instead, when full-size arrays
    would cost too much memory (validation, cached evaluations). ``masks`` wins when both are given.
    """

    image_id: str
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None
    mask_rles: list | None = None

    def __post_init__(self) -> None:
        self.boxes = _boxes(self.boxes)
        n = len(self.boxes)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if not (len(self.scores) == len(self.labels) == n):
            raise ValueError(f"{self.image_id}: boxes/scores/labels disagree in length")
        if self.masks is not None:
            self.masks = np.asarray(self.masks, dtype=bool)
            if len(self.masks) != n:
                raise ValueError(f"{self.image_id}: masks disagree in length")
        if self.mask_rles is not None and len(self.mask_rles) != n:
            raise ValueError(f"{self.image_id}: mask RLEs disagree in length")

    def __len__(self) -> int:
        return len(self.boxes)

    def filter(self, keep: np.ndarray) -> "Detections":
        """The detections selected by ``keep`` (a boolean mask or an index array)."""
        rles = None
        if self.mask_rles is not None:
            picked = np.arange(len(self))[keep]
            rles = [self.mask_rles[int(i)] for i in np.asarray(picked).reshape(-1)]
        return Detections(
            self.image_id,
            self.boxes[keep],
            self.scores[keep],
            self.labels[keep],
            None if self.masks is None else self.masks[keep],
            rles,
        )

    def above(self, threshold: float | np.ndarray) -> "Detections":
        """Keep detections with score >= threshold; a per-class array is indexed by label."""
        t = np.asarray(threshold, dtype=np.float32)
        cut = t[self.labels] if t.ndim == 1 else t
        return self.filter(self.scores >= cut)

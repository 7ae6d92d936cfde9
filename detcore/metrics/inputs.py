"""Samples and Detections → the flat arrays the COCO engine works on, with input checks.

Image order is the order of the ground-truth samples; it decides how score ties between images
are broken, exactly as pycocotools' sorted integer image ids do when exported with
``export.coco_image_id_map``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detcore.errors import DataError
from detcore.metrics import masks as mask_ops
from detcore.metrics.coco import FlatDetections, FlatGroundTruth, box_iou_matrix_pairs
from detcore.structures import Detections, Sample


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])


@dataclass
class FlatInputs:
    image_ids: list[str]
    gt: FlatGroundTruth
    dt: FlatDetections
    iou_type: str
    gt_rles: list = field(default_factory=list)
    dt_rles: list = field(default_factory=list)
    _segm_cache: dict = field(default_factory=dict)

    def pair_iou(self, det: np.ndarray, gt: np.ndarray) -> np.ndarray:
        """IoU of aligned (det, gt) index pairs (same image)."""
        if self.iou_type == "bbox":
            return box_iou_matrix_pairs(self.dt.box[det], self.gt.box[gt], self.gt.crowd[gt])
        out = np.zeros(len(det))
        img = self.dt.image[det]
        by_image = np.argsort(img, kind="stable")
        starts = np.r_[0, np.flatnonzero(np.diff(img[by_image])) + 1, len(img)] if len(img) else [0]
        for lo, hi in zip(starts[:-1], starts[1:]):
            sel = by_image[lo:hi]
            d_idx, g_idx, mat = self._image_mask_iou(int(img[sel[0]]))
            out[sel] = mat[np.searchsorted(d_idx, det[sel]), np.searchsorted(g_idx, gt[sel])]
        return out

    def _image_mask_iou(self, image: int):
        if image not in self._segm_cache:
            d_idx = np.flatnonzero(self.dt.image == image)
            g_idx = np.flatnonzero(self.gt.image == image)
            mat = mask_ops.rle_iou([self.dt_rles[j] for j in d_idx], [self.gt_rles[j] for j in g_idx], self.gt.crowd[g_idx])
            self._segm_cache[image] = (d_idx, g_idx, mat)
        return self._segm_cache[image]


def flatten_inputs(samples: list[Sample], detections: list[Detections], num_classes: int, *, iou_type: str) -> FlatInputs:
    image_ids = [s.image_id for s in samples]
    index = {iid: i for i, iid in enumerate(image_ids)}
    if len(index) != len(image_ids):
        dup = next(i for i in image_ids if image_ids.count(i) > 1)
        raise DataError("ground truth", f"image id {dup!r} appears more than once")
    gt, gt_rles = _flatten_gt(samples, num_classes, iou_type)
    dt, dt_rles = _flatten_dt(detections, index, num_classes, iou_type)
    return FlatInputs(image_ids, gt, dt, iou_type, gt_rles, dt_rles)


def _flatten_gt(samples: list[Sample], num_classes: int, iou_type: str):
    n = [s.num_objects for s in samples]
    image = np.repeat(np.arange(len(samples), dtype=np.int64), n)
    label = np.concatenate([s.labels for s in samples]) if samples else np.zeros(0, np.int64)
    box = xyxy_to_xywh(np.concatenate([s.boxes for s in samples])) if samples else np.zeros((0, 4))
    crowd = np.concatenate([s.iscrowd for s in samples]) if samples else np.zeros(0, bool)
    _check_labels(label, num_classes, "ground truth")
    if not np.isfinite(box).all():
        raise DataError("ground truth", "non-finite box coordinates")
    rles: list = []
    if iou_type == "segm":
        for s in samples:
            rles.extend(mask_ops.sample_rles(s))
        default_area = mask_ops.rle_area(rles)
    else:
        default_area = box[:, 2] * box[:, 3]
    area = default_area.copy()
    pos = 0
    for s, k in zip(samples, n):
        if s.areas is not None and len(s.areas) == k:
            area[pos : pos + k] = np.asarray(s.areas, dtype=np.float64)
        pos += k
    return FlatGroundTruth(image, label.astype(np.int64), box, area, crowd.astype(bool)), rles


def _flatten_dt(detections: list[Detections], index: dict[str, int], num_classes: int, iou_type: str):
    for d in detections:
        if d.image_id not in index:
            raise DataError("detections", f"image {d.image_id!r} has detections but is not in the ground truth")
    n = [len(d) for d in detections]
    image = np.repeat(np.array([index[d.image_id] for d in detections], dtype=np.int64), n)
    label = np.concatenate([d.labels for d in detections]) if detections else np.zeros(0, np.int64)
    box = xyxy_to_xywh(np.concatenate([d.boxes for d in detections])) if detections else np.zeros((0, 4))
    score = np.concatenate([d.scores for d in detections]).astype(np.float64) if detections else np.zeros(0)
    _check_labels(label, num_classes, "detections")
    if not (np.isfinite(box).all() and np.isfinite(score).all()):
        raise DataError("detections", "non-finite box coordinates or scores")
    rles: list = []
    if iou_type == "segm":
        for d in detections:
            rles.extend(mask_ops.detection_rles(d))
    # detection area decides the area range of an unmatched detection; pycocotools' loadRes
    # takes it from the box whenever results carry a bbox (as ours always do), even for segm
    area = box[:, 2] * box[:, 3]
    return FlatDetections(image, label.astype(np.int64), box, area, score), rles


def _check_labels(label: np.ndarray, num_classes: int, what: str) -> None:
    bad = (label < 0) | (label >= num_classes)
    if bad.any():
        raise DataError(what, f"class index {int(label[bad][0])} outside 0..{num_classes - 1}")

"""Instance masks as COCO RLE (pycocotools.mask), for segm AP and mask export.

Ground truth comes as COCO polygons/RLE (``Sample.segmentations``) or as an instance-id PNG
(``Sample.mask_path`` + ``mask_ids``: object i is ``mask == mask_ids[i]``); detections as bool
arrays (N, H, W). Conversions follow pycocotools' ``annToRLE`` so segm numbers equal COCOeval's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from detcore.data.images import image_size, open_file
from detcore.errors import DataError
from detcore.structures import Detections, Sample


def encode_bool_masks(masks: np.ndarray) -> list[dict]:
    """(N, H, W) bool → list of RLE dicts (counts as bytes, as pycocotools returns them)."""
    if len(masks) == 0:
        return []
    return mask_utils.encode(np.asfortranarray(np.transpose(masks, (1, 2, 0)).astype(np.uint8)))


def segmentation_to_rle(segm: Any, height: int, width: int) -> dict:
    """One COCO segmentation (polygon list, uncompressed or compressed RLE) → compressed RLE."""
    if isinstance(segm, list):
        return mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    if isinstance(segm, dict) and isinstance(segm.get("counts"), list):
        return mask_utils.frPyObjects(segm, height, width)
    return segm


def sample_rles(sample: Sample) -> list[dict]:
    """Every object's mask of one ground-truth sample as RLE; DataError when there is none."""
    if sample.segmentations is not None:
        h, w = _size(sample)
        out = []
        for i, segm in enumerate(sample.segmentations):
            if segm is None or (isinstance(segm, list) and len(segm) == 0):
                raise DataError(sample.annotation_path or sample.image_id, f"object {i} has no segmentation (needed for segm AP)")
            out.append(segmentation_to_rle(segm, h, w))
        return out
    if sample.mask_path is not None:
        return _rles_from_instance_png(sample)
    if sample.num_objects == 0:
        return []
    raise DataError(sample.annotation_path or sample.image_id, "no instance masks: segm AP needs segmentations or a mask PNG")


def _size(sample: Sample) -> tuple[int, int]:
    if sample.height is None or sample.width is None:
        w, h = image_size(sample.image_path)
        return int(h), int(w)
    return int(sample.height), int(sample.width)


def _rles_from_instance_png(sample: Sample) -> list[dict]:
    try:
        with open_file(sample.mask_path) as im:
            ids = np.asarray(im)
    except OSError as e:
        raise DataError(sample.mask_path, f"cannot read instance mask: {e}") from e
    mask_ids = sample.mask_ids or []
    if len(mask_ids) != sample.num_objects:
        raise DataError(sample.mask_path, f"{len(mask_ids)} mask ids for {sample.num_objects} objects")
    masks = np.stack([ids == i for i in mask_ids]) if mask_ids else np.zeros((0,) + ids.shape[:2], bool)
    return encode_bool_masks(masks)


def detection_rles(dets: Detections) -> list[dict]:
    if dets.masks is not None:
        return encode_bool_masks(dets.masks)
    if dets.mask_rles is not None:
        return list(dets.mask_rles)
    if len(dets) == 0:
        return []
    raise DataError(dets.image_id, "detections have no masks (segm AP needs masks)")


def has_instance_masks(samples: list[Sample]) -> bool:
    """Every object of every sample has a mask (an instance PNG, or a non-empty COCO segmentation):
    segm AP can be computed. Boxes-only ground truth (VOC, YOLO, COCO without segmentation) cannot."""
    for s in samples:
        if s.num_objects == 0:
            continue
        if s.mask_path is not None:
            continue
        if s.segmentations is None or any(seg is None or (isinstance(seg, list) and not seg) for seg in s.segmentations):
            return False
    return any(s.num_objects for s in samples)


def decode_rle(rle: dict) -> np.ndarray:
    """One COCO RLE (counts as bytes or str) → (H, W) bool."""
    counts = rle["counts"]
    rle = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(rle).astype(bool)


def rle_area(rles: list[dict]) -> np.ndarray:
    return np.asarray(mask_utils.area(rles), dtype=np.float64).reshape(-1) if rles else np.zeros(0)


def rle_iou(det_rles: list[dict], gt_rles: list[dict], crowd: np.ndarray) -> np.ndarray:
    """(n_det, n_gt) mask IoU; a crowd gt uses inter / area(det), as pycocotools does."""
    if not det_rles or not gt_rles:
        return np.zeros((len(det_rles), len(gt_rles)))
    return np.asarray(mask_utils.iou(det_rles, gt_rles, [int(c) for c in crowd]), dtype=np.float64)


def rle_to_json(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}

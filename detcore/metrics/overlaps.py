"""What each detection overlaps besides its COCO match, computed once per evaluation.

Confusion matrices and error classification need to know, for every kept detection, its best
IoU with a ground truth of its own class and its best IoU with one of another class. These do
not depend on score thresholds, so they are computed once (lazily) and reused on every
re-threshold. Crowd regions are left out: a detection on a crowd is ignored, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detcore.metrics.inputs import FlatInputs


@dataclass
class DetectionOverlaps:
    same_iou: np.ndarray  # (n_kept,) best IoU with a same-class, non-crowd gt (0 if none)
    other_iou: np.ndarray  # (n_kept,) best IoU with another class's non-crowd gt
    other_gt: np.ndarray  # (n_kept,) that gt's index, -1 if none


def image_pairs(flat: FlatInputs, det_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (kept det position, non-crowd gt of the same image) pair."""
    gt_ok = np.flatnonzero(~flat.gt.crowd)
    g_img = flat.gt.image[gt_ok]
    order = np.argsort(g_img, kind="stable")
    gt_sorted = gt_ok[order]
    n_img = len(flat.image_ids)
    count = np.bincount(g_img, minlength=n_img)
    start = np.r_[0, np.cumsum(count)[:-1]]
    d_img = flat.dt.image[det_index]
    per = count[d_img]
    pair_det = np.repeat(np.arange(len(det_index)), per)
    offs = np.arange(len(pair_det)) - np.repeat(np.cumsum(per) - per, per)
    return pair_det, gt_sorted[np.repeat(start[d_img], per) + offs]


def detection_overlaps(flat: FlatInputs, det_index: np.ndarray) -> DetectionOverlaps:
    n = len(det_index)
    pair_det, pair_gt = image_pairs(flat, det_index)
    iou = flat.pair_iou(det_index[pair_det], pair_gt) if len(pair_det) else np.zeros(0)
    same = flat.gt.label[pair_gt] == flat.dt.label[det_index[pair_det]]
    same_iou = np.zeros(n)
    np.maximum.at(same_iou, pair_det[same], iou[same])
    other_iou = np.zeros(n)
    other_gt = np.full(n, -1, np.int64)
    o_det, o_gt, o_iou = pair_det[~same], pair_gt[~same], iou[~same]
    if len(o_det):
        # best other-class gt per det: sort by (det, iou) and take the last of each det
        order = np.lexsort((o_iou, o_det))
        last = np.r_[o_det[order][1:] != o_det[order][:-1], True]
        best = order[last]
        other_iou[o_det[best]] = o_iou[best]
        other_gt[o_det[best]] = np.where(o_iou[best] > 0, o_gt[best], -1)
    return DetectionOverlaps(same_iou, other_iou, other_gt)

"""Pascal VOC AP with py-faster-rcnn ``voc_eval`` semantics (VOC07 11-point and all-point).

Per class, detections are visited by descending score (stable: ties keep input order). Each one
looks at the gt of its image and class (difficult ones included), takes the one with the largest
IoU (the first on ties) and is
  - ignored if that gt is difficult (and IoU > threshold),
  - a TP if IoU > threshold (strictly) and the gt is not yet taken, else an FP.
``difficult`` and ``iscrowd`` objects are excluded from the positives count.

One deliberate difference: voc_eval measures boxes with a "+1 pixel" (integer pixel
coordinates); our boxes are continuous coordinates (detcore/structures.py), so IoU has no +1, as in COCO.
"""

from __future__ import annotations

import numpy as np

from detcore.structures import Detections, Sample


def voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool = False) -> float:
    """Area under the PR curve: VOC07's 11 recall points or the all-point envelope (VOC2010+)."""
    rec = np.asarray(rec, dtype=np.float64)
    prec = np.asarray(prec, dtype=np.float64)
    if use_07_metric:
        points = [np.max(prec[rec >= t]) if np.any(rec >= t) else 0.0 for t in np.arange(0.0, 1.1, 0.1)]
        return float(np.sum(points) / 11.0)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,4) × (m,4) IoU, continuous coordinates."""
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(inter / (area_a[:, None] + area_b[None, :] - inter))


def voc_class_pr(samples: list[Sample], dets: list[Detections], k: int, iou_threshold: float):
    """Recall and precision curves of class ``k`` (in score order), and the positives count."""
    gt_by_image = {s.image_id: s for s in samples}
    flags, scores = [], []
    npos = 0
    for s in samples:
        m = s.labels == k
        npos += int(np.count_nonzero(m & ~s.difficult & ~s.iscrowd))
    for d in dets:
        m = d.labels == k
        if not m.any():
            continue
        s = gt_by_image.get(d.image_id)
        box, score = d.boxes[m].astype(np.float64), d.scores[m].astype(np.float64)
        flags.append(_image_flags(s, k, box, score, iou_threshold))
        scores.append(score)
    if not flags:
        return np.zeros(0), np.zeros(0), npos
    flags_all = np.concatenate(flags)
    order = np.argsort(-np.concatenate(scores), kind="stable")
    flags_all = flags_all[order]
    tp = np.cumsum(flags_all == 1, dtype=np.float64)
    fp = np.cumsum(flags_all == 0, dtype=np.float64)
    keep = flags_all >= 0  # difficult hits count as neither (they do not move the curve)
    tp, fp = tp[keep], fp[keep]
    rec = tp / npos if npos else np.full_like(tp, np.nan)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return rec, prec, npos


def _image_flags(s: Sample | None, k: int, box, score, thr) -> np.ndarray:
    """Per detection of one image: 1 TP, 0 FP, -1 ignored (hit a difficult/crowd gt)."""
    order = np.argsort(-score, kind="stable")
    flags = np.zeros(len(box), np.int8)
    if s is None:
        return flags
    m = s.labels == k
    gt = s.boxes[m].astype(np.float64)
    hard = (s.difficult | s.iscrowd)[m]
    if len(gt) == 0:
        return flags
    iou = _iou_xyxy(box[order], gt)
    jmax = np.argmax(iou, axis=1)
    hit = iou[np.arange(len(box)), jmax] > thr
    taken = np.zeros(len(gt), bool)
    for i in range(len(box)):  # short loop: detections of one class in one image
        if not hit[i]:
            continue
        if hard[jmax[i]]:
            flags[order[i]] = -1
        elif not taken[jmax[i]]:
            flags[order[i]], taken[jmax[i]] = 1, True
    return flags


def evaluate_voc(samples: list[Sample], dets: list[Detections], classes: list[str], *, iou_threshold: float = 0.5,
                 use_07_metric: bool = False) -> dict:
    """{"mAP", "per_class": [{"class", "AP", "n_gt", "n_det"}]}; AP None for a class without positives,
    and mAP is the mean over classes that have positives."""
    per_class = []
    for k, name in enumerate(classes):
        rec, prec, npos = voc_class_pr(samples, dets, k, iou_threshold)
        ap = voc_ap(rec, prec, use_07_metric) if npos else None
        n_det = int(sum(np.count_nonzero(d.labels == k) for d in dets))
        per_class.append({"class": name, "AP": ap, "n_gt": npos, "n_det": n_det})
    defined = [c["AP"] for c in per_class if c["AP"] is not None]
    return {"mAP": float(np.mean(defined)) if defined else None, "per_class": per_class}

"""Error classification at per-class score thresholds, from cached matches and overlaps.

Every detection kept by the thresholds gets one kind (checked in this order):
  ``tp``           matched to a ground truth of its class at the IoU threshold (COCO matching);
  ``duplicate``    its class's gt overlaps it enough, but a higher-scoring detection took that gt;
  ``wrong_class``  overlaps a gt of another class at >= the IoU threshold;
  ``localization`` overlaps a gt of its class with 0.1 <= IoU < threshold (TIDE's background cut);
  ``background``   none of the above.
Every non-crowd ground truth not taken by a kept true positive is ``missed``.
Detections matched to crowd regions are ignored, as in AP.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BACKGROUND_IOU = 0.1
ERROR_KINDS = ("duplicate", "wrong_class", "localization", "background", "missed")


def active_detections(result, thresholds: np.ndarray, t: int) -> np.ndarray:
    """Kept-detection positions above their class threshold and not ignored, in score order."""
    rec, dt = result.records, result.flat.dt
    order = result.score_order
    score = dt.score[rec.det_index[order]]
    label = dt.label[rec.det_index[order]]
    keep = (score >= thresholds[label]) & ~rec.det_ignored[t, order]
    return order[keep]


def _xyxy(xywh: np.ndarray) -> np.ndarray:
    return np.column_stack([xywh[:, 0], xywh[:, 1], xywh[:, 0] + xywh[:, 2], xywh[:, 1] + xywh[:, 3]])


def classify_errors(result, thresholds: np.ndarray, iou: float) -> pd.DataFrame:
    """One row per kept detection and per missed gt: image_id, kind, class, score, iou,
    x1..y2 (the detection's box, or the missed gt's), other_class (for wrong_class)."""
    t = result.iou_index(iou)
    iou_t = float(result.iou_thresholds[t])
    rec, flat = result.records, result.flat
    pos = active_detections(result, thresholds, t)
    ov = result.overlaps
    det = rec.det_index[pos]
    matched_gt = rec.det_gt[t, pos]
    kind = np.select(
        [matched_gt >= 0, ov.same_iou[pos] >= iou_t, ov.other_iou[pos] >= iou_t, ov.same_iou[pos] >= BACKGROUND_IOU],
        [0, 1, 2, 3], default=4)
    best_iou = np.where(kind == 2, ov.other_iou[pos], ov.same_iou[pos])
    other = np.full(len(pos), -1, np.int64)
    other[kind == 2] = flat.gt.label[ov.other_gt[pos][kind == 2]]
    missed = _missed_gt(result, matched_gt[matched_gt >= 0])
    n_miss = len(missed)
    boxes = _xyxy(np.concatenate([flat.dt.box[det], flat.gt.box[missed]]))
    # categorical columns from integer codes: a user-noticeable speed-up over per-row strings
    # when the thresholds slider moves
    classes = pd.Index(result.classes)
    return pd.DataFrame({
        "image_id": pd.Categorical.from_codes(np.concatenate([flat.dt.image[det], flat.gt.image[missed]]),
                                              categories=pd.Index(flat.image_ids)),
        "kind": pd.Categorical.from_codes(np.concatenate([kind, np.full(n_miss, 5)]), categories=pd.Index(("tp",) + ERROR_KINDS)),
        "class": pd.Categorical.from_codes(np.concatenate([flat.dt.label[det], flat.gt.label[missed]]), categories=classes),
        "score": np.concatenate([flat.dt.score[det], np.full(n_miss, np.nan)]),
        "iou": np.concatenate([best_iou, np.full(n_miss, np.nan)]),
        "other_class": pd.Categorical.from_codes(np.concatenate([other, np.full(n_miss, -1)]), categories=classes),
        "x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
    })


def _missed_gt(result, taken: np.ndarray) -> np.ndarray:
    countable = ~result.records.gt_ignored[0]
    countable[taken] = False
    return np.flatnonzero(countable)


def worst_images(errors: pd.DataFrame, kind: str | None = None) -> pd.DataFrame:
    """Images ranked by number of errors (of one kind, or of all error kinds), with a count per kind."""
    if kind is not None and kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {kind!r}; one of {ERROR_KINDS}")
    images = errors["image_id"].cat.categories
    kinds = ("tp",) + ERROR_KINDS
    table = np.zeros((len(images), len(kinds)), np.int64)
    np.add.at(table, (errors["image_id"].cat.codes.to_numpy(), errors["kind"].cat.codes.to_numpy()), 1)
    counts = pd.DataFrame(table, index=pd.Index(images, name="image_id"), columns=list(kinds))
    counts["errors"] = counts[list(ERROR_KINDS)].sum(axis=1) if kind is None else counts[kind]
    counts = counts[counts["errors"] > 0].sort_values(["errors", "tp"], ascending=[False, True], kind="stable")
    return counts.reset_index()

"""Confusion matrix (classes + background) at per-class score thresholds and one IoU threshold.

Rows are the true class (last row: background, i.e. a detection on nothing); columns the
predicted class (last column: background, i.e. a missed gt). Each counted gt appears once:
  - taken by a true positive of its class (COCO match)            → (class, class)
  - else claimed by a kept detection of another class, IoU >= t   → (gt class, det class);
    the highest-scoring such detection claims it, a second claim counts as background
  - else                                                           → (gt class, background)
Every other kept detection → (background, det class). Crowd-matched detections are ignored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detcore.metrics.errors import active_detections


def confusion_matrix(result, thresholds: np.ndarray, iou: float) -> pd.DataFrame:
    t = result.iou_index(iou)
    iou_t = float(result.iou_thresholds[t])
    rec, flat = result.records, result.flat
    K = len(result.classes)
    cm = np.zeros((K + 1, K + 1), np.int64)
    pos = active_detections(result, thresholds, t)  # score order
    det_label = flat.dt.label[rec.det_index[pos]]
    gt_of = rec.det_gt[t, pos]
    tp = gt_of >= 0
    np.add.at(cm, (det_label[tp], det_label[tp]), 1)
    taken = np.zeros(len(flat.gt.label), bool)
    taken[gt_of[tp]] = True

    ov = result.overlaps
    other = ov.other_gt[pos]
    cand = ~tp & (ov.other_iou[pos] >= iou_t) & (other >= 0)
    cand[cand] = ~taken[other[cand]]
    cand_idx = np.flatnonzero(cand)
    _, first = np.unique(other[cand_idx], return_index=True)  # first in score order claims the gt
    claim = cand_idx[first]
    np.add.at(cm, (flat.gt.label[other[claim]], det_label[claim]), 1)
    taken[other[claim]] = True

    background_dets = np.ones(len(pos), bool)
    background_dets[tp] = False
    background_dets[claim] = False
    np.add.at(cm, (K, det_label[background_dets]), 1)
    missed = ~rec.gt_ignored[0] & ~taken
    np.add.at(cm, (flat.gt.label[missed], K), 1)
    names = list(result.classes) + ["background"]
    return pd.DataFrame(cm, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted"))

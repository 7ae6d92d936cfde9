"""Seeded bootstrap confidence intervals for per-class AP, resampling images with replacement.

Each replicate reweights the cached match records by how often each image was drawn (a drawn
image counts w times: its detections weigh w in the running TP/FP sums and its ground truth w
in the denominator), so no replicate re-matches anything.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detcore.metrics.coco import recall_thresholds


def _weighted_ap(tps, fps, w_det, n_gt, rthr) -> float:
    """COCO's interpolated AP (mean over thresholds × 101 recall points) with weighted counts."""
    if n_gt <= 0:
        return np.nan
    if tps.shape[1] == 0:
        return 0.0
    tp = np.cumsum(tps * w_det, axis=1)
    fp = np.cumsum(fps * w_det, axis=1)
    rc = tp / n_gt
    pr = np.maximum.accumulate((tp / (tp + fp + np.spacing(1)))[:, ::-1], axis=1)[:, ::-1]
    q = np.zeros((len(tp), len(rthr)))
    for t in range(len(tp)):
        inds = np.searchsorted(rc[t], rthr, side="left")
        ok = inds < tp.shape[1]
        q[t, ok] = pr[t, inds[ok]]
    return float(q.mean())


def bootstrap_class_ap(result, *, n_boot: int = 200, seed: int = 0, iou: float | None = None,
                       level: float = 0.95) -> pd.DataFrame:
    """Per class: AP_ci_low, AP_ci_high (percentile interval; NaN without ground truth) and n_boot
    (replicates where the class had ground truth). No AP column: the point estimate is in
    ``per_class()``, and the two tables merge on "class" without clashing names."""
    rec, flat = result.records, result.flat
    # rows 0..T-1 of the match records are area "all"
    rows = slice(0, len(result.iou_thresholds)) if iou is None else slice(result.iou_index(iou), result.iou_index(iou) + 1)
    order = result.score_order
    n_img = len(flat.image_ids)
    rng = np.random.default_rng(seed)
    draws = np.stack([np.bincount(rng.integers(0, n_img, n_img), minlength=n_img) for _ in range(n_boot)]) if n_img else np.zeros((n_boot, 0))
    rthr = recall_thresholds()
    labels = flat.dt.label[rec.det_index[order]]
    gt_ok = ~rec.gt_ignored[0]
    out = []
    for k, name in enumerate(result.classes):
        sel = order[labels == k]
        matched = rec.det_gt[rows, sel] >= 0
        ignored = rec.det_ignored[rows, sel]
        tps, fps = (matched & ~ignored).astype(float), (~matched & ~ignored).astype(float)
        det_img = flat.dt.image[rec.det_index[sel]]
        gt_img = flat.gt.image[gt_ok & (flat.gt.label == k)]
        aps = np.array([_weighted_ap(tps, fps, w[det_img], w[gt_img].sum(), rthr) for w in draws]) if len(gt_img) else np.full(n_boot, np.nan)
        alpha = (1 - level) / 2
        finite = aps[np.isfinite(aps)]
        lo, hi = (np.quantile(finite, [alpha, 1 - alpha]) if len(finite) else (np.nan, np.nan))
        out.append({"class": name, "AP_ci_low": float(lo), "AP_ci_high": float(hi), "n_boot": int(len(finite))})
    return pd.DataFrame(out)

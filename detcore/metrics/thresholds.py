"""Precision / recall / F1 as functions of the score threshold, from cached match records.

A detection "above threshold" has score >= threshold. Counting uses the COCO matches at one IoU
threshold (area "all", up to maxDets per image and class): detections matched to crowd regions
are ignored (neither TP nor FP), exactly as in AP. Because matching is greedy in score order,
the matches of the detections kept by any threshold are the matches a fresh evaluation of just
those detections would produce, so re-thresholding never re-matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class ScoreSweep:
    """Per class, non-ignored detections sorted by score (descending) with running TP/FP counts."""

    class_bounds: np.ndarray  # (K+1,) slices into the arrays below
    scores: np.ndarray
    cum_tp: np.ndarray
    cum_fp: np.ndarray
    n_gt: np.ndarray  # (K,) non-ignored ground truth per class
    det_pos: np.ndarray  # position into the kept detections (MatchRecords order)

    def counts_at(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per class TP and FP counts of detections with score >= thresholds[k]."""
        K = len(self.n_gt)
        tp = np.zeros(K, np.int64)
        fp = np.zeros(K, np.int64)
        for k in range(K):
            lo, hi = self.class_bounds[k], self.class_bounds[k + 1]
            n = int(np.searchsorted(-self.scores[lo:hi], -thresholds[k], side="right"))
            if n:
                tp[k], fp[k] = self.cum_tp[lo + n - 1], self.cum_fp[lo + n - 1]
        return tp, fp

    def curve_arrays(self, k: int) -> dict[str, np.ndarray]:
        """One entry per distinct score: P/R/F1 when keeping every detection with score >= it."""
        lo, hi = self.class_bounds[k], self.class_bounds[k + 1]
        s, tp, fp = self.scores[lo:hi], self.cum_tp[lo:hi], self.cum_fp[lo:hi]
        last_of_tie = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, bool)
        s, tp, fp = s[last_of_tie], tp[last_of_tie], fp[last_of_tie]
        p, r, f1 = prf(tp, fp, float(self.n_gt[k]))
        return {"threshold": s, "precision": p, "recall": r, "f1": f1, "tp": tp, "fp": fp, "fn": int(self.n_gt[k]) - tp}

    def curve(self, k: int) -> pd.DataFrame:
        return pd.DataFrame(self.curve_arrays(k))


def prf(tp, fp, n_gt):
    """Precision, recall, F1 with NaN where undefined (no detections kept / no ground truth)."""
    tp = np.asarray(tp, float)
    fp = np.asarray(fp, float)
    n_gt = np.asarray(n_gt, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        r = np.where(n_gt > 0, tp / n_gt, np.nan)
        f1 = np.where(n_gt > 0, 2 * tp / (tp + fp + n_gt), np.nan)
    return p, r, f1


def build_sweep(labels, scores, matched, ignored, order, n_gt, num_classes) -> ScoreSweep:
    """``order``: kept-detection positions in global score order (ties as in accumulate)."""
    keep = order[~ignored[order]]
    by_class = keep[np.argsort(labels[keep], kind="stable")]
    bounds = np.searchsorted(labels[by_class], np.arange(num_classes + 1))
    tp = matched[by_class].astype(np.int64)
    cum_tp = np.zeros(len(by_class), np.int64)
    cum_fp = np.zeros(len(by_class), np.int64)
    for k in range(num_classes):
        lo, hi = bounds[k], bounds[k + 1]
        cum_tp[lo:hi] = np.cumsum(tp[lo:hi])
        cum_fp[lo:hi] = np.cumsum(1 - tp[lo:hi])
    return ScoreSweep(bounds, scores[by_class], cum_tp, cum_fp, np.asarray(n_gt), by_class)


def best_f1_threshold(curve: dict[str, np.ndarray]) -> float | None:
    """Highest threshold reaching the maximum F1 (fewest detections for the same F1)."""
    f1 = curve["f1"]
    if len(f1) == 0 or np.isnan(f1).all() or np.nanmax(f1) <= 0:
        return None
    return float(curve["threshold"][int(np.nanargmax(f1))])


def recommend(curve: dict[str, np.ndarray], mode: str, target: float | None) -> float | None:
    """Score threshold per mode: 'f1' (max F1), 'precision' (lowest threshold with precision >=
    target, i.e. the most recall at that precision), 'recall' (highest threshold with recall >= target)."""
    if mode == "f1":
        return best_f1_threshold(curve)
    if target is None:
        raise ValueError(f"mode {mode!r} needs a target")
    if mode == "precision":
        ok = np.flatnonzero(curve["precision"] >= target)
        return float(curve["threshold"][ok[-1]]) if len(ok) else None
    if mode == "recall":
        ok = np.flatnonzero(curve["recall"] >= target)
        return float(curve["threshold"][ok[0]]) if len(ok) else None
    raise ValueError(f"unknown recommendation mode {mode!r} (f1, precision, recall)")

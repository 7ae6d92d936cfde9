"""Paired bootstrap of per-class differences between runs evaluated on the same images.

"Is run B really better than run A on this class?" Each replicate draws the test images with
replacement *once* and scores every run on that same draw, so the image-to-image variation both
runs share cancels out of the difference (a paired test). Replicates reweight the cached match
records of each run's ``EvaluationResult`` (an image drawn w times weighs w; see bootstrap.py),
so nothing is re-matched; a replicate's AP equals the AP a fresh COCO evaluation of the resampled
image list would give (tests/metrics/test_paired.py checks this against the engine).

Per class and per compared run (B against the baseline A), for AP@[.5:.95], AP50 and F1 at each
run's own score thresholds: the point difference B − A, the percentile interval of the replicate
differences, and ``significant`` when that interval excludes 0 and the class has at least
``MIN_OBJECTS`` ground-truth objects (with one or two objects every replicate that draws them moves
the same way, and a percentile interval of so few values says nothing). Identical runs give
differences of exactly 0 in every replicate. Classes without ground truth have no difference (None).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detcore.errors import DataError
from detcore.metrics.coco import recall_thresholds
from detcore.metrics.errors import active_detections

METRICS = ("AP", "AP50", "f1")
MIN_OBJECTS = 10  # ground-truth objects a class needs before a difference is called significant
CHUNK = 64  # replicates evaluated at once: bounds memory at CHUNK x IoU thresholds x detections


def image_draws(n_images: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_images) counts: how often each image is drawn in each replicate (seeded)."""
    rng = np.random.default_rng(seed)
    if n_images == 0:
        return np.zeros((n_boot, 0), np.float64)
    return np.stack([np.bincount(rng.integers(0, n_images, n_images), minlength=n_images)
                     for _ in range(n_boot)]).astype(np.float64)


@dataclass
class _ClassMatches:
    """One class of one result, at the chosen IoU rows: detections in accumulate order."""

    tps: np.ndarray  # (T, n) 1.0 where a true positive
    fps: np.ndarray  # (T, n) 1.0 where a false positive (ignored detections are neither)
    det_image: np.ndarray  # (n,) image index of each detection
    gt_image: np.ndarray  # (g,) image index of each counted ground truth


def _class_matches(result, k: int, rows: slice) -> _ClassMatches:
    rec, flat = result.records, result.flat
    order = result.score_order
    sel = order[flat.dt.label[rec.det_index[order]] == k]
    matched = rec.det_gt[rows, sel] >= 0
    ignored = rec.det_ignored[rows, sel]
    # Past the last true positive (of any IoU row) recall stops growing and precision only falls, so
    # those detections change no AP under any weights: dropping them keeps the arrays short (a 0.001
    # score floor leaves long tails of false positives).
    tp_any = np.flatnonzero((matched & ~ignored).any(axis=0))
    end = int(tp_any[-1]) + 1 if len(tp_any) else 0
    sel, matched, ignored = sel[:end], matched[:, :end], ignored[:, :end]
    gt_ok = ~rec.gt_ignored[0] & (flat.gt.label == k)
    return _ClassMatches((matched & ~ignored).astype(np.float64), (~matched & ~ignored).astype(np.float64),
                         flat.dt.image[rec.det_index[sel]], flat.gt.image[gt_ok])


def weighted_ap(m: _ClassMatches, weights: np.ndarray) -> np.ndarray:
    """COCO's interpolated AP (mean over IoU rows x 101 recall points, maxDets 100, area all) for each
    row of ``weights`` (B, n_images) of whole-number draw counts; NaN where the weighted ground truth is 0."""
    weights = np.atleast_2d(weights)
    B = len(weights)
    out = np.full(B, np.nan)
    n_gt = weights[:, m.gt_image].sum(axis=1) if len(m.gt_image) else np.zeros(B)
    has_gt = n_gt > 0
    T, n = m.tps.shape
    if n == 0:
        out[has_gt] = 0.0
        return out
    rthr = recall_thresholds()
    # pycocotools reads precision at the first detection whose recall tp / n_gt reaches each recall
    # point r. With whole-number counts that is the first where tp >= need(r), need(r) the least whole
    # v with v / n_gt >= r (the same float division, so exact); the rows' running tp are whole numbers
    # below n_gt + 1, so shifting row i by i * (max n_gt + 2) makes one sorted array to search at once.
    need = _least_counts(n_gt, rthr)
    step = float(n_gt.max() + 2)
    for lo in range(0, B, CHUNK):
        hi = min(B, lo + CHUNK)
        w = weights[lo:hi, m.det_image]  # (b, n)
        tp = np.cumsum(m.tps[None] * w[:, None, :], axis=2)  # (b, T, n)
        fp = np.cumsum(m.fps[None] * w[:, None, :], axis=2)
        pr = tp / (tp + fp + np.spacing(1))
        pr = np.maximum.accumulate(pr[:, :, ::-1], axis=2)[:, :, ::-1]
        b = hi - lo
        offset = (np.arange(b * T, dtype=np.float64) * step).reshape(b, T)
        keys = (tp + offset[:, :, None]).ravel()
        queries = need[lo:hi, None, :] + offset[:, :, None]  # (b, T, R)
        pos = np.searchsorted(keys, queries.ravel(), side="left").reshape(b, T, len(rthr))
        pos -= (np.arange(b * T) * n).reshape(b, T, 1)
        valid = pos < n  # recall never reached: precision 0 there, as in pycocotools
        q = np.where(valid, np.take_along_axis(pr, np.minimum(pos, n - 1), axis=2), 0.0)
        out[lo:hi] = np.where(has_gt[lo:hi], q.mean(axis=(1, 2)), np.nan)
    return out


def _least_counts(n_gt: np.ndarray, rthr: np.ndarray) -> np.ndarray:
    """(B, R): the least whole v in 0..n_gt with v / n_gt >= r, for each n_gt (whole) and recall point r."""
    g = np.maximum(n_gt, 1.0)[:, None, None]
    v = np.floor(rthr[None, :, None] * g) - 1 + np.arange(4)[None, None, :]  # r*g is off by far less than 1
    v = np.clip(v, 0, g)
    ok = v / g >= rthr[None, :, None]
    need = np.take_along_axis(v, np.argmax(ok, axis=2)[:, :, None], axis=2)[:, :, 0]
    return np.where(ok.any(axis=2), need, g[:, :, 0] + 1)


def _f1_counts(result, thresholds: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image and class, (K, n_images) TP, FP and ground-truth counts at the thresholds (IoU row t)."""
    K, n_img = len(result.classes), len(result.flat.image_ids)
    rec, flat = result.records, result.flat
    pos = active_detections(result, thresholds, t)
    label = flat.dt.label[rec.det_index[pos]]
    image = flat.dt.image[rec.det_index[pos]]
    tp = rec.det_gt[t, pos] >= 0
    tp_counts = np.zeros((K, n_img))
    fp_counts = np.zeros((K, n_img))
    np.add.at(tp_counts, (label[tp], image[tp]), 1)
    np.add.at(fp_counts, (label[~tp], image[~tp]), 1)
    gt_counts = np.zeros((K, n_img))
    ok = ~rec.gt_ignored[0]
    np.add.at(gt_counts, (flat.gt.label[ok], flat.gt.image[ok]), 1)
    return tp_counts, fp_counts, gt_counts


def weighted_f1(result, thresholds: np.ndarray, weights: np.ndarray, *, iou: float = 0.5) -> np.ndarray:
    """(K, B) F1 = 2 TP / (TP + FP + n_gt) per class for each weight row; NaN without ground truth."""
    tp, fp, gt = _f1_counts(result, np.asarray(thresholds, np.float64), result.iou_index(iou))
    weights = np.atleast_2d(weights)
    tp_w, fp_w, gt_w = tp @ weights.T, fp @ weights.T, gt @ weights.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gt_w > 0, 2 * tp_w / (tp_w + fp_w + gt_w), np.nan)


def _check_paired(results) -> None:
    first = results[0]
    for r in results[1:]:
        if list(r.classes) != list(first.classes):
            raise DataError("comparison", f"the runs' classes differ: {list(first.classes)} vs {list(r.classes)}")
        if list(r.flat.image_ids) != list(first.flat.image_ids):
            raise DataError("comparison", "the runs were evaluated on different images; a paired comparison "
                                          "needs the same images in the same order")
        if not np.array_equal(r.iou_thresholds, first.iou_thresholds):
            raise DataError("comparison", "the runs were evaluated at different IoU thresholds")


def replicate_metrics(result, thresholds: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Per metric, a (K, B) array of the metric on each weighted replicate (NaN: no ground truth drawn)."""
    T = len(result.iou_thresholds)
    t50 = result.iou_index(0.5)
    out = {"AP": np.full((len(result.classes), len(weights)), np.nan), "AP50": None,
           "f1": weighted_f1(result, thresholds, weights)}
    out["AP50"] = np.full_like(out["AP"], np.nan)
    for k in range(len(result.classes)):
        out["AP"][k] = weighted_ap(_class_matches(result, k, slice(0, T)), weights)
        out["AP50"][k] = weighted_ap(_class_matches(result, k, slice(t50, t50 + 1)), weights)
    return out


@dataclass
class PairedDelta:
    """One metric, one class, run B against run A."""

    delta: float | None  # B − A on all images (None: undefined, no ground truth)
    ci: tuple[float, float] | None  # percentile interval of the replicate differences
    significant: bool  # the interval excludes 0 (and the class has MIN_OBJECTS objects)
    n_boot: int  # replicates where the class had ground truth


def paired_bootstrap(results, thresholds, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                     min_objects: int = MIN_OBJECTS) -> list[dict[str, list[PairedDelta]]]:
    """For results[1:] against results[0] (same images, same order): per compared run, per metric
    (``METRICS``), one PairedDelta per class. ``thresholds``: one per-class array per result (the
    score thresholds F1 is counted at). The same image draws serve every run."""
    if len(results) < 2:
        raise DataError("comparison", "need at least two runs to compare")
    if len(thresholds) != len(results):
        raise DataError("comparison", "need one set of thresholds per run")
    if not 0 < level < 1:
        raise DataError("comparison", f"confidence level must be in (0, 1), got {level}")
    _check_paired(results)
    n_img = len(results[0].flat.image_ids)
    draws = image_draws(n_img, n_boot, seed)
    ones = np.ones((1, n_img))
    points = [replicate_metrics(r, np.asarray(t, np.float64), ones) for r, t in zip(results, thresholds)]
    reps = [replicate_metrics(r, np.asarray(t, np.float64), draws) for r, t in zip(results, thresholds)]
    alpha = (1 - level) / 2
    n_gt = results[0].n_gt
    out = []
    for b in range(1, len(results)):
        per_metric = {}
        for metric in METRICS:
            rows = []
            for k in range(len(results[0].classes)):
                a0, b0 = points[0][metric][k, 0], points[b][metric][k, 0]
                diff = reps[b][metric][k] - reps[0][metric][k]
                finite = diff[np.isfinite(diff)]
                if not (np.isfinite(a0) and np.isfinite(b0)) or not len(finite):
                    rows.append(PairedDelta(None, None, False, int(len(finite))))
                    continue
                lo, hi = (float(v) for v in np.quantile(finite, [alpha, 1 - alpha]))
                enough = n_gt[k] >= min_objects
                rows.append(PairedDelta(float(b0 - a0), (lo, hi), bool(enough and (lo > 0 or hi < 0)), int(len(finite))))
            per_metric[metric] = rows
        out.append(per_metric)
    return out

"""A vectorised COCO engine that reproduces pycocotools ``COCOeval`` to the last bit.

Why our own engine: the UI needs per-detection match records (which ground truth each detection
took at every IoU threshold, and which detections are ignored) so that re-thresholding never
re-matches, and a numpy engine gives those records directly while running as fast as
faster-coco-eval. The oracle stays pycocotools (tests/metrics compare to 1e-9).

The pycocotools rules reproduced here, each one a place where naive code differs:
- per (image, class) detections are sorted by score with a *stable* sort, then cut to maxDets[-1];
- crowd ground truth is always ignored, never "used up", and its IoU is inter / area(det);
- ground truth is visited non-ignored first; a detection takes the highest-IoU free non-ignored
  gt with IoU >= t (ties: the later gt), and only if there is none an ignored one;
- the threshold is min(t, 1 - 1e-10); area-range bounds are inclusive;
- unmatched detections outside the area range are ignored;
- accumulation concatenates images in order, stable-sorts by score, makes precision monotone,
  reads it at 101 recall points (0 beyond the last recall); -1 marks "undefined";
- summaries average the entries > -1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AREA_RANGES = {"all": (0.0, 1e10), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
MAX_DETS = (1, 10, 100)


def default_iou_thresholds() -> np.ndarray:
    # built exactly as pycocotools builds it, so that `t == 0.75` lookups behave the same
    return np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def recall_thresholds() -> np.ndarray:
    return np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


@dataclass
class FlatGroundTruth:
    """All ground-truth objects of a data set as flat arrays (one row per object)."""

    image: np.ndarray  # int64 image index (order of the gt samples)
    label: np.ndarray  # int64 class index
    box: np.ndarray  # (n,4) float64 xywh
    area: np.ndarray  # float64
    crowd: np.ndarray  # bool


@dataclass
class FlatDetections:
    """All detections as flat arrays; ``order`` is the position in the caller's input (tie-break)."""

    image: np.ndarray
    label: np.ndarray
    box: np.ndarray  # (n,4) float64 xywh
    area: np.ndarray
    score: np.ndarray  # float64


@dataclass
class MatchRecords:
    """What matching produced. Rows of the 2-D arrays are (area range, IoU threshold) pairs,
    row = a * T + t. Detections are the kept ones (rank < maxDets[-1]) in ``det_index`` order."""

    det_index: np.ndarray  # indices into FlatDetections of kept detections
    det_rank: np.ndarray  # rank within its (image, class) after the stable score sort
    det_gt: np.ndarray  # (A*T, n_kept) index into FlatGroundTruth of the matched gt, -1 if none
    det_ignored: np.ndarray  # (A*T, n_kept) bool
    gt_ignored: np.ndarray  # (A, n_gt) bool


def box_iou_matrix_pairs(det_box: np.ndarray, gt_box: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of aligned (det, gt) pairs, written like pycocotools' C ``bbIou`` (xywh, doubles)."""
    dx, dy, dw, dh = det_box.T
    gx, gy, gw, gh = gt_box.T
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    union = np.where(crowd, dw * dh, dw * dh + gw * gh - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)


def sort_detections(dt: FlatDetections, num_classes: int, max_det: int) -> tuple[np.ndarray, np.ndarray]:
    """Per (image, class) stable score sort → (kept indices in group order, their ranks)."""
    n = len(dt.score)
    order = np.lexsort((np.arange(n), -dt.score, dt.label, dt.image))
    group = dt.image[order] * num_classes + dt.label[order]
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1] if n else np.zeros(0, np.int64)
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    keep = rank < max_det
    return order[keep], rank[keep]


def candidate_pairs(gt: FlatGroundTruth, dt: FlatDetections, det_index: np.ndarray, num_classes: int):
    """Every (kept det, gt of the same image and class) pair → (pair_det_pos, pair_gt)."""
    g_group = gt.image * num_classes + gt.label
    g_order = np.argsort(g_group, kind="stable")
    n_groups = (int(max(gt.image.max(initial=-1), dt.image.max(initial=-1))) + 1) * num_classes
    g_count = np.bincount(g_group, minlength=n_groups)
    g_start = np.r_[0, np.cumsum(g_count)[:-1]]
    d_group = dt.image[det_index] * num_classes + dt.label[det_index]
    per_det = g_count[d_group]
    pair_det = np.repeat(np.arange(len(det_index)), per_det)
    offs = np.arange(len(pair_det)) - np.repeat(np.cumsum(per_det) - per_det, per_det)
    pair_gt = g_order[np.repeat(g_start[d_group], per_det) + offs]
    return pair_det, pair_gt


def match_all(
    gt: FlatGroundTruth,
    dt: FlatDetections,
    *,
    num_classes: int,
    iou_thresholds: np.ndarray,
    area_ranges: list[tuple[float, float]],
    max_det: int,
    pair_iou_fn,
) -> MatchRecords:
    """Greedy COCO matching for all images, classes, area ranges and IoU thresholds at once.

    Matching is sequential only along a detection's rank inside its (image, class) group, so we
    run one vectorised round per rank (≤ maxDets rounds) over every group simultaneously.
    """
    det_index, det_rank = sort_detections(dt, num_classes, max_det)
    pair_det, pair_gt = candidate_pairs(gt, dt, det_index, num_classes)
    pair_iou = pair_iou_fn(det_index[pair_det], pair_gt)
    # a pair below the lowest threshold can never match (thresholds are > 0, so neither can IoU 0)
    nz = (pair_iou > 0) & (pair_iou >= min(float(np.min(iou_thresholds)), 1 - 1e-10))
    pair_det, pair_gt, pair_iou = pair_det[nz], pair_gt[nz], pair_iou[nz]

    T, A = len(iou_thresholds), len(area_ranges)
    gt_ig = np.stack([gt.crowd | (gt.area < lo) | (gt.area > hi) for lo, hi in area_ranges]).reshape(A, len(gt.area))
    rows_ig = np.repeat(gt_ig, T, axis=0)  # (A*T, n_gt)
    thr = np.tile(np.minimum(iou_thresholds, 1 - 1e-10), A)[:, None]
    taken = np.zeros((A * T, len(gt.area)), bool)
    det_gt = np.full((A * T, len(det_index)), -1, np.int64)

    # pairs sorted by (rank of det, det, gt order inside the group) — gt order = input order
    order = np.lexsort((pair_gt, pair_det, det_rank[pair_det]))
    pair_det, pair_gt, pair_iou = pair_det[order], pair_gt[order], pair_iou[order]
    round_bounds = np.searchsorted(det_rank[pair_det], np.arange(max_det + 1), side="left")
    for r in range(max_det):
        lo, hi = round_bounds[r], round_bounds[r + 1]
        if lo == hi:
            continue
        _match_round(pair_det[lo:hi], pair_gt[lo:hi], pair_iou[lo:hi], gt.crowd, rows_ig, thr, taken, det_gt)

    kept_area = dt.area[det_index]
    det_ig = np.zeros_like(det_gt, dtype=bool)
    matched = det_gt >= 0
    row_idx = np.nonzero(matched)
    det_ig[row_idx] = rows_ig[row_idx[0], det_gt[row_idx]]
    for a, (lo, hi) in enumerate(area_ranges):
        outside = (kept_area < lo) | (kept_area > hi)
        det_ig[a * T : (a + 1) * T] |= ~matched[a * T : (a + 1) * T] & outside[None, :]
    return MatchRecords(det_index, det_rank, det_gt, det_ig, gt_ig)


def _match_round(p_det, p_gt, p_iou, crowd, rows_ig, thr, taken, det_gt) -> None:
    """One rank: every detection of this rank picks its gt (pycocotools' inner loop, vectorised)."""
    seg_start = np.r_[0, np.flatnonzero(np.diff(p_det)) + 1]
    seg_id = np.repeat(np.arange(len(seg_start)), np.diff(np.r_[seg_start, len(p_det)]))
    ok = (~taken[:, p_gt] | crowd[p_gt]) & (p_iou >= thr)
    ig = rows_ig[:, p_gt]
    has_regular = np.logical_or.reduceat(ok & ~ig, seg_start, axis=1)
    # a free non-ignored gt always wins over an ignored one; else the best ignored one
    chosen = ok & (ig ^ has_regular[:, seg_id])
    cand = np.where(chosen, p_iou, -1.0)
    best = np.maximum.reduceat(cand, seg_start, axis=1)
    win = chosen & (cand == best[:, seg_id])
    last = np.maximum.reduceat(np.where(win, np.arange(len(p_det)), -1), seg_start, axis=1)
    rows, segs = np.nonzero(last >= 0)
    g = p_gt[last[rows, segs]]
    det_gt[rows, p_det[seg_start[segs]]] = g
    taken[rows, g] = True


@dataclass
class Accumulated:
    precision: np.ndarray  # (T, R, K, A, M), -1 where undefined
    recall: np.ndarray  # (T, K, A, M)
    scores: np.ndarray  # (T, R, K, A, M)


def global_score_order(dt: FlatDetections, rec: MatchRecords) -> np.ndarray:
    """Positions into the kept detections in pycocotools' accumulate order:
    score descending, ties by image order, then by rank inside the image."""
    idx = rec.det_index
    return np.lexsort((rec.det_rank, dt.image[idx], -dt.score[idx]))


def accumulate(gt: FlatGroundTruth, dt: FlatDetections, rec: MatchRecords, *, num_classes: int,
               num_thresholds: int, max_dets: tuple[int, ...]) -> Accumulated:
    T, K, A, M = num_thresholds, num_classes, rec.gt_ignored.shape[0], len(max_dets)
    rthr = recall_thresholds()
    R = len(rthr)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    order = global_score_order(dt, rec)
    labels = dt.label[rec.det_index][order]
    by_class = order[np.argsort(labels, kind="stable")]  # still score order inside each class
    class_bounds = np.searchsorted(dt.label[rec.det_index][by_class], np.arange(K + 1))
    npig = np.stack([np.bincount(gt.label[~rec.gt_ignored[a]], minlength=K) for a in range(A)], axis=1)
    for k in range(K):
        if not npig[k].any():
            continue
        sel_k = by_class[class_bounds[k] : class_bounds[k + 1]]
        matched_k = rec.det_gt[:, sel_k] >= 0
        ignored_k = rec.det_ignored[:, sel_k]
        ranks_k = rec.det_rank[sel_k]
        scores_k = dt.score[rec.det_index[sel_k]]
        for m, max_det in enumerate(max_dets):
            sel = np.flatnonzero(ranks_k < max_det) if max_det < max_dets[-1] else slice(None)
            mk, ik, sk = matched_k[:, sel], ignored_k[:, sel], scores_k[sel]
            for a in range(A):
                if npig[k, a] == 0:
                    continue
                rows = slice(a * T, (a + 1) * T)
                p, r, s = _pr_at_recall_points(mk[rows], ik[rows], sk, int(npig[k, a]), rthr)
                precision[:, :, k, a, m], recall[:, k, a, m], scores[:, :, k, a, m] = p, r, s
    return Accumulated(precision, recall, scores)


def _pr_at_recall_points(matched, ignored, scores, npig, rthr):
    tps = matched & ~ignored
    fps = ~matched & ~ignored
    tp = np.cumsum(tps, axis=1, dtype=np.float64)  # integer counts: exact in float64
    fp = np.cumsum(fps, axis=1, dtype=np.float64)
    T, nd = tp.shape
    R = len(rthr)
    if nd == 0:
        return np.zeros((T, R)), np.zeros(T), np.zeros((T, R))
    rc = tp / npig
    pr = tp / (fp + tp + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    # searchsorted(rc[t], rthr) for all rows at once, exactly: rc = tp / npig with integer tp, so
    # "rc >= r" is "tp >= need(r)"; integer keys can be offset per row without rounding
    need = np.searchsorted(np.arange(npig + 1) / npig, rthr, side="left").astype(np.float64)
    offs = (np.arange(T) * (npig + 1.0))[:, None]
    pos = np.searchsorted((tp + offs).ravel(), (need[None, :] + offs).ravel(), side="left").reshape(T, R)
    pos -= (np.arange(T) * nd)[:, None]
    valid = pos < nd  # pycocotools leaves 0 where the recall is never reached
    pos = np.minimum(pos, nd - 1)
    q = np.where(valid, np.take_along_axis(pr, pos, axis=1), 0.0)
    ss = np.where(valid, scores[pos], 0.0)
    return q, rc[:, -1], ss


def mean_defined(values: np.ndarray) -> float:
    """pycocotools' summary mean: over entries > -1; -1 if there are none."""
    v = values[values > -1]
    return float(np.mean(v)) if v.size else -1.0


def summarize(acc: Accumulated, iou_thresholds: np.ndarray, max_dets: tuple[int, ...], area_names: list[str]) -> dict:
    """The 12 COCO numbers, -1 where undefined (callers turn -1 into None)."""

    def ap(iou=None, area="all", md=max_dets[-1]):
        s = acc.precision
        if iou is not None:
            t = np.where(iou == iou_thresholds)[0]
            s = s[t]
        return mean_defined(s[:, :, :, area_names.index(area), max_dets.index(md)]) if len(s) else -1.0

    def ar(md, area="all"):
        return mean_defined(acc.recall[:, :, area_names.index(area), max_dets.index(md)])

    out = {"AP": ap(), "AP50": ap(0.5), "AP75": ap(0.75), "APs": ap(area="small"), "APm": ap(area="medium"),
           "APl": ap(area="large")}
    for md in max_dets:
        out[f"AR{md}"] = ar(md)
    out.update({"ARs": ar(max_dets[-1], "small"), "ARm": ar(max_dets[-1], "medium"), "ARl": ar(max_dets[-1], "large")})
    return out

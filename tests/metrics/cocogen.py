"""Random ground truth / detections that exercise pycocotools' corner cases, and the oracle run."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np

from detcore.metrics.export import to_coco_detections, to_coco_gt
from detcore.structures import Detections, Sample


def random_case(rng: np.random.Generator, *, n_images=None, n_classes=None, max_gt=8, max_dt=15, grid=False):
    """``grid``: integer coordinates on a coarse grid, so IoUs land exactly on 0.5, 0.75, ... often."""
    n_images = n_images or int(rng.integers(1, 8))
    n_classes = n_classes or int(rng.integers(1, 6))
    classes = [f"c{i}" for i in range(n_classes)]
    # a small score palette makes ties common, within and across images
    palette = np.round(rng.uniform(0.05, 1.0, size=int(rng.integers(2, 12))), 2)
    samples, dets = [], []
    for i in range(n_images):
        n_gt = int(rng.integers(0, max_gt + 1)) if rng.random() > 0.15 else 0
        size = rng.choice([20, 60, 200])  # small / medium / large objects
        xy = rng.uniform(0, 200, size=(n_gt, 2)).round(1)
        wh = rng.uniform(2, size, size=(n_gt, 2)).round(1)
        if grid:
            xy, wh = np.round(xy / 4) * 4, rng.choice([4.0, 8.0, 12.0, 16.0, 40.0], size=(n_gt, 2))
        gt_boxes = np.hstack([xy, xy + wh])
        gt_labels = rng.integers(0, n_classes, size=n_gt)
        crowd = rng.random(n_gt) < 0.15
        samples.append(Sample(f"img{i:03d}", f"img{i:03d}.jpg", 400, 400, boxes=gt_boxes, labels=gt_labels, iscrowd=crowd))
        n_dt = int(rng.integers(0, max_dt + 1)) if rng.random() > 0.1 else 0
        src = rng.integers(0, max(n_gt, 1), size=n_dt)
        jitter = rng.normal(0, rng.choice([0.5, 3, 10]), size=(n_dt, 4)).round(1)
        if n_gt:
            boxes = gt_boxes[src] + jitter
            exact = rng.random(n_dt) < 0.2  # exact copies: IoU exactly 1 and boundary cases
            boxes[exact] = gt_boxes[src[exact]]
            labels = np.where(rng.random(n_dt) < 0.8, gt_labels[src], rng.integers(0, n_classes, size=n_dt))
        else:
            boxes = np.hstack([xy_ := rng.uniform(0, 200, size=(n_dt, 2)), xy_ + rng.uniform(2, 80, size=(n_dt, 2))])
            labels = rng.integers(0, n_classes, size=n_dt)
        if grid:
            boxes = np.round(boxes / 2) * 2
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.5)
        scores = rng.choice(palette, size=n_dt)
        dets.append(Detections(f"img{i:03d}", boxes, scores, labels))
    return samples, dets, classes


def pycocotools_eval(samples, dets, classes, *, iou_type="bbox", iou_thresholds=None, max_dets=None):
    """COCOeval on our exported JSON → (stats[12], precision, recall). None if no detections at all
    (pycocotools' loadRes cannot take an empty list)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_json = to_coco_gt(samples, classes, with_masks=iou_type == "segm")
    id_map = {im["detboard_image_id"]: im["id"] for im in gt_json["images"]}
    dt_json = to_coco_detections(dets, classes, image_id_map=id_map, with_masks=iou_type == "segm")
    if not dt_json:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt_json)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dt_json))
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        if iou_thresholds is not None:
            ev.params.iouThrs = np.asarray(iou_thresholds, dtype=np.float64)
        if max_dets is not None:
            ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _polygon(rng, cx, cy, r):
    """A random star-shaped polygon around (cx, cy) as a flat COCO list [x0, y0, x1, y1, ...]."""
    n = int(rng.integers(3, 8))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = r * rng.uniform(0.5, 1.0, n)
    return np.column_stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)]).round(1).ravel().tolist()


def random_mask_case(rng: np.random.Generator, *, size=64):
    """Polygon ground truth (some crowd, as uncompressed RLE) and bool-mask detections."""
    from pycocotools import mask as mask_utils

    n_classes = int(rng.integers(1, 4))
    classes = [f"m{i}" for i in range(n_classes)]
    samples, dets = [], []
    for i in range(int(rng.integers(1, 5))):
        n_gt = int(rng.integers(0, 6))
        segs, boxes, crowd = [], [], []
        gt_masks = []
        for _ in range(n_gt):
            poly = _polygon(rng, *rng.uniform(8, size - 8, 2), rng.uniform(3, 20))
            rle = mask_utils.merge(mask_utils.frPyObjects([poly], size, size))
            m = mask_utils.decode([rle])[..., 0].astype(bool)
            if not m.any():
                continue
            is_crowd = rng.random() < 0.15
            if is_crowd:  # COCO crowd annotations are uncompressed RLE
                flat = m.ravel(order="F").astype(np.uint8)
                change = np.flatnonzero(np.diff(np.r_[0, flat, 1 - flat[-1]]))
                counts = np.diff(np.r_[0, change]).tolist()
                segs.append({"size": [size, size], "counts": counts})
            else:
                segs.append([poly])
            x, y, w, h = mask_utils.toBbox(rle)
            boxes.append([x, y, x + w, y + h])
            crowd.append(is_crowd)
            gt_masks.append(m)
        labels = rng.integers(0, n_classes, size=len(boxes))
        samples.append(Sample(f"m{i}", f"m{i}.png", size, size, boxes=np.array(boxes).reshape(-1, 4), labels=labels,
                              iscrowd=crowd, segmentations=segs))
        n_dt = int(rng.integers(0, 8))
        masks = np.zeros((n_dt, size, size), bool)
        d_labels = rng.integers(0, n_classes, size=n_dt)
        for j in range(n_dt):
            if gt_masks and rng.random() < 0.7:
                src = int(rng.integers(0, len(gt_masks)))
                masks[j] = np.roll(gt_masks[src], tuple(rng.integers(-2, 3, 2)), axis=(0, 1))
                d_labels[j] = labels[src] if rng.random() < 0.8 else d_labels[j]
            else:
                x0, y0 = rng.integers(0, size - 10, 2)
                masks[j, y0 : y0 + rng.integers(2, 10), x0 : x0 + rng.integers(2, 10)] = True

        d_boxes = np.array([[*np.argwhere(mk).min(0)[::-1], *(np.argwhere(mk).max(0)[::-1] + 1)] for mk in masks]).reshape(-1, 4)
        scores = rng.choice(np.round(rng.uniform(0.1, 1, 4), 2), size=n_dt)
        dets.append(Detections(f"m{i}", d_boxes, scores, d_labels, masks=masks))
    return samples, dets, classes

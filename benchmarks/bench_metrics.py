"""Metrics speed: our engine vs faster-coco-eval and pycocotools, measured in the same run.

    python3 benchmarks/bench_metrics.py [--images 5000] [--classes 20] [--seed 0] [--skip-pycocotools]

Generated case: ``--images`` images, ``--classes`` classes, 1-14 objects and 0-99 detections per
image (jittered copies of the objects, some with the wrong class, plus 2% crowd regions).
Timed, each from in-memory inputs (JSON export excluded for everyone):
  ours      evaluate_detections + summary + per-class table + PR curves (IoU .5 and .5:.95) and
            P/R/F1-vs-score curves and F1-optimal thresholds for every class
  fce       faster-coco-eval evaluate + accumulate + summarize (its COCO index + loadRes are
            timed separately and left out of the main ratio, which makes the comparison harder for us)
  pycoco    pycocotools, the same steps
and re-thresholding (new per-class thresholds → per-class P/R/F1, confusion matrix, error list)
on the first 200 images, from cached matches. Also checks our AP against pycocotools' (1e-9).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detcore.metrics import evaluate_detections  # noqa: E402
from detcore.metrics.export import to_coco_detections, to_coco_gt  # noqa: E402
from detcore.structures import Detections, Sample  # noqa: E402


def generate_case(n_images: int, n_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    samples, dets = [], []
    for i in range(n_images):
        n_gt = int(rng.integers(1, 15))
        xy = rng.uniform(0, 500, (n_gt, 2))
        gt_boxes = np.hstack([xy, xy + rng.uniform(8, 200, (n_gt, 2))])
        gt_labels = rng.integers(0, n_classes, n_gt)
        samples.append(Sample(str(i + 1), f"{i + 1}.jpg", 700, 700, boxes=gt_boxes, labels=gt_labels,
                              iscrowd=rng.random(n_gt) < 0.02))
        n_dt = int(rng.integers(0, 100))
        src = rng.integers(0, n_gt, n_dt)
        boxes = gt_boxes[src] + rng.normal(0, 8, (n_dt, 4))
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels = np.where(rng.random(n_dt) < 0.7, gt_labels[src], rng.integers(0, n_classes, n_dt))
        dets.append(Detections(str(i + 1), boxes, rng.random(n_dt), labels))
    return samples, dets, [f"class{k}" for k in range(n_classes)]


def full_evaluation(samples, dets, classes):
    result = evaluate_detections(samples, dets, classes)
    result.summary()
    result.per_class()
    for name in classes:
        result.pr_curve(name, iou=0.5)
        result.pr_curve(name, iou=None)
        result.threshold_curve(name, iou=0.5)
    result.recommend_thresholds("f1")
    return result


def library_evaluation(coco_cls, eval_cls, gt_json, dt_json):
    """→ (seconds to index gt + loadRes, seconds for evaluate+accumulate+summarize, COCOeval)."""
    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        coco_gt = coco_cls()
        coco_gt.dataset = gt_json
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dt_json)
        loaded = time.perf_counter()
        ev = eval_cls(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return loaded - start, time.perf_counter() - loaded, ev


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def rethreshold_times(result, classes, repeats: int = 30) -> list[float]:
    rng = np.random.default_rng(1)
    times = []
    for _ in range(repeats):
        thr = {c: float(t) for c, t in zip(classes, rng.uniform(0.1, 0.9, len(classes)))}
        start = time.perf_counter()
        result.per_class(thr)
        result.confusion_matrix(thr)
        result.errors(thr)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-pycocotools", action="store_true", help="pycocotools takes ~15-30 s at 5000 images")
    args = ap.parse_args()

    samples, dets, classes = generate_case(args.images, args.classes, args.seed)
    gt_json, dt_json = to_coco_gt(samples, classes), to_coco_detections(dets, classes)
    print(f"case: {args.images} images, {args.classes} classes, {len(gt_json['annotations'])} gt, {len(dt_json)} detections")

    from faster_coco_eval import COCO as FastCOCO
    from faster_coco_eval import COCOeval_faster

    # warm-up on a tiny case so that no one pays first-call costs (lazy imports, allocator) in the timing
    tiny = generate_case(5, args.classes, args.seed + 1)
    full_evaluation(*tiny)
    library_evaluation(FastCOCO, COCOeval_faster, to_coco_gt(tiny[0], tiny[2]), to_coco_detections(tiny[1], tiny[2]))
    t_ours, result = timed(full_evaluation, samples, dets, classes)
    load_fce, eval_fce, ev_fce = library_evaluation(FastCOCO, COCOeval_faster, copy.deepcopy(gt_json), copy.deepcopy(dt_json))
    print(f"ours (full: summary, per-class, curves, sweep):  {t_ours:8.2f} s   AP={result.summary()['AP']:.6f}")
    print(f"faster-coco-eval evaluate+accumulate+summarize:  {eval_fce:8.2f} s   AP={ev_fce.stats[0]:.6f}"
          f"   (+ {load_fce:.2f} s COCO index + loadRes, not counted)")
    print(f"ratio ours / faster-coco-eval: {t_ours / eval_fce:.2f}x   (goal <= 1.0x, must be <= 1.5x); "
          f"including its loadRes: {t_ours / (eval_fce + load_fce):.2f}x")
    if not args.skip_pycocotools:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        load_pc, eval_pc, ev_pc = library_evaluation(COCO, COCOeval, copy.deepcopy(gt_json), copy.deepcopy(dt_json))
        ours = np.array([-1 if v is None else v for v in result.summary().values()])
        diff = float(np.max(np.abs(ours - ev_pc.stats)))
        print(f"pycocotools evaluate+accumulate+summarize:       {eval_pc:8.2f} s   AP={ev_pc.stats[0]:.6f}"
              f"   (+ {load_pc:.2f} s loadRes)")
        print(f"ratio ours / pycocotools: {t_ours / eval_pc:.2f}x   max |ours - pycocotools| over 12 stats: {diff:.1e}")

    n_small = min(200, args.images)
    small = evaluate_detections(samples[:n_small], dets[:n_small], classes)
    # the first view builds the threshold-independent caches (score sweeps, overlaps) once
    first = rethreshold_times(small, classes, repeats=1)[0]
    times = rethreshold_times(small, classes)
    print(f"re-threshold on {n_small} images (per-class P/R/F1 + confusion + errors): first view {1000 * first:.1f} ms, "
          f"then median {1000 * statistics.median(times):.1f} ms, max {1000 * max(times):.1f} ms (target < 50 ms)")


if __name__ == "__main__":
    main()

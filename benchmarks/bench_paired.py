"""Paired bootstrap speed: reweighting cached matches (detcore/metrics/paired.py) vs the obvious way,
re-evaluating every resampled image list from scratch, measured in the same run on the same draws.

    nice python3 benchmarks/bench_paired.py [--images 200] [--classes 3] [--replicates 30] [--seed 0]

Generated case: two runs on ``--images`` images (1-8 objects each, 0-99 detections per image: jittered
copies of the objects, some mislabelled, the rest low-scoring noise, as a 0.001 score floor leaves
them). Both arms compute, for every replicate, each run's per-class AP@[.5:.95], AP50 and F1 at 0.5
on the same image draws; the two arms are interleaved replicate by replicate and their numbers are
checked equal (1e-9). Ours runs a block of replicates at once, as ``paired_bootstrap`` does; the arms
alternate block by block. Prints milliseconds per replicate for each arm and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detcore.metrics import evaluate_detections  # noqa: E402
from detcore.metrics.paired import image_draws, replicate_metrics  # noqa: E402
from detcore.structures import Detections, Sample  # noqa: E402


def generate(n_images: int, n_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    samples, runs = [], ([], [])
    for i in range(n_images):
        n_gt = int(rng.integers(1, 9))
        xy = rng.uniform(0, 500, (n_gt, 2))
        boxes = np.hstack([xy, xy + rng.uniform(16, 200, (n_gt, 2))])
        labels = rng.integers(0, n_classes, n_gt)
        samples.append(Sample(f"im{i}", f"im{i}.jpg", 700, 700, boxes=boxes, labels=labels))
        for dets, noise in zip(runs, (4.0, 8.0)):
            n_dt = int(rng.integers(0, 100))
            src = rng.integers(0, n_gt, n_dt)
            d = boxes[src] + rng.normal(0, noise, (n_dt, 4))
            d[:, 2:] = np.maximum(d[:, 2:], d[:, :2] + 1)
            lab = np.where(rng.random(n_dt) < 0.8, labels[src], rng.integers(0, n_classes, n_dt))
            score = np.where(rng.random(n_dt) < 0.2, rng.uniform(0.3, 1.0, n_dt), rng.uniform(0.001, 0.3, n_dt))
            dets.append(Detections(f"im{i}", d, score, lab))
    return samples, runs, [f"c{k}" for k in range(n_classes)]


def resampled_metrics(samples, dets, classes, w):
    """The obvious way: build the resampled image list (an image drawn k times appears k times) and evaluate it."""
    s2, d2 = [], []
    for i, count in enumerate(w.astype(int)):
        for c in range(count):
            s, d = samples[i], dets[i]
            s2.append(Sample(f"{s.image_id}#{c}", s.image_path, s.width, s.height, boxes=s.boxes, labels=s.labels))
            d2.append(Detections(f"{s.image_id}#{c}", d.boxes, d.scores, d.labels))
    r = evaluate_detections(s2, d2, classes)
    table = r.per_class(0.5)
    return np.stack([table["AP"].to_numpy(), table["AP50"].to_numpy(), table["f1"].to_numpy()])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--replicates", type=int, default=32)
    ap.add_argument("--block", type=int, default=16, help="replicates per block (default 16)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    samples, runs, classes = generate(args.images, args.classes, args.seed)
    results = [evaluate_detections(samples, d, classes) for d in runs]
    draws = image_draws(len(samples), args.replicates, args.seed)
    thr = np.full(len(classes), 0.5)
    ours_s, naive_s, worst = 0.0, 0.0, 0.0
    for lo in range(0, len(draws), args.block):  # interleaved: a block of each arm at a time, same draws
        block = draws[lo:lo + args.block]
        t0 = time.perf_counter()
        mine = [replicate_metrics(r, thr, block) for r in results]
        t1 = time.perf_counter()
        theirs = [[resampled_metrics(samples, d, classes, w) for w in block] for d in runs]
        t2 = time.perf_counter()
        ours_s, naive_s = ours_s + (t1 - t0), naive_s + (t2 - t1)
        for m, per_rep in zip(mine, theirs):
            for b, t in enumerate(per_rep):
                got = np.stack([m["AP"][:, b], m["AP50"][:, b], m["f1"][:, b]])
                worst = max(worst, float(np.nanmax(np.abs(got - t))))
    n = len(draws)
    print(f"{args.images} images, {args.classes} classes, 2 runs, {sum(len(d) for d in runs[0]):,} + "
          f"{sum(len(d) for d in runs[1]):,} detections, {n} replicates")
    print(f"reweighting cached matches : {ours_s / n * 1000:8.1f} ms per replicate (both runs)")
    print(f"re-evaluating the resample : {naive_s / n * 1000:8.1f} ms per replicate (both runs)")
    print(f"ratio                      : {naive_s / ours_s:8.1f}x faster; largest difference {worst:.1e}")
    if worst > 1e-9:
        raise SystemExit("the two arms disagree")


if __name__ == "__main__":
    main()

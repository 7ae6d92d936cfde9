"""Data-loading benchmark for crop training: the decoded-image cache (``cache_images_mb``) against
decoding every image at every step, measured in the same run on the same images.

Loads the training items cpu-real's data loader would (``CropAtModelScale``: crops of 256 px cut at the
fitted 320 px scale, zoom 0.5-1.5, colour jitter 0.2) for ``--epochs`` passes, once without and once
with the cache, and prints items/s of the passes after the first (the cache fills during the first)
and their ratio. Without DATA it writes ``--images`` synthetic 12-megapixel JPEG photos (4000 x 3000,
as a phone takes them), where the cache also keeps each photo at the crop scale instead of full size.

    python benchmarks/bench_image_cache.py [DATA] [--images 24] [--epochs 3] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _photos(root: Path, n: int):
    """``n`` smooth 4000 x 3000 JPEG photos with a few boxes each (decode cost like a camera's)."""
    import numpy as np
    from PIL import Image

    from detcore.structures import ParsedDataset, Sample

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:3000, 0:4000]
    samples = []
    for i in range(n):
        base = (np.sin(xx / rng.uniform(50, 400)) + np.cos(yy / rng.uniform(50, 400))) * 60 + 128
        img = np.stack([base, base[::-1], base[:, ::-1]], axis=-1) + rng.normal(0, 8, (3000, 4000, 3))
        boxes = []
        for _ in range(5):
            x0, y0, s = int(rng.integers(0, 3700)), int(rng.integers(0, 2700)), int(rng.integers(60, 300))
            img[y0:y0 + s, x0:x0 + s] = rng.integers(0, 255, 3)
            boxes.append([x0, y0, x0 + s, y0 + s])
        path = root / f"photo{i:03d}.jpg"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
        samples.append(Sample(path.stem, path, 4000, 3000, boxes=boxes, labels=[0] * len(boxes)))
    return ParsedDataset("voc", root, ["thing"], samples)


def _items_per_s(dataset, epochs: int) -> tuple[float, float]:
    """(items/s of the first pass, items/s of the later passes)."""
    import torch

    torch.manual_seed(0)
    rates = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        rates.append(len(dataset) / (time.perf_counter() - t0))
    later = rates[1:] or rates
    return rates[0], sum(later) / len(later)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", help="a dataset folder (default: synthetic 12-megapixel photos)")
    ap.add_argument("--images", type=int, default=24, help="synthetic photos to write (default 24)")
    ap.add_argument("--epochs", type=int, default=3, help="passes over the images (default 3)")
    ap.add_argument("--limit", type=int, help="use only the first N images of DATA")
    ap.add_argument("--cache-mb", type=int, default=2048)
    args = ap.parse_args()

    import torch

    from detcore.data.crops import CropAtModelScale
    from detcore.data.dataset import DetectionDataset
    from detcore.data.detect import load_dataset

    torch.set_num_threads(1)  # the data loader's share of a 2-core machine
    with tempfile.TemporaryDirectory() as tmp:
        parsed = load_dataset(args.data) if args.data else _photos(Path(tmp) / "photos", args.images)
        samples = parsed.samples[:args.limit] if args.limit else parsed.samples
        crops = CropAtModelScale({"min_size": 320, "max_size": 533}, 256, scale_jitter=[0.5, 1.5], hflip=0.5,
                                 color_jitter=0.2)
        print(f"{len(samples)} images from {args.data or 'synthetic 4000 x 3000 JPEG photos'}; "
              f"{args.epochs} passes each", flush=True)
        rows = {}
        for name, cache in (("decode every time", 0), (f"cache {args.cache_mb} MB", args.cache_mb * 2**20)):
            dataset = DetectionDataset(samples, parsed.classes, crops, cache_bytes=cache)
            first, later = _items_per_s(dataset, args.epochs)
            rows[name] = later
            held = f", {dataset._cached_bytes / 2**20:.0f} MB held" if cache else ""
            print(f"  {name:<20} first pass {first:7.1f} items/s, later passes {later:7.1f} items/s{held}", flush=True)
        base, cached = rows.values()
        print(f"ratio (later passes, cache / decode every time): {cached / base:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

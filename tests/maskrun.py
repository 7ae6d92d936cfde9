"""Tiny Penn-Fudan-style data (``PNGImages/`` + ``PedMasks/`` instance-id PNGs) and one Mask R-CNN run
through the real trainer, shared by the mask tests (engine, CLI, app, browser) at session scope.

The run is for paths, not accuracy: 2 iterations from scratch on 80x64 images. Its split has all three
parts (hold-out 2 test images, a validation fraction), so the Evaluate page offers test / val / train.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MASK_SETTINGS = dict(model="maskrcnn_resnet50_fpn", weights="none", device="cpu", epochs=1, batch_size=2,
                     max_iters_per_epoch=2, min_size=64, max_size=96, eval_every=1, split_method="holdout",
                     split_n=2, val_fraction=0.25, warmup_iters=0, num_workers=0)


def write_tiny_pennfudan(root: Path, n: int = 10, *, size: tuple[int, int] = (80, 64), seed: int = 0) -> Path:
    """``n`` images with one or two upright "pedestrians" (filled ellipses), their instance masks, and
    the text annotations Penn-Fudan ships (only cross-checked by the reader)."""
    rng = np.random.default_rng(seed)
    w, h = size
    (root / "PNGImages").mkdir(parents=True, exist_ok=True)
    (root / "PedMasks").mkdir(exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        img = np.full((h, w, 3), (120, 130, 110), np.uint8) + rng.integers(0, 20, (h, w, 3)).astype(np.uint8)
        mask = np.zeros((h, w), np.uint8)
        for obj in range(1 + i % 2):
            cx, cy = 18 + obj * 40 + int(rng.integers(-4, 5)), 32 + int(rng.integers(-4, 5))
            inside = ((xx - cx) / 9.0) ** 2 + ((yy - cy) / 22.0) ** 2 <= 1
            mask[inside & (mask == 0)] = obj + 1
            img[inside] = (200, 60 + 80 * obj, 40)
        stem = f"FudanPed{i + 1:05d}"
        Image.fromarray(img).save(root / "PNGImages" / f"{stem}.png")
        Image.fromarray(mask).save(root / "PedMasks" / f"{stem}_mask.png")
    return root


@pytest.fixture(scope="session")
def mask_run_template(tmp_path_factory) -> tuple[Path, Path]:
    """(run dir, data dir): a finished Mask R-CNN run on tiny Penn-Fudan-style data. Copy before changing."""
    from detcore.train.config import TrainConfig
    from detcore.train.trainer import train

    base = tmp_path_factory.mktemp("mask-run")
    data = write_tiny_pennfudan(base / "data" / "pedestrians")
    config = TrainConfig(data=str(data), **MASK_SETTINGS)
    run_dir = base / "runs" / "mask-tiny"
    assert train(config, run_dir) == "completed"
    return run_dir, data


def copy_run(run: Path, target: Path) -> Path:
    """A copy of a run folder whose checkpoints are links to the original's (Mask R-CNN checkpoints are
    hundreds of MB): tests may write thresholds or configs into the copy, never checkpoints."""
    shutil.copytree(run, target, ignore=shutil.ignore_patterns("*.pt"))
    for ckpt in (run / "checkpoints").glob("*.pt"):
        (target / "checkpoints" / ckpt.name).symlink_to(ckpt.resolve())
    return target

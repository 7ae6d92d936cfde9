"""Tiny real data for the reliability tests: a VOC dataset on disk (so the CLI, the job registry and the
trainer read it the way a user's dataset is read), the fastest honest train settings, CLI runners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["red", "blue"]
COLOURS = [(220, 30, 30), (30, 30, 220)]

# The smallest Faster R-CNN at 64 px, CPU, no validation: one iteration takes a few tens of ms.
TINY = dict(model="fasterrcnn_mobilenet_v3_large_320_fpn", weights="none", device="cpu", batch_size=1,
            lr=0.001, min_size=64, max_size=96, eval_every=0, test_fraction=0.25, num_workers=0)


def write_tiny_voc(root: Path, n: int = 8, *, size: tuple[int, int] = (80, 64), seed: int = 0) -> Path:
    """Face Mask VOC layout: ``annotations/*.xml`` + ``images/*.png``, one coloured box per image."""
    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(parents=True, exist_ok=True)
    w, h = size
    for i in range(n):
        img = np.full((h, w, 3), 90, np.uint8)
        cls = i % 2
        x0, y0 = int(rng.integers(2, w - 30)), int(rng.integers(2, h - 26))
        img[y0:y0 + 24, x0:x0 + 28] = COLOURS[cls]
        Image.fromarray(img).save(root / "images" / f"img{i:03d}.png")
        (root / "annotations" / f"img{i:03d}.xml").write_text(
            f"<annotation><filename>img{i:03d}.png</filename><size><width>{w}</width><height>{h}</height>"
            f"<depth>3</depth></size><object><name>{CLASSES[cls]}</name><bndbox><xmin>{x0}</xmin>"
            f"<ymin>{y0}</ymin><xmax>{x0 + 28}</xmax><ymax>{y0 + 24}</ymax></bndbox></object></annotation>",
            encoding="utf-8")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    return root


def cli_env() -> dict:
    """The test's environment for a ``python -m detcore`` child: same DATA/RUNS roots, one thread
    (the CI machine has two cores and other tests run beside it), the repo on the path."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    return env


def detcore_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "detcore", *args]


def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(detcore_cmd(*args), cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)

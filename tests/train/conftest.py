"""Tiny real datasets for trainer tests: coloured rectangles on grey, written as PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detcore.structures import ParsedDataset, Sample
from detcore.train.config import TrainConfig

CLASSES = ["red", "blue"]
COLOURS = [(220, 30, 30), (30, 30, 220)]


def make_parsed(root: Path, n: int = 6, *, size: tuple[int, int] = (80, 64), seed: int = 0) -> ParsedDataset:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    w, h = size
    samples = []
    for i in range(n):
        img = np.full((h, w, 3), 90, np.uint8)
        cls = i % 2
        x0, y0 = int(rng.integers(2, w - 30)), int(rng.integers(2, h - 26))
        img[y0:y0 + 24, x0:x0 + 28] = COLOURS[cls]
        path = root / f"img{i:03d}.png"
        Image.fromarray(img).save(path)
        samples.append(Sample(f"img{i:03d}", path, w, h, boxes=[[x0, y0, x0 + 28, y0 + 24]], labels=[cls]))
    return ParsedDataset("voc", root, list(CLASSES), samples)


@pytest.fixture
def tiny_parsed(tmp_path) -> ParsedDataset:
    return make_parsed(tmp_path / "tiny")


def tiny_config(**overrides) -> TrainConfig:
    """Fastest honest run: the smallest Faster R-CNN, 64-px inputs, one image per step."""
    values = dict(model="fasterrcnn_mobilenet_v3_large_320_fpn", weights="none", device="cpu", epochs=1,
                  batch_size=1, lr=0.001, min_size=64, max_size=96, max_iters_per_epoch=2, eval_every=0,
                  test_fraction=0.34, schedule="step", augment={"hflip": 0.5})
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture
def make_config():
    return tiny_config

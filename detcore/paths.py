"""Where things live: runs under ./runs and datasets under ./data, overridable (DESIGN.md §2)."""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    return Path(os.environ.get("DETBOARD_DATA", "data")).resolve()


def runs_root() -> Path:
    return Path(os.environ.get("DETBOARD_RUNS", "runs")).resolve()


def demo_dataset_dir() -> Path:
    return data_root() / "demo"

"""The split a new run will use, computed before training starts (torch-free).

``plan_split(config, parsed)`` is the one place a TrainConfig's split settings (method, test
fraction or count, validation fraction, seed, the dataset's own split) become a ``Split``: the
trainer calls it when a run starts, the Train page calls it to preview the split before Start, and
both get the same image ids because the split is seeded. ``split_table`` counts images and objects
per class in each part — what a user checks before training (is every class in the test part?).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detcore.data.splits import Split, make_split
from detcore.structures import ParsedDataset

PARTS = ("train", "val", "test")
IMAGES_ROW = "(images)"


def plan_split(config, parsed: ParsedDataset) -> Split:
    """The split a new run of ``config`` (a TrainConfig) on ``parsed`` will use. Raises ConfigError /
    DataError for settings the dataset cannot satisfy (a hold-out larger than the dataset, no given split)."""
    return make_split([s.image_id for s in parsed.samples], config.split_method,
                      test_fraction=config.test_fraction, seed=config.split_seed, n=config.split_n,
                      root=parsed.root, val_fraction=config.val_fraction,
                      given=parsed.meta.get("given_split"))


def split_table(parsed: ParsedDataset, split: Split) -> pd.DataFrame:
    """One row of image counts (``(images)``), then one row per class of object counts; one column
    per non-empty part in train/val/test order. A class with 0 objects in the test part has no AP."""
    by_id = parsed.sample_by_id()
    k = len(parsed.classes)
    columns: dict[str, list] = {"class": [IMAGES_ROW, *parsed.classes]}
    for part in PARTS:
        ids = split.part(part)
        if not ids:
            continue
        labels = [by_id[i].labels for i in ids if i in by_id]
        counts = np.bincount(np.concatenate(labels).astype(np.int64), minlength=k) if labels else np.zeros(k, int)
        columns[part] = [sum(i in by_id for i in ids), *counts[:k].astype(int).tolist()]
    return pd.DataFrame(columns)

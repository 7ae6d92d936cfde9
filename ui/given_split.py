"""Train page: the split a dataset gives itself (VOC ImageSets/Main lists, YOLO train/val/test folders),
offered as the "imagesets" split method — the same as ``train --split-method imagesets``."""

from __future__ import annotations

from pathlib import Path

from detcore.errors import DetcoreError

SPLIT_LABELS = {"random": "random (test fraction, split seed)",
                "last_n": "last N images (file order)",
                "holdout": "hold-out N images (at random, split seed)",
                "imagesets": "the dataset's own split (VOC ImageSets / YOLO folders)"}


def given_split_note(dataset: str | Path) -> str | None:
    """One sentence about the dataset's own split, or None when it gives none (or cannot be read:
    the Data page shows that error; training would report it too)."""
    from detcore.commands.data import given_split_counts
    from ui.loaders import load_parsed_dataset

    try:
        parsed = load_parsed_dataset(dataset)
    except DetcoreError:
        return None
    if "given_split" not in parsed.meta:
        return None
    counts = given_split_counts(parsed)
    source = counts.pop("source")
    parts = ", ".join(f"{part} {n}" for part, n in counts.items())
    return (f"This dataset gives its own split ({source}: {parts} images). Choose "
            f"\"{SPLIT_LABELS['imagesets']}\" as Split to keep it.")

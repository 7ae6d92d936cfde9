"""Dataset statistics as pandas DataFrames, for the data explorer page and ``inspect``.

Every function takes a ParsedDataset and returns a DataFrame with stable column names; an empty
dataset gives an empty frame with the same columns, so callers never special-case it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detcore.structures import ParsedDataset


def class_counts(parsed: ParsedDataset) -> pd.DataFrame:
    """Columns: class, objects, images (images holding at least one), share (of all objects).
    Every class in the class list appears, including those with no objects."""
    objects = np.zeros(len(parsed.classes), np.int64)
    images = np.zeros(len(parsed.classes), np.int64)
    for s in parsed.samples:
        labels = s.labels[(s.labels >= 0) & (s.labels < len(parsed.classes))]
        objects += np.bincount(labels, minlength=len(parsed.classes))
        images[np.unique(labels)] += 1
    total = objects.sum()
    share = objects / total if total else np.zeros(len(objects))
    return pd.DataFrame({"class": list(parsed.classes), "objects": objects, "images": images, "share": share})


def objects_per_image(parsed: ParsedDataset) -> pd.DataFrame:
    """Columns: image_id, objects, then one count column per class."""
    rows = []
    for s in parsed.samples:
        counts = np.bincount(s.labels, minlength=len(parsed.classes))[: len(parsed.classes)]
        rows.append([s.image_id, s.num_objects, *counts.tolist()])
    return pd.DataFrame(rows, columns=["image_id", "objects", *parsed.classes])


def box_table(parsed: ParsedDataset) -> pd.DataFrame:
    """One row per object: image_id, class, x1..y2, width, height, area, aspect (w/h),
    relative_area (box area / image area, NaN when the image size is unknown), difficult, iscrowd."""
    cols = ["image_id", "class", "x1", "y1", "x2", "y2", "width", "height", "area", "aspect",
            "relative_area", "difficult", "iscrowd"]
    frames = []
    for s in parsed.samples:
        if not s.num_objects:
            continue
        b = s.boxes.astype(np.float64)
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        image_area = float(s.width * s.height) if s.width and s.height else np.nan
        frames.append(pd.DataFrame({
            "image_id": s.image_id, "class": [parsed.classes[i] for i in s.labels],
            "x1": b[:, 0], "y1": b[:, 1], "x2": b[:, 2], "y2": b[:, 3], "width": w, "height": h,
            "area": w * h, "aspect": np.divide(w, h, out=np.full_like(w, np.nan), where=h > 0),
            "relative_area": w * h / image_area, "difficult": s.difficult, "iscrowd": s.iscrowd}))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    return pd.concat(frames, ignore_index=True)[cols]


def image_table(parsed: ParsedDataset) -> pd.DataFrame:
    """One row per image: image_id, file, width, height, objects."""
    return pd.DataFrame({
        "image_id": [s.image_id for s in parsed.samples],
        "file": [str(s.image_path) for s in parsed.samples],
        "width": pd.array([s.width for s in parsed.samples], dtype="Int64"),
        "height": pd.array([s.height for s in parsed.samples], dtype="Int64"),
        "objects": [s.num_objects for s in parsed.samples],
    })


def problems_table(parsed: ParsedDataset) -> pd.DataFrame:
    """One row per problem: kind, file, detail, image_id."""
    return pd.DataFrame([p.as_dict() for p in parsed.problems], columns=["kind", "file", "detail", "image_id"])


def problem_counts(parsed: ParsedDataset) -> dict[str, int]:
    """{kind: count}, most frequent first."""
    counts: dict[str, int] = {}
    for p in parsed.problems:
        counts[p.kind] = counts.get(p.kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

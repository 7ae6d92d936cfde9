"""The one detection JSON that detboard writes: ``predict --json`` (for a run or an exported file)
and the Predict page's "Detections JSON" download both call :func:`detections_document`.

Documented in docs/detections.md. Shape (``schema`` names the version)::

    {"schema": "detboard.detections/1",
     "model": {"source": "runs/demo", "format": "run", "model": "ssdlite320_mobilenet_v3_large",
               "checkpoint": "best.pt"},
     "classes": ["with_mask", "without_mask", "mask_weared_incorrect"],
     "thresholds": {"with_mask": 0.5, "without_mask": 0.35, "mask_weared_incorrect": null},
     "images": [{"image": "photo.png", "width": 640, "height": 480,
                 "detections": [{"label": "with_mask", "score": 0.9312,
                                 "box": [12.5, 30.0, 88.25, 120.75],
                                 "mask": {"size": [480, 640], "counts": "..."}}]}]}

Boxes are xyxy in the input image's pixels (continuous coordinates), labels are class names,
``score`` is the model's confidence, ``mask`` (Mask R-CNN only) is a COCO compressed RLE of the
mask thresholded at 0.5. ``thresholds`` are the per-class score thresholds that were applied
(a detection is listed when score >= its class's threshold); ``null`` means the class was switched
off, so none of its detections are listed. Detections are sorted by score, highest first.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from detcore.structures import Detections

SCHEMA = "detboard.detections/1"
SCORE_DECIMALS = 5
BOX_DECIMALS = 2


def thresholds_by_class(classes: Sequence[str], thresholds: Sequence[float] | np.ndarray) -> dict[str, float | None]:
    """Per-class thresholds (class order) as the document's mapping; inf/NaN (class off) → None."""
    out: dict[str, float | None] = {}
    for name, value in zip(classes, np.asarray(thresholds, dtype=np.float64).reshape(-1)):
        out[name] = None if not math.isfinite(float(value)) else round(float(value), 6)
    return out


def image_record(name: str, width: int, height: int, dets: Detections, classes: Sequence[str]) -> dict:
    """One image's entry: its name, size and detections (score order)."""
    order = np.argsort(-dets.scores, kind="stable") if len(dets) else np.zeros(0, np.int64)
    rles = _mask_rles(dets, order)
    rows = []
    for k, j in enumerate(order):
        row: dict[str, Any] = {"label": classes[int(dets.labels[j])],
                               "score": round(float(dets.scores[j]), SCORE_DECIMALS),
                               "box": [round(float(v), BOX_DECIMALS) for v in dets.boxes[j]]}
        if rles is not None:
            row["mask"] = rles[k]
        rows.append(row)
    return {"image": str(name), "width": int(width), "height": int(height), "detections": rows}


def _mask_rles(dets: Detections, order: np.ndarray) -> list[dict] | None:
    if dets.masks is None:
        return None
    from detcore.metrics.masks import encode_bool_masks, rle_to_json

    return [rle_to_json(r) for r in encode_bool_masks(dets.masks[order])]


def detections_document(images: Sequence[tuple[str, int, int, Detections]], *, classes: Sequence[str],
                        thresholds: Sequence[float] | np.ndarray, model: dict[str, Any]) -> dict:
    """The whole document. ``images``: (name, width, height, detections already thresholded);
    ``thresholds``: the per-class thresholds that were applied (class order; inf = class off);
    ``model``: where the detections come from (``source``, ``format`` run|onnx|torchscript, ``model``,
    ``checkpoint``)."""
    return {"schema": SCHEMA, "model": dict(model), "classes": list(classes),
            "thresholds": thresholds_by_class(classes, thresholds),
            "images": [image_record(name, w, h, d, classes) for name, w, h, d in images]}

"""The metrics a training run records after each validation (the ``metrics`` of an ``epoch`` record).

Box metrics keep their COCO names (``AP``, ``AP50``, ...). For a mask model whose validation images
all have instance masks, the same summary for masks follows with a ``segm_`` prefix (``segm_AP``,
``segm_AP50``, ...), so a Mask R-CNN run charts both and old readers, which know only ``AP``, still work.
Undefined values (no ground truth) are None, as in ``evaluate --json``.
"""

from __future__ import annotations

import math

from detcore.metrics.masks import has_instance_masks
from detcore.metrics.result import EvaluationResult, evaluate_detections
from detcore.structures import Detections, Sample

SEGM_PREFIX = "segm_"


def _clean(summary: dict) -> dict:
    return {k: (None if v is None or not math.isfinite(v) else float(v)) for k, v in summary.items()
            if isinstance(v, (int, float)) or v is None}


def validation_metrics(samples: list[Sample], dets: list[Detections], classes: list[str]) -> dict:
    """COCO bbox summary, plus the segm summary under ``segm_*`` when every detection carries masks
    (``masks`` or ``mask_rles``) and the ground truth has instance masks."""
    return validation_evaluation(samples, dets, classes)[0]


def validation_evaluation(samples: list[Sample], dets: list[Detections],
                          classes: list[str]) -> tuple[dict, EvaluationResult]:
    """``validation_metrics`` and the bbox ``EvaluationResult`` it came from (PR curves for the
    experiment loggers)."""
    result = evaluate_detections(samples, dets, classes)
    metrics = _clean(result.summary())
    with_masks = all(d.masks is not None or d.mask_rles is not None for d in dets)
    if dets and with_masks and has_instance_masks(samples):
        segm = _clean(evaluate_detections(samples, dets, classes, iou_type="segm").summary())
        metrics.update({SEGM_PREFIX + k: v for k, v in segm.items()})
    return metrics, result

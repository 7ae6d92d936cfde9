"""Detection metrics: pycocotools-exact COCO AP/AR, VOC AP, and threshold science.

Entry points (docs/architecture.md, "Entry points between modules"): ``evaluate_detections`` → ``EvaluationResult``,
``load_coco_files``; ``voc.evaluate_voc``; ``export.to_coco_gt`` / ``to_coco_detections``.
"""

from detcore.metrics.coco_files import load_coco_files
from detcore.metrics.result import EvaluationResult, evaluate_detections

__all__ = ["EvaluationResult", "evaluate_detections", "load_coco_files"]

"""Evaluate page, issue 10 parts: the split parts the run really has, bbox / segm for mask models,
the error browser's picture with masks (ground truth outlined, predictions filled at a mask-threshold
slider), and the downloads that must equal the CLI: metrics JSON (= ``evaluate --json``) and the
COCO pair (predictions and ground truth, masks as RLE)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import streamlit as st

from detcore import viz
from detcore.catalog import model_info
from detcore.data.images import load_rgb
from detcore.errors import DetcoreError
from detcore.metrics.detailed import detailed_json
from detcore.metrics.export import coco_image_id_map, to_coco_detections, to_coco_gt
from detcore.metrics.masks import has_instance_masks
from detcore.train.runs import Run
from ui.feedback import shown_errors
from ui.loaders import load_soft_masks

PART_ORDER = ("test", "val", "train")
IOU_TYPES = {"bbox": "boxes (bbox)", "segm": "masks (segm)"}
MASK_THRESHOLD_KEY = "eval_mask_threshold"


def run_parts(run_dir: Path) -> list[str]:
    """The non-empty parts of the run's split, test first; [] when split.json cannot be read."""
    try:
        split = Run(run_dir).split()
    except DetcoreError:
        return []
    return [part for part in PART_ORDER if split.part(part)]


def is_mask_run(run_dir: Path) -> bool:
    try:
        return model_info(Run(run_dir).config().model).has_masks
    except DetcoreError:
        return False


def evaluation_choice_ui(run_dir: Path) -> tuple[str, str]:
    """(split part, IoU type): only the parts the run has; the bbox / segm toggle for mask models."""
    parts = run_parts(run_dir) or ["test"]  # an unreadable split is reported by the evaluation itself
    if st.session_state.get("eval_split") not in parts:
        st.session_state.pop("eval_split", None)  # a part of the previous run this one does not have
    left, right = st.columns([2, 2])
    with left:
        split = st.segmented_control("Split", parts, default=parts[0], key="eval_split",
                                     help="The parts of this run's split (saved when it started).") or parts[0]
    iou_type = "bbox"
    if is_mask_run(run_dir):
        with right:
            iou_type = st.segmented_control(
                "IoU type", list(IOU_TYPES), default="bbox", format_func=IOU_TYPES.get, key="eval_iou_type",
                help="bbox matches predicted boxes to ground-truth boxes; segm matches masks by mask IoU "
                     "(COCO's segm AP). The table, curves, confusion matrix and error browser follow it.") or "bbox"
    return split, iou_type


def error_picture_ui(evaluated, sample, kept, per_class: np.ndarray) -> None:
    """The error browser's image: boxes (hoverable), ground-truth masks outlined and, for mask models,
    the predicted masks above the score thresholds filled at the mask-threshold slider."""
    result = evaluated.result
    image = load_rgb(sample.image_path)
    height, width = image.shape[:2]
    gt_masks = viz.ground_truth_masks(sample, (width, height))
    det_masks, det_labels, note = None, (), ""
    if is_mask_run(Path(evaluated.run_dir)):
        threshold = st.slider("Mask threshold", 0.05, 0.95, 0.5, 0.05, key=MASK_THRESHOLD_KEY,
                              help="A pixel belongs to a predicted mask when the model's mask probability is at "
                                   "least this (0.5 is what segm AP uses).")
        floor = max(0.001, math.floor(float(per_class.min()) * 100) / 100)
        with shown_errors(stop=False):
            dets, probs = load_soft_masks(Path(evaluated.run_dir), sample, floor)
            if probs is not None:
                cut = per_class[dets.labels] if len(dets) else np.zeros(0)
                keep = dets.scores >= cut
                det_masks, det_labels = probs[keep] >= round(threshold * 255), dets.labels[keep]
                note = f" · filled: predicted masks at mask threshold {threshold:.2f}"
    picture = viz.draw_mask_layers(image, result.classes, gt_masks=gt_masks, gt_labels=sample.labels,
                                   det_masks=det_masks, det_labels=det_labels)
    figure = viz.image_figure(picture, kept, result.classes, ground_truth=sample)
    st.plotly_chart(figure, key="eval_error_figure", config={"displayModeBar": False})
    outlines = " · outlined: ground-truth masks" if gt_masks is not None else ""
    st.caption("Dashed: ground-truth boxes · solid: predictions above the thresholds (hover for class and score)"
               + outlines + note)


def metrics_json(evaluated, thresholds: dict[str, float], target_precision: float) -> str:
    """What ``evaluate RUN --json --thresholds ...`` prints for this run, split and IoU type."""
    return json.dumps(detailed_json(evaluated.result, thresholds, threshold_source="page",
                                    target_precision=target_precision, ci=evaluated.ci), indent=2)


def _with_masks(evaluated) -> bool:
    return (all(d.mask_rles is not None or d.masks is not None for d in evaluated.detections)
            and has_instance_masks(evaluated.samples))


def coco_predictions_json(evaluated) -> str:
    ids = coco_image_id_map([s.image_id for s in evaluated.samples])
    return json.dumps(to_coco_detections(evaluated.detections, evaluated.result.classes, image_id_map=ids,
                                         with_masks=_with_masks(evaluated)))


def coco_ground_truth_json(evaluated) -> str:
    ids = coco_image_id_map([s.image_id for s in evaluated.samples])
    return json.dumps(to_coco_gt(evaluated.samples, evaluated.result.classes, image_id_map=ids,
                                 with_masks=_with_masks(evaluated)))


def coco_downloads_ui(evaluated, run_name: str, predictions_col, ground_truth_col) -> None:
    """The COCO pair of this evaluation (same image ids in both; masks as RLE for mask runs):
    pycocotools on it gives the numbers on this page."""
    suffix = f"{run_name}-{evaluated.split}"
    predictions_col.download_button("Predictions (COCO JSON)", lambda: coco_predictions_json(evaluated),
                                    file_name=f"{suffix}-detections-coco.json", mime="application/json",
                                    on_click="ignore", key="eval_download_coco_dt")
    ground_truth_col.download_button("Ground truth (COCO JSON)", lambda: coco_ground_truth_json(evaluated),
                                     file_name=f"{suffix}-gt-coco.json", mime="application/json",
                                     on_click="ignore", key="eval_download_coco_gt")

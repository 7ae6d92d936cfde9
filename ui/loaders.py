"""Cached readers the pages share. Each one wraps a detcore call; the cache keys carry a file stamp
(mtime) so an edited dataset or a new checkpoint is picked up without restarting the app."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from detcore import viz
from detcore.data.detect import load_dataset
from detcore.data.images import load_rgb
from detcore.metrics import evaluate_detections
from detcore.structures import ParsedDataset
from detcore.train.runs import Run

STAMP_DEPTH = 3  # YOLO's labels/train/, COCO's images/train2017/ sit two levels down


def folder_stamp(path: str | Path, depth: int = STAMP_DEPTH) -> float:
    """Latest mtime among a folder, its direct children and its sub-folders ``depth`` levels down —
    changes when files are added, removed or replaced anywhere in a dataset's usual layout (a file
    edited in place below the top level keeps its folder's mtime; save it under a new name)."""
    path = Path(path)
    try:
        latest = path.stat().st_mtime
    except OSError:
        return 0.0
    if not path.is_dir():
        return latest
    folders = [(path, 0)]
    while folders:
        folder, level = folders.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                        if level == 0 or is_dir:
                            latest = max(latest, entry.stat().st_mtime)
                    except OSError:
                        continue  # vanished or unreadable: the dataset reader reports it
                    if is_dir and level + 1 < depth:
                        folders.append((Path(entry.path), level + 1))
        except OSError:
            continue
    return latest


@st.cache_resource(show_spinner="Reading the dataset…", max_entries=8)
def _parsed_dataset(path: str, fmt: str, stamp: float) -> ParsedDataset:
    # cache_resource, not cache_data: a ParsedDataset is read-only for the pages, so no per-call copy.
    return load_dataset(path, format=fmt, verify_images=True)


def load_parsed_dataset(path: str | Path, fmt: str = "auto") -> ParsedDataset:
    """The dataset at ``path`` (folder or .zip), image headers verified; raises DataError."""
    return _parsed_dataset(str(path), fmt, folder_stamp(path))


@st.cache_data(show_spinner=False, max_entries=64)
def _sample_image(image_path: str, stamp: float, _sample, _classes: tuple[str, ...]):
    return viz.draw_ground_truth(load_rgb(image_path), _sample, list(_classes))


def load_sample_image(parsed: ParsedDataset, sample):
    """A dataset image with its ground truth drawn (boxes coloured by class, masks when present)."""
    path = Path(sample.image_path)
    return _sample_image(str(path), path.stat().st_mtime if path.exists() else 0.0, sample, tuple(parsed.classes))


@st.cache_data(show_spinner="Drawing augmented samples…", max_entries=16)
def _augmented(image_path: str, stamp: float, annotation: str, augment_items: tuple, n: int, seed: int, _sample,
               _classes: tuple[str, ...]):
    from detcore.data.preview import augmented_previews  # torch: the trainer's own transforms

    return augmented_previews(_sample, list(_classes), dict(augment_items), n=n, seed=seed)


def load_augmented_previews(parsed: ParsedDataset, sample, augment: dict, *, n: int, seed: int) -> list:
    """``n`` random draws of the training augmentation on one dataset image, boxes (and masks) drawn."""
    path = Path(sample.image_path)
    items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in augment.items()))
    annotation = hashlib.sha1(sample.boxes.tobytes() + sample.labels.tobytes() + str(sample.mask_path).encode()
                              + repr(sample.segmentations).encode()).hexdigest()
    return _augmented(str(path), path.stat().st_mtime if path.exists() else 0.0, annotation, items, n, seed, sample,
                      tuple(parsed.classes))


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def _predictor(run_dir: str, stamp: str):
    from detcore.inference import Predictor  # torch: loaded with the first model, not with the page

    return Predictor.from_run(run_dir, checkpoint="best", device="auto")


def load_predictor(run_dir: Path):
    """(Predictor for the run's best checkpoint, the checkpoint stamp that keys prediction caches)."""
    stamp = Run(run_dir).checkpoint_stamp()
    return _predictor(str(run_dir), stamp), stamp


@dataclass
class EvaluatedRun:
    """What the Evaluate page reads: the result (cached matches) plus the images and detections
    behind it, for the error browser and the COCO export."""

    result: object  # detcore.metrics.EvaluationResult
    samples: list
    detections: list
    ci: object  # per-class bootstrap interval table (pandas), or None when it failed
    iou_type: str = "bbox"
    run_dir: str = ""
    split: str = "test"


@st.cache_resource(show_spinner="Evaluating the run (runs the model once over the split)…", max_entries=4)
def _evaluation(run_dir: str, split: str, stamp: str, iou_type: str = "bbox") -> EvaluatedRun:
    from detcore.evaluation import check_iou_type, check_masks, run_predictions  # torch: runs the model
    from detcore.metrics.detailed import BOOT_SEED, N_BOOT

    check_iou_type(run_dir, iou_type)
    samples, dets = run_predictions(run_dir, split=split)  # cached on disk: bbox and segm share it
    check_masks(samples, iou_type, Run(run_dir).config().data)
    result = evaluate_detections(samples, dets, Run(run_dir).classes(), iou_type=iou_type)
    return EvaluatedRun(result, samples, dets, result.bootstrap_ci(n_boot=N_BOOT, seed=BOOT_SEED), iou_type,
                        run_dir, split)


def load_evaluation(run_dir: Path, split: str, iou_type: str = "bbox") -> EvaluatedRun:
    """The run's evaluation on ``split`` (boxes, or masks with ``iou_type="segm"``): computed once per
    checkpoint, then thresholds only filter."""
    return _evaluation(str(run_dir), split, Run(run_dir).checkpoint_stamp(), iou_type)


@st.cache_data(show_spinner="Running the model on this image for its masks…", max_entries=4)
def _soft_masks(run_dir: str, stamp: str, image_path: str, image_id: str, score_floor: float):
    predictor = _predictor(run_dir, stamp)
    return predictor.predict_soft_masks(load_rgb(image_path), image_id=image_id, score_floor=score_floor)


def load_soft_masks(run_dir: Path, sample, score_floor: float):
    """(Detections, uint8 mask probabilities or None) of the run's model on one dataset image, so the
    Evaluate page can draw predicted masks at any mask threshold."""
    stamp = Run(run_dir).checkpoint_stamp()
    return _soft_masks(str(run_dir), stamp, str(sample.image_path), sample.image_id, float(score_floor))

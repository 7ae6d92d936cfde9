"""Fit the detector to the data when a run starts: resolve ``anchors`` / ``input_size`` ("auto",
a number, an explicit anchor spec) into the geometry the model is built with, from the training
split's boxes only (never validation or test). The result is plain JSON, stored in config.json
(``geometry``) and therefore in every checkpoint, so the Predictor, evaluation and ``--resume``
rebuild the same model.
"""

from __future__ import annotations

import numpy as np

from detcore import geometry as g
from detcore.data.crops import CropAtModelScale
from detcore.data.dataset import build_transforms
from detcore.train.config import TrainConfig


def needs_geometry(config: TrainConfig) -> bool:
    return config.geometry is not None or config.anchors != "default" or config.input_size != "default" \
        or bool(config.augment.get("crop"))


def resolve_geometry(config: TrainConfig, train_samples: list, classes: list[str]) -> dict | None:
    """The run's geometry: the config's own when already resolved, else fitted now (None = the
    model's torchvision defaults, for configs that ask for nothing)."""
    if config.geometry is not None:
        return config.geometry
    if not needs_geometry(config):
        return None
    layout = g.layout_for(config.model)
    boxset = g.boxes_from_samples(train_samples, classes)
    if config.input_size == "default" and (config.min_size or config.max_size):  # crop runs keep min/max_size
        base = g.resize_spec_with_overrides(layout, config.min_size, config.max_size)
        fitted = g.fit_geometry(config.model, boxset, anchors=config.anchors, input_size=base)
    else:
        fitted = g.fit_geometry(config.model, boxset, anchors=config.anchors, input_size=config.input_size,
                                max_input=config.max_input_size, crops=bool(config.augment.get("crop")))
    default = g.best_possible_recall(layout, layout.default_geometry(), boxset) if len(boxset) else None
    return {"input": fitted["input"], "anchors": fitted["anchors"],
            **({"crop_input": fitted["crop_input"]} if "crop_input" in fitted else {}),
            "fit": {"split": "train", "images": len(train_samples), "boxes": len(boxset),
                    "anchors": config.anchors if isinstance(config.anchors, str) else "explicit",
                    "input_size": config.input_size,
                    "best_possible_recall": round(fitted["best_possible_recall"], 4) if len(boxset) else None,
                    "default_best_possible_recall": round(default, 4) if default is not None else None,
                    "heads": g.head_notes(config.model, fitted["anchors"], config.weights)}}


def class_weights(samples: list, n_classes: int) -> list[float]:
    """``1 / sqrt(frequency)`` of each class among the boxes of ``samples`` (a class without boxes: 0)."""
    counts = np.bincount(np.concatenate([np.asarray(s.labels, np.int64) for s in samples] or [np.zeros(0, np.int64)]),
                         minlength=n_classes).astype(np.float64)[:n_classes]
    freq = counts / max(counts.sum(), 1.0)
    return [float(1.0 / np.sqrt(f)) if f > 0 else 0.0 for f in freq]


def image_weights(samples: list, n_classes: int) -> list[float]:
    """How often to draw each training image so that rare classes are seen more often (repeat-factor
    sampling, as in LVIS): an image weighs ``1 / sqrt(f)`` for the rarest class it holds, ``f`` being
    the share of training images that hold that class; an image without boxes weighs 1. Used with
    ``augment.balanced_crops``; the cpu-real notes in detcore/train/presets.py have the measurement."""
    holds = [np.unique(np.asarray(s.labels, np.int64)) for s in samples]
    counts = np.bincount(np.concatenate(holds or [np.zeros(0, np.int64)]), minlength=n_classes)[:n_classes]
    freq = counts / max(len(samples), 1)
    per_class = np.where(freq > 0, 1.0 / np.sqrt(np.maximum(freq, 1e-12)), 1.0)
    return [float(per_class[h].max()) if len(h) else 1.0 for h in holds]


def train_transforms(config: TrainConfig, geometry: dict | None, samples: list | None = None,
                     n_classes: int | None = None):
    """The training split's transforms: crops at the model's scale when ``augment.crop`` is set
    (placed by class weight when ``augment.balanced_crops``; ``samples`` are the training split)."""
    crop = config.augment.get("crop")
    if not crop:
        return build_transforms(True, config.augment)
    spec = (geometry or {}).get("crop_input") or (geometry or {}).get("input") or g.layout_for(config.model).input
    weights = class_weights(samples, n_classes) if config.augment.get("balanced_crops") and samples else None
    return CropAtModelScale(spec, int(crop), scale_jitter=config.augment.get("scale_jitter"),
                            hflip=config.augment.get("hflip") or 0.0,
                            color_jitter=config.augment.get("color_jitter") or 0.0, class_weights=weights)

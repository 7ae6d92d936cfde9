"""TrainConfig: every setting of a run, validated up front and stored as `config.json`.

A config is plain JSON-able data so it can live in the run directory and inside checkpoints that
load with ``weights_only=True``. ``validate()`` turns any out-of-range value into a ConfigError
naming the setting, before a single image is loaded.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from detcore.errors import ConfigError
from detcore.geometry import check_anchors, layout_for
from detcore.train.presets import PRESETS

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "none")
DEVICES = ("auto", "cpu", "cuda")
SPLIT_METHODS = ("random", "last_n", "holdout", "imagesets")
# crop: train on random square crops of this side (model-input pixels) cut from the image at the
# model's own scale (times scale_jitter), and predict on whole images — see detcore/data/crops.py.
# balanced_crops: rare classes more often — images drawn by 1/sqrt of the image frequency of the rarest
# class they hold (fitting.image_weights; not under torchrun), crops placed around objects drawn by
# 1/sqrt(class frequency).
AUGMENT_DEFAULTS = {"hflip": 0.5, "rotate": 0.0, "scale_jitter": None, "color_jitter": 0.0, "crop": None,
                    "balanced_crops": False}
GEOMETRY_CHOICES = ("default", "auto")
CLASSIFIER_MAX_SHARE = 0.25  # of a time limit: cpu-real's 3.5 of 15 minutes fits under it
MAX_LR = 1.0  # a detector's learning rate is ~1e-4..1e-1; above 1 every optimiser here diverges
MAX_NUM_WORKERS = 64  # data-loader processes; 100,000 made the run folder, then hung spawning them


@dataclass
class TrainConfig:
    # what to train
    data: str | None = None
    data_format: str = "auto"
    model: str = "fasterrcnn_mobilenet_v3_large_fpn"
    weights: str = "coco"
    trainable_backbone_layers: int | None = None
    min_size: int | None = None  # the detector's internal resize; None = torchvision default
    max_size: int | None = None
    # geometry (detcore/geometry.py): "default" keeps torchvision's, "auto" fits to the training
    # split's boxes, or an explicit value (anchor spec dict / input size in pixels)
    anchors: str | dict = "default"
    input_size: str | int = "default"
    max_input_size: int | None = None  # cap for input_size="auto" (CPU cost grows with pixels)
    geometry: dict | None = None  # the resolved input size + anchors (written when the run starts)
    # optimisation (defaults: the finetuning tutorial)
    epochs: int = 10
    batch_size: int = 2
    lr: float = 0.005
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    step_size: int = 3
    gamma: float = 0.1
    warmup_iters: int = 0
    grad_clip: float | None = None
    # exponential moving average of the weights (decay per step; None / 0 = off): validation, best.pt and
    # prediction use the average, training continues on the raw weights (both are in last.pt for resume)
    ema_decay: float | None = None
    amp: bool = True  # float16 mixed precision; only takes effect on CUDA
    # bfloat16 autocast for training on a CPU with native bf16 (AVX512-BF16 / AMX); ignored elsewhere.
    # Validation and prediction stay float32. Measured: a ResNet-18 FCOS step 1.6x faster.
    cpu_bf16: bool = False
    channels_last: bool = False  # channels-last memory format for training, on any device
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    # keep decoded training images in memory, up to this many MB (0 = decode each time); saves a fifth of
    # a cpu-real step on PNG photos; each data-loader worker holds its own copy
    cache_images_mb: int = 0
    max_iters_per_epoch: int | None = None  # cap for smoke runs and benchmarks
    # wall-clock budget in minutes: the LR schedule is laid over the steps that fit (measured as it
    # trains), training stops in time to validate and keep the best checkpoint; epochs then only
    # shape the schedule (step decays at the same fractions) and do not cap the run
    time_limit: float | None = None
    # minutes to train a crop classifier after the detector, which re-scores each detected object's class
    # from a crop of it (detcore/crop_classifier.py; 0 = off). Under time_limit they are part of it, at most
    # CLASSIFIER_MAX_SHARE of it (classifier_budget)
    classifier_minutes: float = 0.0
    # data split (ids are stored in split.json; these say how they were made)
    split_method: str = "random"
    split_seed: int = 0
    test_fraction: float = 0.2
    val_fraction: float = 0.0  # 0: validate on the test split, as the tutorial did
    split_n: int | None = None  # for split_method="last_n"
    augment: dict = field(default_factory=lambda: dict(AUGMENT_DEFAULTS))
    # evaluation and stopping
    eval_every: int = 1  # epochs between validations; 0 = never
    early_stopping_patience: int = 0  # validations without AP improvement; 0 = off
    preset: str | None = None

    def __post_init__(self) -> None:
        self.augment = {**AUGMENT_DEFAULTS, **(self.augment or {})}  # a partial dict means "the rest default"

    def classifier_budget(self) -> float:
        """Minutes the crop classifier stage trains: ``classifier_minutes``, under a time limit at most
        ``CLASSIFIER_MAX_SHARE`` of it (so a short limit leaves the detector most of it)."""
        if self.time_limit:
            return min(self.classifier_minutes, self.time_limit * CLASSIFIER_MAX_SHARE)
        return self.classifier_minutes

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A config from JSON-like data; unknown settings and values of the wrong type are refused
        (ConfigError naming the setting), so a hand-edited config.json fails here, not mid-training."""
        if not isinstance(d, dict):
            raise ConfigError("config", f"expected an object of settings, got {type(d).__name__}")
        known = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError("config", f"unknown setting(s): {', '.join(unknown)}")
        for name, value in d.items():
            if not _has_type(value, known[name]):
                raise ConfigError(name, f"{value!r} is not a valid value (expected {known[name]})")
        return cls(**d)

    def validate(self, *, dataset_size: int | None = None) -> "TrainConfig":
        """Raise ConfigError for the first bad setting; return self so calls can chain."""
        from detcore.models import get_spec, require_weights

        spec = get_spec(self.model)
        for f in dataclasses.fields(self):  # inf passes "> 0" and 1e308 overflows float32 in the optimiser
            value = getattr(self, f.name)
            _check(not isinstance(value, float) or math.isfinite(value) or f.name == "lr", f.name,
                   f"must be a finite number (got {value})")
        _check(self.epochs >= 1, "epochs", f"must be at least 1 (got {self.epochs})")
        _check(self.batch_size >= 1, "batch_size", f"must be at least 1 (got {self.batch_size})")
        _check(0 < self.lr <= MAX_LR, "lr", f"must be a positive finite number, at most {MAX_LR:g} (got {self.lr})")
        _check(self.optimizer in OPTIMIZERS, "optimizer", f"{self.optimizer!r} is not one of {OPTIMIZERS}")
        _check(self.schedule in SCHEDULES, "schedule", f"{self.schedule!r} is not one of {SCHEDULES}")
        _check(self.device in DEVICES, "device", f"{self.device!r} is not one of {DEVICES}")
        _check(self.split_method in SPLIT_METHODS, "split_method", f"{self.split_method!r} is not one of {SPLIT_METHODS}")
        _check(0 <= self.momentum < 1, "momentum", f"must be in [0, 1) (got {self.momentum})")
        _check(self.weight_decay >= 0, "weight_decay", f"must be >= 0 (got {self.weight_decay})")
        _check(self.step_size >= 1, "step_size", f"must be at least 1 (got {self.step_size})")
        _check(0 < self.gamma <= 1, "gamma", f"must be in (0, 1] (got {self.gamma})")
        _check(self.warmup_iters >= 0, "warmup_iters", f"must be >= 0 (got {self.warmup_iters})")
        _check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", f"must be positive (got {self.grad_clip})")
        _check(0 < self.test_fraction < 1, "test_fraction", f"must be in (0, 1) (got {self.test_fraction})")
        _check(0 <= self.val_fraction < 1 - self.test_fraction, "val_fraction",
               f"must be in [0, 1 - test_fraction) (got {self.val_fraction})")
        _check(self.eval_every >= 0, "eval_every", f"must be >= 0 (got {self.eval_every})")
        _check(self.early_stopping_patience >= 0, "early_stopping_patience", "must be >= 0")
        _check(0 <= self.num_workers <= MAX_NUM_WORKERS, "num_workers",
               f"must be in [0, {MAX_NUM_WORKERS}] (got {self.num_workers})")
        _check(0 <= self.cache_images_mb <= 10_000_000, "cache_images_mb",
               f"must be a number of megabytes >= 0 (got {self.cache_images_mb})")
        _check(self.ema_decay is None or 0 <= self.ema_decay < 1, "ema_decay",
               f"must be in [0, 1), e.g. 0.998; 0 = off (got {self.ema_decay})")
        _check(self.max_iters_per_epoch is None or self.max_iters_per_epoch >= 1, "max_iters_per_epoch", "must be >= 1")
        for name in ("min_size", "max_size", "max_input_size"):
            v = getattr(self, name)
            _check(v is None or v >= 32, name, f"must be at least 32 pixels (got {v})")
        _check(self.time_limit is None or self.time_limit > 0, "time_limit",
               f"must be a positive number of minutes (got {self.time_limit})")
        _check(self.classifier_minutes >= 0, "classifier_minutes",
               f"must be a number of minutes >= 0; 0 = no crop classifier (got {self.classifier_minutes})")
        if self.classifier_minutes:
            _check(not spec.has_masks, "classifier_minutes",
                   f"the crop classifier re-scores boxes only; {spec.name} predicts masks, so set it to 0")
        self._validate_geometry(spec)
        require_weights(spec.name, self.weights)  # unsupported mode, missing file, offline: say so now
        _check(set(self.augment) <= set(AUGMENT_DEFAULTS), "augment",
               f"unknown augmentation(s) {sorted(set(self.augment) - set(AUGMENT_DEFAULTS))}")
        _check_augment(self.augment)
        _check(self.split_n is None or self.split_n >= 1, "split_n", f"must be at least 1 (got {self.split_n})")
        _check(self.split_method != "holdout" or self.split_n is not None, "split_n",
               "the holdout split needs a test image count (--split-n N)")
        _check(self.trainable_backbone_layers is None or 0 <= self.trainable_backbone_layers <= 5,
               "trainable_backbone_layers", f"must be in 0..5 (got {self.trainable_backbone_layers})")
        crop = self.augment.get("crop")
        if crop is not None:
            _check(isinstance(crop, int) and not isinstance(crop, bool) and 32 <= crop <= 4096, "augment.crop",
                   f"must be a crop side in pixels between 32 and 4096 (got {crop!r})")
            _check(spec.fixed_size is None, "augment.crop",
                   f"{spec.name} squeezes every image to a fixed square, so it cannot train on crops")
            _check(not self.augment.get("rotate"), "augment.crop", "crops and rotation cannot be combined")
        if dataset_size is not None:
            _check(dataset_size > 0, "data", "the training split is empty")
            _check(self.batch_size <= dataset_size, "batch_size",
                   f"{self.batch_size} is larger than the {dataset_size} training images")
        return self

    def _validate_geometry(self, spec) -> None:
        anchors, size = self.anchors, self.input_size
        if isinstance(anchors, dict):
            check_anchors(layout_for(spec.name), anchors)
        else:
            _check(anchors in GEOMETRY_CHOICES, "anchors",
                   f"{anchors!r} is not default, auto or an anchor specification (sizes and aspect_ratios)")
        if not (isinstance(size, str) and size in GEOMETRY_CHOICES):
            _check(isinstance(size, int) and not isinstance(size, bool) and 32 <= size <= 4096, "input_size",
                   f"{size!r} is not default, auto or a number of pixels between 32 and 4096")
        _check(size == "default" or not (self.min_size or self.max_size), "input_size",
               "set either input_size or min_size/max_size, not both")
        if self.geometry is not None:
            _check(isinstance(self.geometry, dict) and {"input", "anchors"} <= set(self.geometry), "geometry",
                   "must hold 'input' and 'anchors' (as written by a run)")


_TYPE_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "dict": lambda v: isinstance(v, dict),
    "None": lambda v: v is None,
}


def _has_type(value: Any, annotation: str) -> bool:
    """``value`` fits a field annotation written as a union of the simple names above."""
    return any(_TYPE_CHECKS.get(part.strip(), lambda v: True)(value) for part in str(annotation).split("|"))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def _check_augment(augment: dict) -> None:
    """hflip: probability; rotate: degrees in [0, 180]; scale_jitter: F in [0, 1) (zoom 1 ± F) or a
    [lo, hi] zoom range; color_jitter: strength in [0, 1]. 0 / None switches one off."""
    hflip, rotate = augment.get("hflip") or 0, augment.get("rotate") or 0
    scale, colour = augment.get("scale_jitter") or 0, augment.get("color_jitter") or 0
    _check(_number(hflip) and 0 <= hflip <= 1, "augment.hflip", f"must be a probability in [0, 1] (got {hflip!r})")
    _check(_number(rotate) and 0 <= rotate <= 180, "augment.rotate", f"must be degrees in [0, 180] (got {rotate!r})")
    if isinstance(scale, (list, tuple)):
        _check(len(scale) == 2 and all(_number(v) for v in scale) and 0 < scale[0] <= scale[1], "augment.scale_jitter",
               f"a zoom range must be [lo, hi] with 0 < lo <= hi (got {scale!r})")
    else:
        _check(_number(scale) and 0 <= scale < 1, "augment.scale_jitter", f"must be in [0, 1) (got {scale!r})")
    _check(_number(colour) and 0 <= colour <= 1, "augment.color_jitter", f"must be in [0, 1] (got {colour!r})")


def _check(ok: bool, setting: str, problem: str) -> None:
    if not ok:
        raise ConfigError(setting, problem)


def config_from_preset(name: str, **overrides: Any) -> TrainConfig:
    """The preset's values with ``overrides`` (None values ignored) on top."""
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}, "preset": name}
    return TrainConfig.from_dict(values)

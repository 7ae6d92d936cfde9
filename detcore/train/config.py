"""TrainConfig: every setting of a run, validated up front and stored as `config.json`.

A config is plain JSON-able data so it can live in the run directory and inside checkpoints that
load with ``weights_only=True``. ``validate()`` turns any out-of-range value into a ConfigError
naming the setting, before a single image is loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from detcore.errors import ConfigError
from detcore.train.presets import PRESETS

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "none")
DEVICES = ("auto", "cpu", "cuda")
SPLIT_METHODS = ("random", "last_n", "holdout", "imagesets")
AUGMENT_DEFAULTS = {"hflip": 0.5, "rotate": 0.0, "scale_jitter": None, "color_jitter": 0.0}


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
    amp: bool = True  # only takes effect on CUDA
    channels_last: bool = False  # only takes effect on CUDA
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    max_iters_per_epoch: int | None = None  # cap for smoke runs and benchmarks
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError("config", f"unknown setting(s): {', '.join(unknown)}")
        return cls(**d)

    def validate(self, *, dataset_size: int | None = None) -> "TrainConfig":
        """Raise ConfigError for the first bad setting; return self so calls can chain."""
        from detcore.models import get_spec, require_weights

        spec = get_spec(self.model)
        _check(self.epochs >= 1, "epochs", f"must be at least 1 (got {self.epochs})")
        _check(self.batch_size >= 1, "batch_size", f"must be at least 1 (got {self.batch_size})")
        _check(self.lr > 0, "lr", f"must be positive (got {self.lr})")
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
        _check(self.num_workers >= 0, "num_workers", "must be >= 0")
        _check(self.max_iters_per_epoch is None or self.max_iters_per_epoch >= 1, "max_iters_per_epoch", "must be >= 1")
        for name in ("min_size", "max_size"):
            v = getattr(self, name)
            _check(v is None or v >= 32, name, f"must be at least 32 pixels (got {v})")
        require_weights(spec.name, self.weights)  # unsupported mode, missing file, offline: say so now
        _check(set(self.augment) <= set(AUGMENT_DEFAULTS), "augment",
               f"unknown augmentation(s) {sorted(set(self.augment) - set(AUGMENT_DEFAULTS))}")
        _check(0 <= float(self.augment.get("hflip") or 0) <= 1, "augment.hflip", "must be a probability in [0, 1]")
        if dataset_size is not None:
            _check(dataset_size > 0, "data", "the training split is empty")
            _check(self.batch_size <= dataset_size, "batch_size",
                   f"{self.batch_size} is larger than the {dataset_size} training images")
        return self


def _check(ok: bool, setting: str, problem: str) -> None:
    if not ok:
        raise ConfigError(setting, problem)


def config_from_preset(name: str, **overrides: Any) -> TrainConfig:
    """The preset's values with ``overrides`` (None values ignored) on top."""
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}, "preset": name}
    return TrainConfig.from_dict(values)

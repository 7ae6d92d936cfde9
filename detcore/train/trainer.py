"""The training loop: forward, loss, backward, step — everything else is a callback (events.py).

``train(config, run_dir)`` prepares a run directory (DESIGN.md §2), then ``Trainer.run`` reads
top to bottom. Reproducibility: the model is initialised from ``seed`` and every epoch reseeds
torch (augmentations, sampler order, RPN sampling) from ``seed + epoch``, so a run resumed from
an epoch boundary continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Iterable

import torch

from detcore import atomic
from detcore.errors import CheckpointError, ConfigError, DataError, DetcoreError
from detcore.train import distributed
from detcore.train.config import TrainConfig
from detcore.train.events import Callback, Checkpointer, EarlyStopping, EpochLogger, JsonlWriter, StepLogger, Validation
from detcore.train.runs import Run, check_new_run_dir, write_run_files

CHECKPOINT_VERSION = 1


class LrSchedule:
    """LR factor as a pure function of the global step: linear warm-up, then step decay per
    ``step_size`` epochs or a cosine over all steps. A plain object so LambdaLR can save it."""

    def __init__(self, config: TrainConfig, iters_per_epoch: int):
        self.kind, self.warmup, self.ipe = config.schedule, config.warmup_iters, iters_per_epoch
        self.step_size, self.gamma, self.total = config.step_size, config.gamma, config.epochs * iters_per_epoch

    def __call__(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        if self.kind == "step":
            return warm * self.gamma ** ((step // self.ipe) // self.step_size)
        if self.kind == "cosine":
            return warm * 0.5 * (1 + math.cos(math.pi * min(step / max(self.total, 1), 1.0)))
        return warm


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]  # frozen layers stay frozen
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


class Trainer:
    def __init__(self, prepared, *, callbacks: Iterable[Callback], stop_event: threading.Event | None):
        self.__dict__.update(vars(prepared))  # config, run_dir, model, loaders, classes, dist, ...
        self.stop_event = stop_event or threading.Event()
        self.callbacks = list(callbacks) if self.dist.is_main else []
        self.optimizer = build_optimizer(self.unwrapped_model, self.config)
        cap = self.config.max_iters_per_epoch
        self.iters_per_epoch = min(len(self.train_loader), cap) if cap else len(self.train_loader)
        self.schedule = LrSchedule(self.config, self.iters_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.total_steps = self.config.epochs * self.iters_per_epoch
        self.start_epoch, self.global_step, self.best_metric = 0, 0, None
        self.epoch = self.iter = self.batch_images = 0
        self.status, self.message, self._early_stop = "running", "", None

    # --- the loop -----------------------------------------------------------------------------
    def run(self) -> str:
        self.fire("train_start")
        for self.epoch in range(self.start_epoch, self.config.epochs):
            self.begin_epoch()
            for self.iter, (images, targets) in enumerate(self.train_loader):
                if self.stop_requested():
                    return self.end("stopped", f"stopped by request in epoch {self.epoch + 1}")
                with torch.autocast(self.device.type, enabled=self.use_amp):
                    loss_dict = self.model(*self.to_device(images, targets))
                loss = sum(loss_dict.values())
                if not self.record_losses(loss, loss_dict):
                    return self.end("failed", self.nan_message())
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if self.config.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.unwrapped_model.parameters(), self.config.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.global_step += 1
                self.fire("step_end")
                if self.config.max_iters_per_epoch and self.iter + 1 >= self.config.max_iters_per_epoch:
                    break
            self.epochs_done = self.epoch + 1
            self.fire("epoch_end")
            if self.agree_to_stop_early():
                return self.end("completed", self._early_stop)
        return self.end("completed", f"trained {self.config.epochs} epochs")

    # --- steps the loop names ------------------------------------------------------------------
    def begin_epoch(self) -> None:
        torch.manual_seed(self.config.seed + 1000 * self.epoch + self.dist.rank)
        self.sampler_generator.manual_seed(self.config.seed + self.epoch)
        if hasattr(self.train_loader.sampler, "set_epoch"):
            self.train_loader.sampler.set_epoch(self.epoch)
        self.model.train()
        self.val_loss = self.metrics = None
        self._loss_sum, self._loss_n = 0.0, 0
        self.fire("epoch_start")

    def to_device(self, images, targets):
        self.batch_images = len(images) * self.dist.world_size  # throughput of the whole job
        images = [im.to(self.device, non_blocking=True) for im in images]  # the model batches (and pads) them
        targets = [{k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in t.items()}
                   for t in targets]
        return images, targets

    def record_losses(self, loss: torch.Tensor, loss_dict: dict) -> bool:
        """Pull the step's losses to the CPU (one sync); False when the total is NaN/Inf on any rank."""
        values = torch.stack([loss.detach().float()] + [v.detach().float() for v in loss_dict.values()])
        values = distributed.mean_across_ranks(values, self.dist)
        numbers = values.tolist()
        self.step_loss, self.step_losses = numbers[0], dict(zip(loss_dict, numbers[1:]))
        if not math.isfinite(self.step_loss):
            return False
        self._loss_sum, self._loss_n = self._loss_sum + self.step_loss, self._loss_n + 1
        return True

    def nan_message(self) -> str:
        parts = ", ".join(f"{k}={v:.4g}" for k, v in self.step_losses.items())
        return (f"loss became {self.step_loss} at epoch {self.epoch + 1}, iteration {self.iter + 1} ({parts}); "
                f"training diverged — lower the learning rate (lr={self.config.lr:g}), add warm-up, "
                f"or set gradient clipping")

    @property
    def epoch_loss(self) -> float | None:
        return self._loss_sum / self._loss_n if self._loss_n else None

    def stop_requested(self) -> bool:
        return distributed.any_rank(self.stop_event.is_set(), self.dist)

    def finish_early(self, message: str) -> None:
        self._early_stop = message

    def agree_to_stop_early(self) -> bool:
        distributed.barrier(self.dist)  # rank 0 may have been validating
        return distributed.any_rank(self._early_stop is not None, self.dist)

    def end(self, status: str, message: str) -> str:
        self.status, self.message = status, message
        self.fire("train_end")
        self.emit_status(status, message)
        return status

    # --- events, records, checkpoints ----------------------------------------------------------
    def fire(self, event: str) -> None:
        for cb in self.callbacks:
            getattr(cb, f"on_{event}")(self)

    def emit(self, record: dict) -> None:
        for cb in self.callbacks:
            cb.on_record(self, record)

    def emit_status(self, status: str, message: str = "") -> None:
        self.emit({"type": "status", "status": status, "message": message, "time": time.time(),
                   "pid": os.getpid(), "host": socket.gethostname(), "thread": threading.get_ident(),
                   "epoch": getattr(self, "epochs_done", 0)})

    def checkpoint_path(self, which: str) -> Path:
        return self.run_dir / "checkpoints" / f"{which}.pt"

    def save_checkpoint(self, which: str) -> Path:
        """``last`` holds everything resume needs; ``best`` is for prediction only, so it skips the
        optimizer state (half the size for SGD with momentum, a third for AdamW)."""
        state = {"format_version": CHECKPOINT_VERSION, "model": self.unwrapped_model.state_dict(),
                 "epoch": getattr(self, "epochs_done", self.start_epoch), "global_step": self.epoch_start_step(),
                 "best_metric": self.best_metric, "metrics": self.metrics or {}, "config": self.config.to_dict(),
                 "classes": list(self.classes)}
        if which == "last":
            state.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                         scaler=self.scaler.state_dict())
        path = self.checkpoint_path(which)
        try:
            return atomic.torch_save(path, state)
        except OSError as e:
            raise CheckpointError(path, f"could not be saved ({e.strerror or e}); the previous checkpoint, if any, "
                                        "is left intact") from None

    def epoch_start_step(self) -> int:
        """Global step at the start of the next epoch to run (resume restarts a partial epoch)."""
        return getattr(self, "epochs_done", self.start_epoch) * self.iters_per_epoch

    def load_checkpoint(self, path: Path) -> None:
        from detcore.checkpoints import check_matches_run, load_checkpoint

        state = load_checkpoint(path)  # weights-only; a crafted file is a CheckpointError
        check_matches_run(state, path, classes=list(self.classes), model_name=self.config.model)
        try:
            self.unwrapped_model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(path, f"cannot resume from it: {str(e).splitlines()[0][:200]}") from None
        self.start_epoch = self.epochs_done = int(state["epoch"])
        self.global_step = self.start_epoch * self.iters_per_epoch
        self.best_metric = state.get("best_metric")
        # The LR is a function of the step: restart it where the resumed epoch begins (a stop
        # mid-epoch restarts that epoch, so the saved scheduler may be a few steps ahead).
        saved = dict(state["scheduler"])
        saved["lr_lambdas"] = [None] * len(self.optimizer.param_groups)  # keep this run's (maybe longer) shape
        self.scheduler.load_state_dict(saved)
        self.scheduler.last_epoch = self.global_step
        factor = self.schedule(self.global_step)
        for group, base_lr in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base_lr * factor
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]


def train(config: TrainConfig, run_dir: str | Path, *, stop_event: threading.Event | None = None,
          callbacks: Iterable[Callback] = (), resume: bool = False, extra_epochs: int = 0, dataset=None) -> str:
    """Train ``config`` into ``run_dir`` (or continue it with ``resume``); return the final status.

    ``callbacks`` see every event and record (run on rank 0). ``stop_event`` is checked every
    iteration; setting it ends the run as ``stopped`` with ``last.pt`` written. ``dataset`` (a
    ParsedDataset) skips reading ``config.data``. A NaN/Inf loss ends the run as ``failed``;
    any exception is recorded as ``failed`` in events.jsonl and re-raised.
    """
    run_dir, callbacks = Path(run_dir), list(callbacks)
    if not resume:
        check_new_run_dir(run_dir)  # before anything is written: never touch another run's files
    elif not Run(run_dir).exists():
        raise ConfigError(run_dir, "is not a run directory (no config.json), so there is nothing to resume")
    dist = distributed.setup(config.device if config is not None else Run(run_dir).config().get("device", "auto"))
    writer = JsonlWriter(run_dir / "events.jsonl")
    trainer = None
    try:
        prepared = prepare_run(config, run_dir, dist=dist, resume=resume, extra_epochs=extra_epochs, dataset=dataset)
        cfg = prepared.config
        # Checkpointer before EpochLogger: an epoch record in the file means its last.pt exists.
        builtin = [writer, StepLogger(), *_precise_bn(prepared.unwrapped_model, callbacks),
                   Validation(every=cfg.eval_every), Checkpointer(), EpochLogger()]
        if cfg.early_stopping_patience:
            builtin.append(EarlyStopping(patience=cfg.early_stopping_patience))
        trainer = Trainer(prepared, callbacks=[*builtin, *callbacks], stop_event=stop_event)
        message = "started"
        if resume:
            atomic.remove_stale_temp_files(run_dir / "checkpoints")  # a killed save's partial .tmp
        if resume and (run_dir / "checkpoints" / "last.pt").is_file():
            trainer.load_checkpoint(run_dir / "checkpoints" / "last.pt")
            message = f"resumed after epoch {trainer.start_epoch}"
        elif resume:  # killed before its first checkpoint: same config and split, from the start
            message = "resumed from the start (the run had no checkpoint yet)"
        trainer.emit_status("running", message)
        return trainer.run()
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        message = str(e) if isinstance(e, DetcoreError) else f"{type(e).__name__}: {e}"
        if dist.is_main and (run_dir / "config.json").exists():  # bad input before that leaves no run behind
            sink = trainer if trainer is not None else _StatusOnly(writer, list(callbacks))
            sink.status, sink.message = status, message
            sink.emit_status(status, message)
            writer.flush()
        raise
    finally:
        distributed.teardown(dist)


def _precise_bn(model: torch.nn.Module, callbacks: Iterable[Callback]) -> list[Callback]:
    """Trainable BatchNorm (from scratch, SSDlite) gets its statistics recomputed before each
    validation and checkpoint (see precise_bn.py: lagging running averages ruin eval-mode output).
    The CLI and the job registry then save the same model; a caller's own instance is not doubled."""
    from detcore.train.precise_bn import PreciseBatchNorm, trainable_batchnorms

    if not trainable_batchnorms(model) or any(isinstance(c, PreciseBatchNorm) for c in callbacks):
        return []
    return [PreciseBatchNorm()]


class _StatusOnly:
    """Reports a failure that happened before the Trainer existed (bad data, bad config)."""

    def __init__(self, writer: JsonlWriter, callbacks: list[Callback]):
        self.callbacks = [writer, *callbacks]

    emit = Trainer.emit
    emit_status = Trainer.emit_status


def _resume_config(run: Run, config: TrainConfig | None, extra_epochs: int) -> TrainConfig:
    saved = TrainConfig.from_dict(run.config())
    if config is not None and config.data:  # the data may have moved since
        saved.data, saved.data_format = config.data, config.data_format
    saved.epochs += extra_epochs
    return saved


def _load_parsed(config: TrainConfig, dataset, classes: list[str] | None):
    if dataset is not None:
        return dataset
    if not config.data:
        raise ConfigError("data", "no dataset given (set --data)")
    from detcore.data.detect import load_dataset

    return load_dataset(config.data, config.data_format, classes=classes)


def plan_split(config: TrainConfig, parsed):
    """The split a new run of ``config`` on ``parsed`` will use (deterministic: seeded)."""
    from detcore.data.splits import make_split

    return make_split([s.image_id for s in parsed.samples], config.split_method,
                      test_fraction=config.test_fraction, seed=config.split_seed, n=config.split_n,
                      root=parsed.root, val_fraction=config.val_fraction)


def check_fits_dataset(config: TrainConfig) -> None:
    """Validate ``config`` against the training part of its dataset (batch size ≤ images), before
    any thread or run folder exists. Raises ConfigError / DataError."""
    config.validate()
    split = plan_split(config, _load_parsed(config, None, None))
    config.validate(dataset_size=len(split.train))


def prepare_run(config: TrainConfig | None, run_dir: Path, *, dist, resume: bool, extra_epochs: int,
                dataset=None) -> SimpleNamespace:
    """Read the data, make or reload the split, write the run files, build model and loader."""
    from detcore.data.dataset import DetectionDataset, build_transforms, collate_fn
    from detcore.models import build_model, get_spec

    if resume:
        run = Run(run_dir)
        config = _resume_config(run, config, extra_epochs)
        classes, split = run.classes(), run.split()
        parsed = _load_parsed(config, dataset, classes)
        if list(parsed.classes) != classes:
            raise DataError(config.data, f"classes {parsed.classes} differ from the run's {classes}")
    else:
        config.validate()
        parsed = _load_parsed(config, dataset, None)
        classes = list(parsed.classes)
        split = plan_split(config, parsed)
    by_id = parsed.sample_by_id()
    missing = [i for i in [*split.train, *split.val, *split.test] if i not in by_id]
    if missing:
        raise DataError(config.data or "data", f"{len(missing)} image(s) of the run's split are not in the dataset "
                                               f"(first: {missing[0]})")
    train_samples = [by_id[i] for i in split.train]
    config.validate(dataset_size=len(train_samples))
    if dist.is_main and not resume:
        write_run_files(run_dir, config=config.to_dict(), classes=classes, split=split)
    elif dist.is_main:
        from detcore import atomic

        atomic.write_json(run_dir / "config.json", config.to_dict())  # extra epochs are part of the run now

    device = distributed.device_for(config.device, dist)
    spec = get_spec(config.model)
    torch.manual_seed(config.seed)
    model = build_model(config.model, classes=classes, weights=config.weights, min_size=config.min_size,
                        max_size=config.max_size, trainable_backbone_layers=config.trainable_backbone_layers)
    on_cuda = device.type == "cuda"
    model.to(device)
    if on_cuda and config.channels_last:
        model.to(memory_format=torch.channels_last)
    train_ds = DetectionDataset(train_samples, classes, build_transforms(True, config.augment),
                                with_masks=spec.has_masks)
    generator = torch.Generator()
    sampler = distributed.train_sampler(train_ds, dist, seed=config.seed, generator=generator)
    per_rank = len(sampler) if sampler is not None else len(train_ds)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=config.batch_size, sampler=sampler,
                                         drop_last=per_rank > 1 and per_rank % config.batch_size == 1,
                                         collate_fn=collate_fn, num_workers=config.num_workers,
                                         pin_memory=on_cuda, persistent_workers=config.num_workers > 0)
    val_ids = split.val or split.test
    return SimpleNamespace(
        config=config, run_dir=run_dir, dist=dist, device=device, classes=classes,
        unwrapped_model=model, model=distributed.wrap_model(model, dist, device),
        train_loader=loader, sampler_generator=generator, val_samples=[by_id[i] for i in val_ids],
        with_masks=spec.has_masks, use_amp=on_cuda and config.amp, channels_last=on_cuda and config.channels_last)

"""The training loop: forward, loss, backward, step — everything else is a callback (events.py).

``train(config, run_dir)`` prepares a run directory (``detcore.train.runs.Run``), then
``Trainer.run_loop`` reads top to bottom; the loop's state is ``TrainState`` (detcore/train/state.py). Reproducibility: the model is initialised from ``seed`` and every epoch reseeds
torch (augmentations, sampler order, RPN sampling) from ``seed + epoch``, so a run resumed from
an epoch boundary continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from detcore import atomic
from detcore.checkpoints import check_matches_run, load_checkpoint
from detcore.data.dataset import DetectionDataset, collate_fn
from detcore.data.detect import load_dataset
from detcore.errors import CheckpointError, ConfigError, DataError, DetcoreError
from detcore.models import build_model, get_spec
from detcore.train import distributed
from detcore.train.budget import TimeBudget
from detcore.train.config import TrainConfig
from detcore.train.ema import WeightAverage
from detcore.train.events import Checkpointer, EarlyStopping, EpochLogger, JsonlWriter, StepLogger, Validation
from detcore.train.fitting import image_weights, resolve_geometry, train_transforms
from detcore.train.precise_bn import PreciseBatchNorm, trainable_batchnorms
from detcore.train.runs import Run, Status, check_new_run_dir
from detcore.train.split_plan import plan_split  # the one split rule, shared with the Train page's preview
from detcore.train.state import Callback, TrainState
from detcore.train.tracking import default_loggers

CHECKPOINT_VERSION = 1


class LrSchedule:
    """LR factor as a pure function of the global step: linear warm-up, then step decay per
    ``step_size`` epochs or a cosine over all steps. A plain object so LambdaLR can save it."""

    def __init__(self, config: TrainConfig, iters_per_epoch: int):
        self.kind, self.warmup, self.ipe = config.schedule, config.warmup_iters, iters_per_epoch
        self.step_size, self.gamma, self.total = config.step_size, config.gamma, config.epochs * iters_per_epoch
        self.epochs = config.epochs  # the schedule's shape; ``total`` may be re-planned (time limit)

    def __call__(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        if self.kind == "step":  # decays at the same fractions of ``total`` as of epochs x iterations
            return warm * self.gamma ** ((step * self.epochs // max(self.total, 1)) // self.step_size)
        if self.kind == "cosine":
            return warm * 0.5 * (1 + math.cos(math.pi * min(step / max(self.total, 1), 1.0)))
        return warm


def cpu_has_bf16() -> bool:
    """Does this CPU compute bfloat16 natively (AVX512-BF16 / AMX)? Elsewhere bf16 autocast is slower."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]  # frozen layers stay frozen
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


@dataclass
class PreparedRun:
    """What ``prepare_run`` sets up before the first step: the run's fixed parts, handed to the Trainer."""

    config: TrainConfig
    run: Run
    dist: distributed.DistInfo
    device: torch.device
    classes: list[str]
    unwrapped_model: torch.nn.Module
    model: torch.nn.Module  # DDP-wrapped when distributed
    train_loader: torch.utils.data.DataLoader
    sampler_generator: torch.Generator
    val_samples: list
    with_masks: bool
    use_amp: bool  # float16 autocast + gradient scaling (CUDA)
    cpu_bf16: bool  # bfloat16 autocast on a CPU that has it natively
    channels_last: bool


class Trainer:
    """Runs one training session. Fixed parts are attributes (set once, here); everything that moves
    is in ``self.state`` (TrainState), which callbacks read and write."""

    def __init__(self, prepared: PreparedRun, *, callbacks: Iterable[Callback], stop_event: threading.Event | None):
        self.config, self.run, self.dist, self.device = prepared.config, prepared.run, prepared.dist, prepared.device
        self.run_dir, self.classes = prepared.run.path, prepared.classes
        self.unwrapped_model, self.model = prepared.unwrapped_model, prepared.model
        self.train_loader, self.sampler_generator = prepared.train_loader, prepared.sampler_generator
        self.val_samples, self.with_masks = prepared.val_samples, prepared.with_masks
        self.use_amp, self.channels_last = prepared.use_amp, prepared.channels_last
        self.autocast = {"device_type": "cuda", "enabled": True} if self.use_amp else \
            {"device_type": "cpu", "dtype": torch.bfloat16, "enabled": True} if prepared.cpu_bf16 else \
            {"device_type": self.device.type, "enabled": False}
        self.stop_event = stop_event or threading.Event()
        self.callbacks = list(callbacks) if self.dist.is_main else []  # callbacks run on rank 0 only
        self.optimizer = build_optimizer(self.unwrapped_model, self.config)
        cap = self.config.max_iters_per_epoch
        self.iters_per_epoch = min(len(self.train_loader), cap) if cap else len(self.train_loader)
        self.schedule = LrSchedule(self.config, self.iters_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.average = WeightAverage(self.unwrapped_model, self.config.ema_decay) if self.config.ema_decay else None
        self.state = TrainState(total_steps=self.config.epochs * self.iters_per_epoch)
        self.classifier_entry: dict | None = None  # the crop classifier, carried into every later checkpoint
        # with a time limit, epochs do not cap the run: the budget callback ends it (``state.time_up``)
        self.epoch_limit = self.config.epochs if not self.config.time_limit else 1_000_000

    # --- the loop -----------------------------------------------------------------------------
    def run_loop(self) -> str:
        s = self.state
        self.fire("train_start")
        for epoch in range(s.start_epoch, self.epoch_limit):
            self.begin_epoch(epoch)
            for s.iter, (images, targets) in enumerate(self.train_loader):
                if self.stop_requested():
                    return self.end(Status.STOPPED, f"stopped by request in epoch {epoch + 1}")
                if self.config.time_limit and distributed.any_rank(s.time_up, self.dist):
                    s.time_up = True
                    break
                with torch.autocast(**self.autocast):
                    loss_dict = self.model(*self.to_device(images, targets))
                loss_dict = {k: v.float() for k, v in loss_dict.items()}  # bf16 losses sum in float32
                loss = sum(loss_dict.values())
                if not self.record_losses(loss, loss_dict):
                    return self.end(Status.FAILED, self.nan_message())
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if self.config.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.unwrapped_model.parameters(), self.config.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                if self.average is not None:
                    self.average.update(self.unwrapped_model)
                s.global_step += 1
                self.fire("step_end")
                if s.iter + 1 >= self.iters_per_epoch:
                    break
            s.epochs_done = epoch + 1
            self.fire("epoch_end")
            if self.agree_to_stop_early():
                return self.end(Status.COMPLETED, s.early_stop)
            if s.time_up:
                return self.end(Status.COMPLETED, self.time_up_message())
        return self.end(Status.COMPLETED, f"trained {self.config.epochs} epochs")

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights that are validated, saved as the checkpoint's ``model`` and predict: the
        moving average when ``ema_decay`` is set, else the model being trained."""
        return self.average.model if self.average is not None else self.unwrapped_model

    # --- steps the loop names ------------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> None:
        torch.manual_seed(self.config.seed + 1000 * epoch + self.dist.rank)
        self.sampler_generator.manual_seed(self.config.seed + epoch)
        if hasattr(self.train_loader.sampler, "set_epoch"):
            self.train_loader.sampler.set_epoch(epoch)
        self.model.train()
        self.state.begin_epoch(epoch)
        self.fire("epoch_start")

    def to_device(self, images, targets):
        self.state.batch_images = len(images) * self.dist.world_size  # throughput of the whole job
        images = [im.to(self.device, non_blocking=True) for im in images]  # the model batches (and pads) them
        targets = [{k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in t.items()}
                   for t in targets]
        return images, targets

    def record_losses(self, loss: torch.Tensor, loss_dict: dict) -> bool:
        """Pull the step's losses to the CPU (one sync); False when the total is NaN/Inf on any rank."""
        values = torch.stack([loss.detach().float()] + [v.detach().float() for v in loss_dict.values()])
        values = distributed.mean_across_ranks(values, self.dist)
        numbers = values.tolist()
        s = self.state
        s.step_loss, s.step_losses = numbers[0], dict(zip(loss_dict, numbers[1:]))
        if not math.isfinite(s.step_loss):
            return False
        s.loss_sum, s.loss_count = s.loss_sum + s.step_loss, s.loss_count + 1
        return True

    def nan_message(self) -> str:
        s = self.state
        parts = ", ".join(f"{k}={v:.4g}" for k, v in s.step_losses.items())
        return (f"loss became {s.step_loss} at epoch {s.epoch + 1}, iteration {s.iter + 1} ({parts}); "
                f"training diverged — lower the learning rate (lr={self.config.lr:g}), add warm-up, "
                f"or set gradient clipping")

    def time_up_message(self) -> str:
        s = self.state
        return (f"time limit of {self.config.time_limit:g} min reached after {s.global_step} steps "
                f"({s.global_step / max(self.iters_per_epoch, 1):.1f} epochs)")

    def stop_requested(self) -> bool:
        return distributed.any_rank(self.stop_event.is_set(), self.dist)

    def agree_to_stop_early(self) -> bool:
        distributed.barrier(self.dist)  # rank 0 may have been validating
        return distributed.any_rank(self.state.early_stop is not None, self.dist)

    def end(self, status: Status, message: str) -> str:
        self.state.status, self.state.message = status, message
        self.fire("train_end")  # the crop classifier stage may add to the message, or end it as stopped
        self.emit_status(self.state.status, self.state.message)
        return self.state.status

    # --- events, records, checkpoints ----------------------------------------------------------
    def fire(self, event: str) -> None:
        for cb in self.callbacks:
            getattr(cb, f"on_{event}")(self)

    def emit(self, record: dict) -> None:
        for cb in self.callbacks:
            cb.on_record(self, record)

    def emit_status(self, status: str, message: str = "") -> None:
        self.emit(status_record(status, message, self.state.epochs_done))

    def save_checkpoint(self, which: str) -> Path:
        """``last`` holds everything resume needs; ``best`` is for prediction only, so it skips the
        optimizer state (half the size for SGD with momentum, a third for AdamW)."""
        s = self.state
        state = {"format_version": CHECKPOINT_VERSION, "model": self.eval_model.state_dict(),
                 "epoch": s.epochs_done, "global_step": s.epochs_done * self.iters_per_epoch,
                 "best_metric": s.best_metric, "metrics": s.metrics or {}, "config": self.config.to_dict(),
                 "classes": list(self.classes), "train_seconds": s.train_seconds}
        if which == "last":
            state.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                         scaler=self.scaler.state_dict())
            if self.average is not None:  # "model" is the average; resume needs the raw weights as well
                state.update(train_model=self.unwrapped_model.state_dict(), ema=self.average.state())
        if self.classifier_entry is not None:
            state["classifier"] = self.classifier_entry
        path = self.run.checkpoint_path(which)
        try:
            return atomic.torch_save(path, state)
        except OSError as e:
            raise CheckpointError(path, f"could not be saved ({e.strerror or e}); the previous checkpoint, if any, "
                                        "is left intact") from None

    def load_checkpoint(self, path: Path) -> None:
        saved = load_checkpoint(path)  # weights-only; a crafted file is a CheckpointError
        check_matches_run(saved, path, classes=list(self.classes), model_name=self.config.model,
                          geometry=self.config.geometry)
        try:
            self.unwrapped_model.load_state_dict(saved.get("train_model") or saved["model"])
            if self.average is not None:  # a checkpoint from before the average starts it from its weights
                self.average.load(saved["model"], saved.get("ema"))
            self.optimizer.load_state_dict(saved["optimizer"])
            if saved.get("scaler"):
                self.scaler.load_state_dict(saved["scaler"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(path, f"cannot resume from it: {str(e).splitlines()[0][:200]}") from None
        self.classifier_entry = saved.get("classifier")
        s = self.state
        s.start_epoch = s.epochs_done = int(saved["epoch"])
        s.global_step = s.start_epoch * self.iters_per_epoch
        s.best_metric = saved.get("best_metric")
        s.train_seconds = float(saved.get("train_seconds") or 0.0)  # a time limit counts the whole run
        # The LR is a function of the step: restart it where the resumed epoch begins (a stop
        # mid-epoch restarts that epoch, so the saved scheduler may be a few steps ahead).
        scheduler = dict(saved["scheduler"])
        scheduler["lr_lambdas"] = [None] * len(self.optimizer.param_groups)  # keep this run's (maybe longer) shape
        self.scheduler.load_state_dict(scheduler)
        self.scheduler.last_epoch = s.global_step
        factor = self.schedule(s.global_step)
        for group, base_lr in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base_lr * factor
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]


def status_record(status: str, message: str, epochs_done: int) -> dict:
    """A ``status`` record; ``pid``/``host``/``thread`` let readers tell a live run from an interrupted one."""
    return {"type": "status", "status": str(status), "message": message, "time": time.time(),
            "pid": os.getpid(), "host": socket.gethostname(), "thread": threading.get_ident(), "epoch": epochs_done}


def train(config: TrainConfig | None, run_dir: str | Path, *, stop_event: threading.Event | None = None,
          callbacks: Iterable[Callback] = (), resume: bool = False, extra_epochs: int = 0, dataset=None) -> str:
    """Train ``config`` into ``run_dir`` (or continue it with ``resume``); return the final status.

    ``callbacks`` see every event and record (run on rank 0). ``stop_event`` is checked every
    iteration; setting it ends the run as ``stopped`` with ``last.pt`` written. ``dataset`` (a
    ParsedDataset) skips reading ``config.data``. With ``resume``, ``config`` may be None (the run's
    config.json is used) or give a moved dataset and a new total ``time_limit`` (``Run.resume_plan``);
    ``extra_epochs`` extends the run. A NaN/Inf loss ends
    the run as ``failed``; any exception is recorded as ``failed`` in events.jsonl and re-raised.
    """
    run, callbacks, started = Run(run_dir), list(callbacks), time.monotonic()
    if resume:  # every resume check lives in Run.resume_plan
        plan = run.resume_plan(extra_epochs, data=config.data if config is not None else None,
                               data_format=config.data_format if config is not None else None,
                               time_limit=config.time_limit if config is not None else None)
        config = plan.config
    else:
        plan = None
        check_new_run_dir(run.path)  # before anything is written: never touch another run's files
    dist = distributed.setup(config.device)
    writer = JsonlWriter(run.events_path)
    trainer = None
    try:
        if config.time_limit and dist.enabled:
            raise ConfigError("time_limit", "a time limit is not supported under torchrun yet (each rank would "
                                            "plan its own schedule); set epochs instead")
        prepared = prepare_run(config, run, dist=dist, resume=resume, dataset=dataset)
        # The built-in callbacks, in the order their results are used: TimeBudget re-plans the schedule
        # after each step (before StepLogger writes the step record with the new plan); PreciseBatchNorm
        # fixes the BN statistics before Validation scores the model; Checkpointer keeps best.pt by
        # Validation's metrics; EpochLogger writes the epoch record after the checkpoint exists (an epoch
        # record in the file means its last.pt is on disk); EarlyStopping reads the same metrics.
        # CropClassifierStage trains after the last checkpoint is written; under a time limit its minutes
        # come off the detector's budget.
        stage = _classifier_stage(config, prepared)
        builtin = [writer, *_time_budget(config, started, stage), StepLogger(),
                   *_precise_bn(prepared.unwrapped_model, callbacks),
                   Validation(every=config.eval_every), Checkpointer(), EpochLogger(), *stage,
                   *default_loggers(run.path)]
        if config.early_stopping_patience:
            builtin.append(EarlyStopping(patience=config.early_stopping_patience))
        trainer = Trainer(prepared, callbacks=[*builtin, *callbacks], stop_event=stop_event)
        message = "started"
        if plan is not None:
            atomic.remove_stale_temp_files(run.path / "checkpoints")  # a killed save's partial .tmp
            message = plan.message
            if plan.checkpoint is not None:
                trainer.load_checkpoint(plan.checkpoint)
                message = f"resumed after epoch {trainer.state.start_epoch}"
        if config.cpu_bf16 and prepared.device.type == "cpu" and not prepared.cpu_bf16:
            message += "; cpu_bf16 is off: this CPU has no native bfloat16, so training runs in float32"
        trainer.emit_status(Status.RUNNING, message)
        return trainer.run_loop()
    except BaseException as e:
        status = Status.INTERRUPTED if isinstance(e, KeyboardInterrupt) else Status.FAILED
        message = str(e) if isinstance(e, DetcoreError) else f"{type(e).__name__}: {e}"
        if dist.is_main and run.exists():  # bad input before that leaves no run behind
            done = trainer.state.epochs_done if trainer is not None else 0
            record = status_record(status, message, done)
            for cb in (trainer.callbacks if trainer is not None else [writer, *callbacks]):
                cb.on_record(trainer, record)
            writer.flush()
        raise
    finally:
        distributed.teardown(dist)


def _time_budget(config: TrainConfig, started: float, stage: list[Callback]) -> list[Callback]:
    """``time_limit``: lays the schedule over the budget and ends the run in time (budget.py); the crop
    classifier's minutes, when it will train, are not the detector's."""
    if not config.time_limit:
        return []
    trains = any(getattr(cb, "active", False) for cb in stage)
    return [TimeBudget(config.time_limit - (config.classifier_budget() if trains else 0.0), started=started)]


def _classifier_stage(config: TrainConfig, prepared: "PreparedRun") -> list[Callback]:
    """The crop classifier stage (classifier.py) when ``classifier_minutes`` is set and the data has
    two classes or more and validation images to check it on (otherwise the detector gets the time,
    and the run's log says why there is no classifier)."""
    if not config.classifier_minutes:
        return []
    from detcore.train.classifier import CropClassifierStage

    return [CropClassifierStage(prepared.classes, prepared.val_samples)]


def _precise_bn(model: torch.nn.Module, callbacks: Iterable[Callback]) -> list[Callback]:
    """Trainable BatchNorm (from scratch, SSDlite) gets its statistics recomputed before each
    validation and checkpoint (see precise_bn.py: lagging running averages ruin eval-mode output).
    The CLI and the job registry then save the same model; a caller's own instance is not doubled."""
    if not trainable_batchnorms(model) or any(isinstance(c, PreciseBatchNorm) for c in callbacks):
        return []
    return [PreciseBatchNorm()]


def _load_parsed(config: TrainConfig, dataset, classes: list[str] | None):
    if dataset is not None:
        return dataset
    if not config.data:
        raise ConfigError("data", "no dataset given (set --data)")

    return load_dataset(config.data, config.data_format, classes=classes)


def check_fits_dataset(config: TrainConfig) -> None:
    """Validate ``config`` against the training part of its dataset (batch size ≤ images), before
    any thread or run folder exists. Raises ConfigError / DataError."""
    config.validate()
    split = plan_split(config, _load_parsed(config, None, None))
    config.validate(dataset_size=len(split.train))


def prepare_run(config: TrainConfig, run: Run, *, dist, resume: bool, dataset=None) -> PreparedRun:
    """Read the data, make (or, resuming, reload) the split, write the run files, build model and loader.
    A new run's geometry (``anchors`` / ``input_size``) is fitted here, to the training split only."""
    if resume:
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
    if not resume:  # fitted to the training split only; stored in config.json and every checkpoint
        config.geometry = resolve_geometry(config, train_samples, classes)
    if dist.is_main and not resume:
        run.write_files(config=config.to_dict(), classes=classes, split=split)
    elif dist.is_main:
        run.save_config(config)  # extra epochs and a moved dataset are part of the run now

    device = distributed.device_for(config.device, dist)
    spec = get_spec(config.model)
    torch.manual_seed(config.seed)
    model = build_model(config.model, classes=classes, weights=config.weights, min_size=config.min_size,
                        max_size=config.max_size, trainable_backbone_layers=config.trainable_backbone_layers,
                        geometry=config.geometry)
    if config.augment.get("crop"):  # crops arrive at the model's scale (detcore/data/crops.py)
        model.transform._skip_resize = True
    on_cuda = device.type == "cuda"
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    train_ds = DetectionDataset(train_samples, classes, train_transforms(config, config.geometry, train_samples,
                                                                         len(classes)), with_masks=spec.has_masks,
                                cache_bytes=config.cache_images_mb * 2**20)
    generator = torch.Generator()
    balanced = bool(config.augment.get("crop") and config.augment.get("balanced_crops"))
    sampler = distributed.train_sampler(train_ds, dist, seed=config.seed, generator=generator,
                                        weights=image_weights(train_samples, len(classes)) if balanced else None)
    per_rank = len(sampler) if sampler is not None else len(train_ds)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=config.batch_size, sampler=sampler,
                                         drop_last=per_rank > 1 and per_rank % config.batch_size == 1,
                                         collate_fn=collate_fn, num_workers=config.num_workers,
                                         pin_memory=on_cuda, persistent_workers=config.num_workers > 0)
    val_ids = split.val or split.test
    return PreparedRun(
        config=config, run=run, dist=dist, device=device, classes=classes,
        unwrapped_model=model, model=distributed.wrap_model(model, dist, device),
        train_loader=loader, sampler_generator=generator, val_samples=[by_id[i] for i in val_ids],
        with_masks=spec.has_masks, use_amp=on_cuda and config.amp,
        cpu_bf16=device.type == "cpu" and config.cpu_bf16 and cpu_has_bf16(), channels_last=config.channels_last)

"""Callbacks on the trainer's named events (DESIGN.md §7: the loop stays one screen long).

Events, in order: ``train_start``, then per epoch ``epoch_start``, per iteration ``step_end``,
``epoch_end`` (validation, checkpoints, the epoch record, early stopping), and
finally ``train_end``. Every record that goes to ``events.jsonl`` passes through
``Trainer.emit(record)``, which hands it to each callback's ``on_record`` — so a caller (the
background-job registry, a test) sees exactly what the file will hold. Record schema: docs/contracts.md.

Callbacks marked ``main_only`` run on DDP rank 0 only (they write the run directory).
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from detcore import atomic

if TYPE_CHECKING:  # pragma: no cover
    from detcore.train.trainer import Trainer


class Callback:
    """Override the events you need; each gets the trainer, whose attributes are the loop's state."""

    main_only = False

    def on_train_start(self, t: "Trainer") -> None: ...
    def on_epoch_start(self, t: "Trainer") -> None: ...
    def on_step_end(self, t: "Trainer") -> None: ...
    def on_epoch_end(self, t: "Trainer") -> None: ...
    def on_train_end(self, t: "Trainer") -> None: ...
    def on_record(self, t: "Trainer", record: dict) -> None: ...


class JsonlWriter(Callback):
    """Appends every record to events.jsonl. Step records are batched (one write + fsync per
    ``flush_s``) so logging costs nothing measurable per iteration; status and epoch records are
    written at once because a reader (the app, a restarted server) acts on them."""

    main_only = True

    def __init__(self, path: Path, *, flush_s: float = 1.0):
        self.path, self.flush_s = Path(path), flush_s
        self._pending: list[dict] = []
        self._last_flush = time.monotonic()

    def on_record(self, t, record):
        self._pending.append(record)
        if record["type"] != "step" or time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()

    def on_train_end(self, t):
        self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        if len(self._pending) == 1:
            atomic.append_jsonl(self.path, self._pending[0])
        else:  # whole lines in one write: a crash can only lose the tail, never tear a line
            _append_lines(self.path, self._pending)
        self._pending.clear()
        self._last_flush = time.monotonic()


def _append_lines(path: Path, records: list[dict]) -> None:
    import json

    data = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class StepLogger(Callback):
    """Emits one ``step`` record per iteration: loss components, lr, images/s, ETA, GPU memory."""

    def __init__(self, *, window: int = 20):
        self._times: deque[tuple[float, int]] = deque(maxlen=window)

    def on_epoch_start(self, t):  # throughput and ETA leave out the time spent validating
        self._times.clear()
        self._times.append((time.perf_counter(), 0))

    def on_step_end(self, t):
        now = time.perf_counter()
        self._times.append((now, t.batch_images))
        (t0, _), n_images = self._times[0], sum(n for _, n in list(self._times)[1:])
        elapsed = max(now - t0, 1e-9)
        steps_in_window = len(self._times) - 1
        record = {"type": "step", "epoch": t.epoch, "iter": t.iter, "global_step": t.global_step,
                  "total_steps": t.total_steps, "losses": t.step_losses, "loss": t.step_loss,
                  "lr": t.optimizer.param_groups[0]["lr"], "images_per_s": n_images / elapsed,
                  "eta_s": elapsed / max(steps_in_window, 1) * max(t.total_steps - t.global_step, 0),
                  "time": time.time()}
        if t.device.type == "cuda":
            record["gpu_mem_mb"] = torch.cuda.max_memory_allocated(t.device) / 2**20
        t.emit(record)


class Validation(Callback):
    """Every ``eval_every`` epochs (and after the last): validation loss and COCO metrics
    (via ``detcore.metrics``) on the run's validation split, or its test split when it has none."""

    main_only = True

    def __init__(self, *, every: int):
        self.every = every

    def on_epoch_end(self, t):
        last = t.epoch + 1 == t.config.epochs
        if not self.every or not t.val_samples or ((t.epoch + 1) % self.every and not last):
            return
        t.val_loss, t.metrics = validate(t.unwrapped_model, t.val_samples, t.classes, device=t.device,
                                         with_masks=t.with_masks)


class EpochLogger(Callback):
    """Emits the ``epoch`` record once validation (if any) has run."""

    def on_epoch_end(self, t):
        t.emit({"type": "epoch", "epoch": t.epoch, "val_loss": t.val_loss, "metrics": t.metrics or {},
                "train_loss": t.epoch_loss, "time": time.time()})


def _score(metrics: dict | None) -> float | None:
    for key in ("AP", "AP50"):
        v = (metrics or {}).get(key)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            return float(v)
    return None


class Checkpointer(Callback):
    """``last.pt`` after every epoch and on a stop; ``best.pt`` when validation AP improves (or, when
    a run has no validation, the final weights). Written atomically through detcore.atomic."""

    main_only = True

    def on_epoch_end(self, t):
        t.save_checkpoint("last")
        score = _score(t.metrics) if t.metrics is not None else None
        if score is not None and (t.best_metric is None or score > t.best_metric):
            t.best_metric = score
            t.save_checkpoint("best")

    def on_train_end(self, t):
        if t.status == "stopped":
            t.save_checkpoint("last")
        if t.status in ("completed", "stopped") and not t.checkpoint_path("best").exists() \
                and t.checkpoint_path("last").exists():
            t.save_checkpoint("best")


class EarlyStopping(Callback):
    """Stops when validation AP has not improved by more than ``min_delta`` for ``patience`` validations."""

    def __init__(self, *, patience: int, min_delta: float = 1e-4):
        self.patience, self.min_delta, self.best, self.bad = patience, min_delta, None, 0

    def on_epoch_end(self, t):
        score = _score(t.metrics) if t.metrics is not None else None
        if score is None:
            return
        if self.best is None or score > self.best + self.min_delta:
            self.best, self.bad = score, 0
            return
        self.bad += 1
        if self.bad >= self.patience:
            t.finish_early(f"early stopping: no AP improvement in {self.patience} validations "
                           f"(best {self.best:.4f})")


@torch.no_grad()
def validate(model: torch.nn.Module, samples: list, classes: list[str], *, device: torch.device,
             with_masks: bool = False, batch_size: int = 4) -> tuple[float | None, dict]:
    """(mean validation loss, metrics summary) of ``model`` on ``samples``.

    The loss needs torchvision's training-mode forward; BatchNorm layers are kept in eval mode
    meanwhile so validation never changes running statistics.
    """
    from detcore.data.dataset import DetectionDataset, collate_fn
    from detcore.structures import Detections

    loader = torch.utils.data.DataLoader(DetectionDataset(samples, classes, with_masks=with_masks),
                                         batch_size=batch_size, collate_fn=collate_fn)
    was_training, losses, dets = model.training, [], []
    try:
        for images, targets in loader:
            images = [im.to(device) for im in images]
            targets = [{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in tg.items()} for tg in targets]
            model.train()
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
            losses.append(float(sum(model(images, targets).values())))
            model.eval()
            for tg, out in zip(targets, model(images)):
                dets.append(Detections(samples[tg["image_id"]].image_id, out["boxes"].float().cpu().numpy(),
                                       out["scores"].float().cpu().numpy(), out["labels"].cpu().numpy() - 1))
    finally:
        model.train(was_training)
    val_loss = float(np.mean(losses)) if losses and np.isfinite(np.mean(losses)) else None
    return val_loss, _coco_summary(samples, dets, classes)


def _coco_summary(samples: list, dets: list, classes: list[str]) -> dict:
    from detcore.metrics import evaluate_detections

    summary = evaluate_detections(samples, dets, classes).summary()
    return {k: (None if v is None or not np.isfinite(v) else float(v)) for k, v in summary.items()
            if isinstance(v, (int, float)) or v is None}

"""The trainer's built-in callbacks: the events.jsonl writer, step records, validation, checkpoints,
epoch records and early stopping (the loop itself stays one screen long: detcore/train/trainer.py).

Every record that goes to ``events.jsonl`` passes through ``Trainer.emit(record)``, which hands it to
each callback's ``on_record`` — so a caller (the background-job registry, a test) sees exactly what
the file will hold. The record format is in docs/architecture.md ("The events log"). Callbacks read
and write the loop's typed state, ``t.state`` (detcore/train/state.py).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch

from detcore import atomic
from detcore.catalog import model_info
from detcore.data.dataset import DetectionDataset, collate_fn
from detcore.metrics.masks import encode_bool_masks
from detcore.metrics.validation import validation_evaluation
from detcore.structures import Detections
from detcore.train.runs import Status
from detcore.train.state import Callback


class JsonlWriter(Callback):
    """Appends every record to events.jsonl. Step records are batched (one write + fsync per
    ``flush_s``) so logging costs nothing measurable per iteration; status and epoch records are
    written at once because a reader (the app, a restarted server) acts on them, and so is the first
    step after one: the live chart shows an epoch's first loss at once, and a reader that sees a step
    before the epoch record knows that epoch is under way."""

    def __init__(self, path: Path, *, flush_s: float = 1.0):
        self.path, self.flush_s = Path(path), flush_s
        self._pending: list[dict] = []
        self._last_flush = time.monotonic()
        self._previous_type = None

    def on_record(self, t, record):
        self._pending.append(record)
        first_step = record["type"] == "step" and self._previous_type not in (None, "step")
        self._previous_type = record["type"]
        if record["type"] != "step" or first_step or time.monotonic() - self._last_flush >= self.flush_s:
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
        s = t.state
        now = time.perf_counter()
        self._times.append((now, s.batch_images))
        (t0, _), n_images = self._times[0], sum(n for _, n in list(self._times)[1:])
        elapsed = max(now - t0, 1e-9)
        steps_in_window = len(self._times) - 1
        record = {"type": "step", "epoch": s.epoch, "iter": s.iter, "global_step": s.global_step,
                  "total_steps": s.total_steps, "losses": s.step_losses, "loss": s.step_loss,
                  "lr": t.optimizer.param_groups[0]["lr"], "images_per_s": n_images / elapsed,
                  "eta_s": elapsed / max(steps_in_window, 1) * max(s.total_steps - s.global_step, 0),
                  "time": time.time()}
        if t.device.type == "cuda":
            record["gpu_mem_mb"] = torch.cuda.max_memory_allocated(t.device) / 2**20
        t.emit(record)


class Validation(Callback):
    """Every ``eval_every`` epochs (and after the last): validation loss and COCO metrics
    (``detcore.metrics.validation``: bbox, plus ``segm_*`` for mask models) on the run's validation
    split, or its test split when it has none.
    Writes ``state.val_loss``, ``state.metrics`` and ``state.val_evaluation``."""

    def __init__(self, *, every: int):
        self.every = every

    def on_epoch_end(self, t):
        s = t.state
        last = s.epoch + 1 == t.config.epochs or s.time_up  # the time limit ends the run after this epoch
        if not self.every or not t.val_samples or ((s.epoch + 1) % self.every and not last):
            return
        s.val_loss, s.metrics, s.val_evaluation = validate(
            t.eval_model, t.val_samples, t.classes, device=t.device, with_masks=t.with_masks,
            with_result=True, batch_invariant=model_info(t.config.model).batch_invariant)


class EpochLogger(Callback):
    """Emits the ``epoch`` record once validation (if any) has run."""

    def on_epoch_end(self, t):
        s = t.state
        t.emit({"type": "epoch", "epoch": s.epoch, "val_loss": s.val_loss, "metrics": s.metrics or {},
                "train_loss": s.epoch_loss, "time": time.time()})


def _score(metrics: dict | None) -> float | None:
    for key in ("AP", "AP50"):
        v = (metrics or {}).get(key)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            return float(v)
    return None


class Checkpointer(Callback):
    """``last.pt`` after every epoch and on a stop; ``best.pt`` when validation AP improves (or, when
    a run has no validation, the final weights). Written atomically through detcore.atomic.
    Writes ``state.best_metric``."""

    def on_epoch_end(self, t):
        s = t.state
        t.save_checkpoint("last")
        score = _score(s.metrics) if s.metrics is not None else None
        if score is not None and (s.best_metric is None or score > s.best_metric):
            s.best_metric = score
            t.save_checkpoint("best")

    def on_train_end(self, t):
        if t.state.status == Status.STOPPED:
            t.save_checkpoint("last")
        if t.state.status in (Status.COMPLETED, Status.STOPPED) and not t.run.checkpoint_path("best").exists() \
                and t.run.checkpoint_path("last").exists():
            t.save_checkpoint("best")


class EarlyStopping(Callback):
    """Stops when validation AP has not improved by more than ``min_delta`` for ``patience`` validations.
    Writes ``state.early_stop`` (the reason); the trainer ends the run after this epoch."""

    def __init__(self, *, patience: int, min_delta: float = 1e-4):
        self.patience, self.min_delta, self.best, self.bad = patience, min_delta, None, 0

    def on_epoch_end(self, t):
        score = _score(t.state.metrics) if t.state.metrics is not None else None
        if score is None:
            return
        if self.best is None or score > self.best + self.min_delta:
            self.best, self.bad = score, 0
            return
        self.bad += 1
        if self.bad >= self.patience:
            t.state.early_stop = (f"early stopping: no AP improvement in {self.patience} validations "
                                  f"(best {self.best:.4f})")


@torch.no_grad()
def validate(model: torch.nn.Module, samples: list, classes: list[str], *, device: torch.device,
             with_masks: bool = False, batch_size: int = 4, with_result: bool = False,
             batch_invariant: bool = False) -> tuple:
    """(mean validation loss, metrics summary) of ``model`` on ``samples`` (``with_result``: and the
    EvaluationResult behind the summary, as a third item). Detections are computed one image at a
    time unless the model is ``batch_invariant`` (as the Predictor does), so validation scores the
    same detections ``evaluate`` and the Predict page see.

    The loss needs torchvision's training-mode forward; BatchNorm layers are kept in eval mode
    meanwhile so validation never changes running statistics.
    """
    loader = torch.utils.data.DataLoader(DetectionDataset(samples, classes, with_masks=with_masks),
                                         batch_size=batch_size, collate_fn=collate_fn)
    was_training, losses, dets = model.training, [], []
    transform = getattr(model, "transform", None)
    skip_resize = getattr(transform, "_skip_resize", False)
    if skip_resize:  # crop training skips the resize in train mode; the loss needs whole images resized
        transform._skip_resize = False
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
            outputs = model(images) if batch_invariant else [model([im])[0] for im in images]
            for tg, out in zip(targets, outputs):
                # Mask models: masks as RLE at once (full-size arrays of every image would not fit in memory)
                rles = encode_bool_masks((out["masks"][:, 0] > 0.5).cpu().numpy()) if "masks" in out else None
                dets.append(Detections(samples[tg["image_id"]].image_id, out["boxes"].float().cpu().numpy(),
                                       out["scores"].float().cpu().numpy(), out["labels"].cpu().numpy() - 1,
                                       mask_rles=rles))
    finally:
        model.train(was_training)
        if skip_resize:
            transform._skip_resize = True
    val_loss = float(np.mean(losses)) if losses and np.isfinite(np.mean(losses)) else None
    metrics, result = validation_evaluation(samples, dets, classes)  # bbox, and segm_* for mask models
    return (val_loss, metrics, result) if with_result else (val_loss, metrics)

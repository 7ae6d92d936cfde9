"""Training the crop classifier (detcore/crop_classifier.py) after the detector: ``classifier_minutes``.

``CropClassifierStage`` is a callback that runs when a run *completes* (not when it is stopped or
fails), after the last checkpoint is written:

1. the detector of ``best.pt`` (the weights that predict) runs over the validation images once; its
   detections and each merged object's crop are kept for step 4, so step 3 can use every second left;
2. crops of the training split's boxes — ground truth, never detections, never validation or test
   images — are cut from each image as the detector sees it: each box as drawn and ``JITTER_VIEWS``
   times shifted and rescaled by ``JITTER`` of its size (the detector's boxes are not exact either);
3. the classifier trains until its time is up: AdamW, a cosine learning rate over the time, class
   weights 1/sqrt(frequency) (rare classes count more, as the detector's balanced crops do), label
   smoothing, mirror images and brightness changes;
4. on the validation images, the detector alone and re-scored are scored with the run's validation
   metric (AP); the classifier is written into ``best.pt`` and ``last.pt`` only when re-scoring
   raises it, so a dataset where it does not help keeps the detector's own scores.

A ``classifier`` record in events.jsonl tells each phase (the Train page shows it), ending with
``phase: "finished"``, ``kept`` and both validation results, or ``phase: "skipped"`` and why.

Time: under ``time_limit`` the detector's budget (``detcore/train/budget.py``) is ``time_limit -
classifier_budget()`` (``classifier_minutes``, at most a quarter of the limit) and this stage gets what is
left of the whole run's limit; without a limit it gets ``classifier_minutes``. A Stop request ends the stage at once (the detector's
checkpoints are complete; the run ends ``stopped``).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from detcore import atomic
from detcore.checkpoints import load_checkpoint
from detcore.crop_classifier import CropClassifier, Rescorer, default_spec, detections_limit, model_view, object_crops
from detcore.data.images import load_rgb
from detcore.errors import CheckpointError, DetcoreError
from detcore.metrics.validation import validation_evaluation
from detcore.train.runs import Status
from detcore.train.state import Callback

JITTER_VIEWS = 3  # extra views of each training box
JITTER = 0.1  # standard deviation of the shift (of width / height) and of the log of the scale
MAX_CROPS = 60_000  # crops held in memory (uint8, 7 KB each at 48 px): boxes beyond that get fewer views
MAX_CHECK_IMAGES = 300  # validation images of the keep/drop check (their crops are held in memory)
BATCH = 64
LR, WEIGHT_DECAY, LABEL_SMOOTHING = 2e-3, 1e-3, 0.05
CHECK_FLOOR = 0.001  # evaluation's score floor (detcore/evaluation.py EVAL_SCORE_FLOOR)
MIN_STAGE_S = 5.0  # reading the images once (steps 1-2) is never cut short; training is


def stage_seconds(config, train_seconds: float) -> float:
    """The stage's time: what is left of the run's limit, else ``classifier_minutes``."""
    if config.time_limit:
        return max(config.time_limit * 60.0 - train_seconds, MIN_STAGE_S)
    return config.classifier_budget() * 60.0


def _score(metrics: dict) -> float:
    value = metrics.get("AP")
    return float(value if value is not None and value == value else metrics.get("AP50") or 0.0)


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


class StageStopped(Exception):
    pass


class CropClassifierStage(Callback):
    """Trains, checks and stores the crop classifier when the run completes (steps in the module
    docstring). ``active`` is False, and ``reason`` says why, when it cannot train on this data."""

    def __init__(self, classes: list[str], val_samples: list):
        self.reason = ("one class: there is no class to tell apart" if len(classes) < 2 else
                       "no validation images to check the classifier on" if not val_samples else None)
        self.active = self.reason is None

    def on_train_end(self, t):
        if t.state.status != Status.COMPLETED:
            return
        if not self.active:
            return self.emit(t, "skipped", message=self.reason)
        started = time.monotonic()
        deadline = started + stage_seconds(t.config, t.state.train_seconds)
        try:
            result = self.run(t, started, deadline)
        except StageStopped:
            t.state.status, t.state.message = Status.STOPPED, "stopped while training the crop classifier; " \
                                                               "the detector's checkpoints are complete"
            return self.emit(t, "skipped", message="stopped by request")
        except Exception as e:  # the detector's run is complete and stands; say what went wrong with the extra
            reason = str(e) if isinstance(e, DetcoreError) else f"{type(e).__name__}: {str(e)[:300]}"
            result = f"crop classifier failed, predictions keep the detector's scores ({reason})"
            self.emit(t, "skipped", message=result)
        t.state.message += "; " + result

    def emit(self, t, phase: str, **fields) -> None:
        t.emit({"type": "classifier", "phase": phase, "time": time.time(), **fields})

    def check_stop(self, t) -> None:
        if t.stop_event.is_set():
            raise StageStopped

    # --- the four steps -------------------------------------------------------------------------
    def run(self, t, started: float, deadline: float) -> str:
        from detcore.inference import Predictor, _set_score_floor, _to_detections

        device = t.device
        predictor = Predictor.from_run(t.run.path, checkpoint="best", device=str(device), rescore=False)
        model = predictor.model
        _set_score_floor(model, CHECK_FLOOR)
        spec = default_spec(len(t.classes))
        limit = detections_limit(model)
        self.emit(t, "started", budget_s=round(deadline - started, 1))

        # 1. the validation images through the detector, once
        check_samples = t.val_samples
        if len(check_samples) > MAX_CHECK_IMAGES:
            pick = np.random.default_rng(t.config.seed).choice(len(check_samples), MAX_CHECK_IMAGES, replace=False)
            check_samples = [check_samples[i] for i in sorted(pick)]
        plain, held = [], []
        probe = Rescorer(CropClassifier(spec), spec, limit)
        with torch.inference_mode():
            for s in check_samples:
                self.check_stop(t)
                image = _tensor(load_rgb(s.image_path)).to(device)
                raw = model([image])[0]
                plain.append(_to_detections(s.image_id, raw, CHECK_FLOOR))
                held.append(probe.prepare(*model_view(model.transform, image), raw))  # the Predictor's first half

        # 2. crops of the training boxes
        crops, labels = self.training_crops(t, model, spec, device)
        self.check_stop(t)
        counts = np.bincount(labels.numpy(), minlength=len(t.classes))
        self.emit(t, "crops", crops=int(len(labels)), per_class=counts.tolist(),
                  seconds=round(time.monotonic() - started, 1))

        # 3. training, to the deadline less the time the check will take
        classifier = CropClassifier(spec).to(device)
        n_check = sum(len(h[0]) for h in held)
        epochs, steps, loss = self.fit(t, classifier, crops, labels, counts, deadline, n_check)
        classifier.to(memory_format=torch.contiguous_format)  # checked as the Predictor will run it

        # 4. keep it only if re-scoring raises validation AP
        rescorer = Rescorer(classifier.eval(), spec, limit)
        rescored = []
        with torch.inference_mode():
            for s, (boxes, scores, object_crop) in zip(check_samples, held):
                out = rescorer.combine(boxes, scores, rescorer.probabilities(object_crop))
                rescored.append(_to_detections(s.image_id, out, CHECK_FLOOR))
        before, _ = validation_evaluation(check_samples, plain, t.classes)
        after, _ = validation_evaluation(check_samples, rescored, t.classes)
        kept = _score(after) > _score(before)
        summary = {k: before.get(k) for k in ("AP", "AP50")}, {k: after.get(k) for k in ("AP", "AP50")}
        # not kept: a classifier carried over from before a resume goes too, so the detector's scores stand
        self.save(t, classifier_entry(spec, classifier, {"detector": summary[0], "rescored": summary[1],
                                                         "images": len(plain)}) if kept else None)
        seconds = round(time.monotonic() - started, 1)
        message = (f"crop classifier {'kept' if kept else 'not kept'}: validation AP50 "
                   f"{summary[0]['AP50'] or 0:.3f} alone, {summary[1]['AP50'] or 0:.3f} re-scored")
        self.emit(t, "finished", kept=kept, detector=summary[0], rescored=summary[1], images=len(plain),
                  epochs=round(epochs, 2), steps=steps, loss=loss, seconds=seconds, message=message)
        return message

    def training_crops(self, t, model, spec: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (N, 3, S, S) crops of the training boxes and their class indices."""
        samples = t.train_loader.dataset.samples
        n_boxes = sum(len(s.boxes) for s in samples)
        views = max(1, min(1 + JITTER_VIEWS, MAX_CROPS // max(n_boxes, 1)))
        rng = np.random.default_rng(t.config.seed)
        chunks, labels = [], []
        with torch.inference_mode():
            for s in samples:
                self.check_stop(t)
                boxes = np.asarray(s.boxes, np.float32).reshape(-1, 4)
                keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
                if s.iscrowd is not None:
                    keep &= ~np.asarray(s.iscrowd, bool)
                if not keep.any():
                    continue
                image = _tensor(load_rgb(s.image_path)).to(device)
                view, factor = model_view(model.transform, image)
                boxes = torch.as_tensor(boxes[keep], device=device) * factor
                all_boxes = [boxes] + [_jitter(boxes, rng) for _ in range(views - 1)]
                out = object_crops(view, torch.cat(all_boxes), spec["crop_size"], spec["margin"])
                chunks.append((out.clamp(0, 1) * 255).round().to(torch.uint8).cpu())
                labels.append(np.tile(np.asarray(s.labels, np.int64)[keep], views))
        if not chunks:
            return torch.zeros((0, 3, spec["crop_size"], spec["crop_size"]), dtype=torch.uint8), torch.zeros(0, dtype=torch.long)
        return torch.cat(chunks), torch.from_numpy(np.concatenate(labels))

    def fit(self, t, classifier, crops, labels, counts, deadline: float, n_check: int) -> tuple[float, int, float | None]:
        """Train until the deadline (less the measured time of the check); (epochs, steps, last loss)."""
        device = t.device
        torch.manual_seed(t.config.seed)
        freq = np.maximum(counts, 1) / max(counts.sum(), 1)
        weights = torch.tensor(1 / np.sqrt(freq), dtype=torch.float32)
        weights = (weights / weights.mean()).to(device)
        optimizer = torch.optim.AdamW(classifier.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        # bfloat16 autocast and channels-last as the detector trained (config.cpu_bf16, channels_last): 2.1x
        # the steps of float32 for this network on a CPU with native bf16; prediction stays float32
        from detcore.train.trainer import cpu_has_bf16

        bf16 = device.type == "cpu" and t.config.cpu_bf16 and cpu_has_bf16()
        layout = torch.channels_last if t.config.channels_last else torch.contiguous_format
        classifier.to(memory_format=layout)
        start = time.monotonic()
        per_crop, steps, loss_value, seen = None, 0, None, 0
        last_record = start
        while len(labels):
            order = torch.randperm(len(labels))
            for i in range(0, len(order), BATCH):
                now = time.monotonic()
                reserve = 5.0 + (2.0 * n_check * per_crop if per_crop else 10.0)
                if now >= deadline - reserve:
                    return seen / len(labels), steps, loss_value
                self.check_stop(t)
                span = max(deadline - reserve - start, 1e-6)
                for g in optimizer.param_groups:
                    g["lr"] = LR * 0.5 * (1 + math.cos(math.pi * min((now - start) / span, 1.0)))
                idx = order[i:i + BATCH]
                x = crops[idx].to(device).float().div_(255.0)
                flip = torch.rand(len(idx), device=device) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                x = (x * (0.8 + 0.4 * torch.rand(len(idx), 1, 1, 1, device=device))).clamp_(0, 1)
                classifier.train()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = classifier(x.contiguous(memory_format=layout))
                loss = F.cross_entropy(logits.float(), labels[idx].to(device), weight=weights,
                                       label_smoothing=LABEL_SMOOTHING)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                steps, seen, loss_value = steps + 1, seen + len(idx), float(loss.detach())
                if per_crop is None and steps == 3:  # a forward pass costs about a third of a training step
                    per_crop = (time.monotonic() - now) / len(idx) / 3
                if time.monotonic() - last_record > 10:
                    last_record = time.monotonic()
                    self.emit(t, "training", steps=steps, epochs=round(seen / len(labels), 2), loss=loss_value,
                              left_s=round(deadline - time.monotonic(), 1))
        return 0.0, 0, None

    def save(self, t, entry: dict | None) -> None:
        store_classifier(t.run, entry)
        t.classifier_entry = entry  # the trainer's later saves (a resumed run's) keep it


def classifier_entry(spec: dict, classifier: torch.nn.Module, check: dict) -> dict:
    """What a checkpoint's ``classifier`` holds: the spec, CPU weights, and the validation check."""
    return {"spec": spec, "state": {k: v.detach().cpu() for k, v in classifier.state_dict().items()}, "check": check}


def store_classifier(run, entry: dict | None) -> None:
    """Write ``entry`` as the ``classifier`` of the run's best.pt and last.pt (None removes it), atomically."""
    for which in ("best", "last"):
        path = run.checkpoint_path(which)
        if not path.exists():
            continue
        saved = load_checkpoint(path)
        if entry is None and "classifier" not in saved:
            continue
        saved.pop("classifier", None)
        if entry is not None:
            saved["classifier"] = entry
        try:
            atomic.torch_save(path, saved)
        except OSError as e:
            raise CheckpointError(path, f"could not be saved with the classifier ({e.strerror or e}); "
                                        "the previous checkpoint is left intact") from None


def _jitter(boxes: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """``boxes`` shifted by N(0, JITTER) of their size and rescaled by exp(N(0, JITTER))."""
    d = torch.as_tensor(rng.normal(0.0, JITTER, (len(boxes), 3)), dtype=torch.float32, device=boxes.device)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2 + d[:, 0] * w, (boxes[:, 1] + boxes[:, 3]) / 2 + d[:, 1] * h
    s = torch.exp(d[:, 2])
    return torch.stack([cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2], dim=1)

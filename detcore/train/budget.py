"""Train for a wall-clock budget (``time_limit`` minutes, ``train --time-limit``).

The steps that fit are not known in advance — they depend on the model, the data and, on a shared
machine, on what else runs — so ``TimeBudget`` measures them as the run goes and keeps re-planning:

- step time: the median of the last ``WINDOW`` steps (a slow first step or a burst of load does
  not swing the plan);
- epoch boundaries (BatchNorm recalibration, validation, checkpoints) are timed when they happen,
  separately for boundaries with and without validation, and estimated from the step time before
  the first one is seen;
- planned total steps = steps done + (time left − the boundaries to come − the final validation)
  / step time. The trainer's LR schedule reads its length from ``schedule.total``, so a cosine or a
  step schedule stretches or shrinks to the budget (step decays stay at the same fractions);
- when one more step would not leave time for the final validation and checkpoint, it sets
  ``state.time_up`` and the trainer it ends the epoch there, validates, keeps the best checkpoint and finishes as
  ``completed`` with the message "time limit of N min reached after S steps"; a ``time_limit``
  record in events.jsonl says the same with the numbers.

Time counts from the call of ``train()`` (reading the data and fitting the geometry included) and
adds up across ``--resume`` (checkpoints carry ``train_seconds``).
"""

from __future__ import annotations

import statistics
import time
from collections import deque

from detcore.train.state import Callback

WINDOW = 30
MARGIN_S = 3.0  # slack for the final checkpoint write and the status record
VAL_COST_PER_IMAGE = 1.5  # a validation image (whole, loss + prediction) in training-image step times (until measured)
RECALIBRATION_IMAGES = 64  # PreciseBatchNorm's default sample


class TimeBudget(Callback):
    main_only = True  # single-process runs only (the trainer refuses a time limit under torchrun)

    def __init__(self, minutes: float, *, started: float | None = None):
        self.limit = float(minutes) * 60.0
        self.started = time.monotonic() if started is None else started
        self.before = 0.0
        self.steps: deque[float] = deque(maxlen=WINDOW)
        self.last_step_end: float | None = None
        self.boundary = {True: [], False: []}  # validated? -> measured seconds
        self._validated_last = False

    # --- measurements ---------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.before + time.monotonic() - self.started

    def step_seconds(self) -> float | None:
        return statistics.median(self.steps) if len(self.steps) >= 3 else None

    def boundary_seconds(self, t, validated: bool) -> float:
        seen = self.boundary[validated]
        if seen:
            return max(seen[-3:])
        step = self.step_seconds() or 1.0
        per_image = step / max(t.config.batch_size, 1)
        cost = 1.0 + RECALIBRATION_IMAGES * per_image * 0.4
        if validated:
            cost += len(t.val_samples) * per_image * VAL_COST_PER_IMAGE
        return cost

    # --- events ---------------------------------------------------------------------------------
    def on_train_start(self, t):
        s = t.state
        self.before = float(s.train_seconds or 0.0)  # from the checkpoint a resumed run starts at
        s.train_seconds = self.elapsed()
        if s.train_seconds >= self.limit:
            s.time_up = True

    def on_epoch_start(self, t):
        now = time.monotonic()
        if self.last_step_end is not None:
            self.boundary[self._validated_last].append(now - self.last_step_end)
        self.last_step_end = now  # the first step of an epoch is timed from here

    def on_record(self, t, record):
        if record.get("type") == "epoch":
            self._validated_last = bool(record.get("metrics"))

    def on_step_end(self, t):
        s, now = t.state, time.monotonic()
        if self.last_step_end is not None:
            self.steps.append(now - self.last_step_end)
        self.last_step_end = now
        s.train_seconds = self.elapsed()
        step = self.step_seconds()
        if step is None:
            return
        final = self.boundary_seconds(t, validated=bool(t.val_samples and t.config.eval_every)) + MARGIN_S
        left = self.limit - s.train_seconds - final
        if left < step:
            s.time_up = True
        self.plan(t, max(left, 0.0), step)

    def plan(self, t, left: float, step: float) -> None:
        """Lay the schedule over the steps that fit in ``left`` seconds."""
        s, ipe = t.state, max(t.iters_per_epoch, 1)
        steps = left / step
        every = t.config.eval_every
        for _ in range(2):  # boundaries to cross depend on the steps, and cost steps in turn
            crossings = int((s.global_step + steps) // ipe) - int(s.global_step // ipe)
            with_val = crossings // every if every else 0
            cost = with_val * self.boundary_seconds(t, True) + (crossings - with_val) * self.boundary_seconds(t, False)
            steps = max(left - cost, 0.0) / step
        total = s.global_step if s.time_up else s.global_step + int(steps)
        s.total_steps = max(total, s.global_step)
        t.schedule.total = max(s.total_steps, 1)

    def on_train_end(self, t):
        s = t.state
        s.train_seconds = self.elapsed()
        if s.time_up:
            t.emit({"type": "time_limit", "limit_s": self.limit, "elapsed_s": round(s.train_seconds, 1),
                    "steps": s.global_step, "epochs": round(s.global_step / max(t.iters_per_epoch, 1), 2),
                    "step_s": self.step_seconds(), "time": time.time()})

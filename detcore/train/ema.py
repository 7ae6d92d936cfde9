"""An exponential moving average of the weights (``TrainConfig.ema_decay``).

Weights that still move a lot from step to step predict more steadily as a running average (the
usual gain on long schedules). Under a short cosine schedule that ends at learning rate 0 the
average lags instead: on cpu-real it lost 0.03 test AP50 (detcore/train/presets.py notes), so no
preset turns it on. The trainer keeps this average beside the model it trains:
validation, ``best.pt`` and prediction use the average (the checkpoint's ``model``), training goes on
with the raw weights (``train_model`` in ``last.pt``, so a resumed run continues both exactly).

After ``n`` updates the average moves by ``1 - decay * (1 - exp(-n / RAMP_STEPS))`` towards the
current weights: the first steps' random weights leave the average quickly. BatchNorm running
statistics are averaged too; runs from scratch recompute them for the average before it is
validated or saved (detcore/train/precise_bn.py).
"""

from __future__ import annotations

import copy
import math

import torch

RAMP_STEPS = 100  # time constant of the warm-up of the decay, in optimizer steps


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.updates = 0
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)

    def current_decay(self) -> float:
        return self.decay * (1.0 - math.exp(-self.updates / RAMP_STEPS))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Move the average towards ``model``'s weights (call after each optimizer step)."""
        self.updates += 1
        weight = 1.0 - self.current_decay()
        mine = self.model.state_dict()
        floats, targets = [], []
        for name, value in model.state_dict().items():
            own = mine[name]
            if own.is_floating_point():
                floats.append(own)
                targets.append(value.detach())
            else:
                own.copy_(value)  # counters such as BatchNorm's num_batches_tracked
        if floats:
            torch._foreach_lerp_(floats, targets, weight)

    def state(self) -> dict:
        return {"updates": self.updates}

    def load(self, weights: dict, state: dict | None) -> None:
        self.model.load_state_dict(weights)
        self.updates = int((state or {}).get("updates", 0))

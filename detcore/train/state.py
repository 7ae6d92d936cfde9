"""The training loop's state and the base class of its callbacks (torch-free, so the job registry and
the CLI's progress printer can subclass ``Callback`` without importing torch).

``TrainState`` is the one place the loop's moving parts live: the trainer advances the counters and
the step losses; each built-in callback writes its result to a named field (``Validation`` →
``val_loss``/``metrics``, ``Checkpointer`` → ``best_metric``, ``EarlyStopping`` → ``early_stop``,
``TimeBudget`` → ``time_up``/``train_seconds``/``total_steps``) and the
callbacks after it read that field. Their order is fixed in one list (``detcore.train.trainer.train``).
Callbacks run on DDP rank 0 only: the other ranks train and take part in collective decisions
(stop requests, early stopping) but write nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detcore.train.runs import Status

if TYPE_CHECKING:  # pragma: no cover
    from detcore.train.trainer import Trainer


@dataclass
class TrainState:
    # where the loop is
    epoch: int = 0  # current epoch, 0-based
    iter: int = 0  # iteration within the epoch, 0-based
    global_step: int = 0  # optimizer steps taken by the whole run (resume continues the count)
    total_steps: int = 0  # planned steps of the whole run
    start_epoch: int = 0  # first epoch this session trains (> 0 after a resume)
    epochs_done: int = 0  # epochs of the run completed (what a checkpoint records)
    # the last step (written by the trainer)
    batch_images: int = 0  # images in the last step, summed over ranks
    step_loss: float | None = None
    step_losses: dict[str, float] = field(default_factory=dict)
    loss_sum: float = 0.0  # finite step losses of this epoch, for the epoch's mean training loss
    loss_count: int = 0
    # this epoch's results (reset at each epoch start)
    val_loss: float | None = None  # Validation
    metrics: dict | None = None  # Validation: COCO summary of the validation split
    val_evaluation: Any = None  # Validation: its EvaluationResult (PR curves for the experiment loggers)
    # across epochs
    best_metric: float | None = None  # Checkpointer: best validation score so far (AP, else AP50)
    early_stop: str | None = None  # EarlyStopping: the reason, once it decided to stop
    # the time limit (TimeBudget, detcore/train/budget.py; the trainer ends the epoch when time_up)
    time_up: bool = False  # TimeBudget: one more step would not leave time to validate and save
    train_seconds: float = 0.0  # TimeBudget: training time of the whole run (resumes add up; in checkpoints)
    # how the run ends
    status: Status = Status.RUNNING
    message: str = ""

    @property
    def epoch_loss(self) -> float | None:
        return self.loss_sum / self.loss_count if self.loss_count else None

    def begin_epoch(self, epoch: int) -> None:
        self.epoch, self.iter = epoch, 0
        self.val_loss = self.metrics = self.val_evaluation = None
        self.loss_sum, self.loss_count = 0.0, 0


class Callback:
    """Override the events you need. Each gets the trainer: ``t.state`` (above) and the run's fixed
    parts (``t.config``, ``t.run_dir``, ``t.unwrapped_model``, ``t.train_loader``, ``t.device`` ...).

    Events, in order: ``train_start``; per epoch ``epoch_start``, ``step_end`` per iteration,
    ``epoch_end``; ``train_end``. ``on_record`` sees every record that goes to events.jsonl."""

    def on_train_start(self, t: "Trainer") -> None: ...
    def on_epoch_start(self, t: "Trainer") -> None: ...
    def on_step_end(self, t: "Trainer") -> None: ...
    def on_epoch_end(self, t: "Trainer") -> None: ...
    def on_train_end(self, t: "Trainer") -> None: ...
    def on_record(self, t: "Trainer", record: dict) -> None: ...

"""Experiment logs in the tools people already use: TensorBoard and MLflow, as trainer callbacks.

Both packages are optional (requirements-tracking.txt); nothing else in detcore imports them.

- :class:`TensorBoardLogger` writes ``RUN/tensorboard/``: every step's losses, learning rate and
  images/s (the values of ``events.jsonl``'s step records, at their ``global_step``), every epoch's
  validation loss and metrics, and per-class PR curves from the validation matches. The trainer
  adds it by default when ``tensorboard`` is installed (:func:`default_loggers`; set
  ``DETBOARD_TENSORBOARD=0`` to turn it off). ``tensorboard --logdir runs/`` shows every run.
- :class:`MLflowLogger` (``train --mlflow URI``) logs the config as params, the same metrics, and at
  the end the run's best model exported to ONNX (``detcore.export``) as an artifact.

Both read the records the trainer emits (``on_record``), so they log exactly what events.jsonl holds.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from detcore.errors import ConfigError, DetcoreError
from detcore.train.runs import FINISHED, Status
from detcore.train.state import Callback

TENSORBOARD_DIR = "tensorboard"
TENSORBOARD_ENV = "DETBOARD_TENSORBOARD"
TERMINAL = FINISHED
PR_THRESHOLDS = 101


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def default_loggers(run_dir: Path) -> list[Callback]:
    """The loggers every training run gets: TensorBoard when installed and not switched off."""
    if os.environ.get(TENSORBOARD_ENV, "1") == "0" or not tensorboard_available():
        return []
    return [TensorBoardLogger(Path(run_dir) / TENSORBOARD_DIR)]


def step_scalars(record: dict) -> dict[str, float]:
    """The scalars of one ``step`` record, by TensorBoard/MLflow tag."""
    out = {"train/loss": record["loss"], "train/lr": record["lr"], "train/images_per_s": record["images_per_s"]}
    out.update({f"train/{name}": value for name, value in (record.get("losses") or {}).items()})
    return {k: float(v) for k, v in out.items() if _finite(v)}


def epoch_scalars(record: dict) -> dict[str, float]:
    """The scalars of one ``epoch`` record: validation loss and metrics, the epoch's mean train loss."""
    out: dict[str, Any] = {"val/loss": record.get("val_loss"), "train/epoch_loss": record.get("train_loss")}
    out.update({f"val/{name}": value for name, value in (record.get("metrics") or {}).items()})
    return {k: float(v) for k, v in out.items() if _finite(v)}


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def pr_counts(curve, thresholds: np.ndarray, n_gt: float | None = None) -> dict[str, np.ndarray]:
    """TP/FP/FN, precision and recall of one class at each score threshold (detections scoring >= it),
    from ``EvaluationResult.threshold_curve`` (its rows: one per distinct score, high to low).
    ``n_gt``: the class's ground-truth count (read from the curve when not given; a class without
    detections has an empty curve)."""
    scores = curve["threshold"].to_numpy(float)
    tp_at, fp_at = curve["tp"].to_numpy(float), curve["fp"].to_numpy(float)
    if n_gt is None:
        n_gt = float(curve["fn"].iloc[0] + curve["tp"].iloc[0]) if len(curve) else 0.0
    n_gt = float(n_gt)
    if not len(curve):  # no detection of this class at any score
        tp_at, fp_at = np.zeros(1), np.zeros(1)
    # rows are sorted by score descending; the row for threshold g is the last one with score >= g
    kept = np.searchsorted(-scores, -thresholds, side="right")  # how many rows have score >= g
    tp = np.where(kept > 0, tp_at[np.maximum(kept - 1, 0)], 0.0)
    fp = np.where(kept > 0, fp_at[np.maximum(kept - 1, 0)], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
        recall = tp / n_gt if n_gt > 0 else np.zeros_like(tp)
    return {"tp": tp, "fp": fp, "tn": np.zeros_like(tp), "fn": n_gt - tp, "precision": precision, "recall": recall}


class TensorBoardLogger(Callback):
    """Scalars and PR curves under ``log_dir`` (one event file per training session; a resumed run
    purges the steps it redoes, so curves do not fold back on themselves)."""

    main_only = True

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self.writer = None

    def on_train_start(self, t):
        from torch.utils.tensorboard import SummaryWriter

        resumed = bool(t.state.start_epoch)
        self.writer = SummaryWriter(str(self.log_dir), purge_step=t.state.global_step if resumed else None)
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in t.config.to_dict().items()), 0)

    def on_record(self, t, record):
        if self.writer is None:
            return
        kind = record.get("type")
        if kind == "step":
            for tag, value in step_scalars(record).items():
                self.writer.add_scalar(tag, value, record["global_step"], walltime=record.get("time"))
        elif kind == "epoch":
            step = t.state.global_step
            for tag, value in epoch_scalars(record).items():
                self.writer.add_scalar(tag, value, step, walltime=record.get("time"))
            self._pr_curves(t.state.val_evaluation, step)
            self.writer.flush()
        elif kind == "status" and record.get("status") in TERMINAL:
            self.close()

    def _pr_curves(self, result, step: int) -> None:
        if result is None:
            return
        grid = np.linspace(0.0, 1.0, PR_THRESHOLDS)
        for k, name in enumerate(result.classes):
            c = pr_counts(result.threshold_curve(name), grid, result.n_gt[k])
            self.writer.add_pr_curve_raw(f"pr_curve/{name}", c["tp"], c["fp"], c["tn"], c["fn"], c["precision"],
                                         c["recall"], global_step=step, num_thresholds=PR_THRESHOLDS)

    def on_train_end(self, t):
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MLflowLogger(Callback):
    """Params, metrics and the exported model of one training session in an MLflow tracking store.

    ``connect()`` reaches the store before training starts, so a wrong URI is a one-line
    ConfigError, not a failure after an hour of training. Metrics are sent in batches (every
    ``flush_s`` seconds and at each epoch), not one request per step."""

    main_only = True

    def __init__(self, uri: str, *, experiment: str = "detboard", export_format: str | None = "onnx",
                 flush_s: float = 5.0):
        self.uri, self.experiment, self.export_format, self.flush_s = uri, experiment, export_format, flush_s
        self.client = self.experiment_id = self.run_id = None
        self._pending: list = []
        self._last_flush = time.monotonic()

    def connect(self) -> "MLflowLogger":
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError("--mlflow", "the mlflow client is not installed; pip install -r requirements-tracking.txt") from None
        try:
            self.client = MlflowClient(tracking_uri=self.uri)
            found = self.client.get_experiment_by_name(self.experiment)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(self.experiment)
        except Exception as e:  # unreachable server, refused file store, bad URI
            raise ConfigError("--mlflow", f"cannot use MLflow tracking URI {self.uri!r}: {_first_sentence(e)}") from None
        return self

    def on_train_start(self, t):
        from mlflow.entities import Param

        if self.client is None:
            self.connect()
        run = self.client.create_run(self.experiment_id, run_name=Path(t.run_dir).name,
                                     tags={"detboard.run_dir": str(Path(t.run_dir).resolve()),
                                           "detboard.model": t.config.model})
        self.run_id = run.info.run_id
        params = [Param(k, str(v)[:500]) for k, v in sorted(_flat(t.config.to_dict()).items())]
        params.append(Param("classes", ",".join(t.classes)[:500]))
        for start in range(0, len(params), 100):  # MLflow accepts at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def on_record(self, t, record):
        if self.run_id is None:
            return
        kind = record.get("type")
        if kind == "step":
            self._queue(step_scalars(record), record["global_step"], record.get("time"))
            if time.monotonic() - self._last_flush >= self.flush_s:
                self.flush()
        elif kind == "epoch":
            self._queue(epoch_scalars(record), t.state.global_step, record.get("time"))
            self.flush()
        elif kind == "status" and record.get("status") in TERMINAL:
            self.finish(t, record["status"])

    def _queue(self, scalars: dict[str, float], step: int, when: float | None) -> None:
        from mlflow.entities import Metric

        stamp = int((when or time.time()) * 1000)
        self._pending += [Metric(tag.replace("/", "."), value, stamp, int(step)) for tag, value in scalars.items()]

    def flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:1000], self._pending[1000:]  # MLflow's per-request limit
            self.client.log_batch(self.run_id, metrics=batch)
        self._last_flush = time.monotonic()

    def finish(self, t, status: str) -> None:
        self.flush()
        if self.export_format and status in (Status.COMPLETED, Status.STOPPED):
            self._log_model(t)
        self.client.set_terminated(self.run_id, {Status.COMPLETED: "FINISHED", Status.STOPPED: "KILLED"}.get(status, "FAILED"))
        self.run_id = None

    def _log_model(self, t) -> None:
        from detcore.export import export_run

        try:
            path = export_run(t.run_dir, self.export_format)
            self.client.log_artifact(self.run_id, str(path), artifact_path="model")
        except DetcoreError as e:  # the training itself succeeded: say why the artifact is missing
            print(f"warning: the model was not logged to MLflow: {e}", file=sys.stderr)
            self.client.set_tag(self.run_id, "detboard.export_error", str(e)[:500])


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _first_sentence(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    cut = text.find(". ")
    return (text[:cut + 1] if 0 < cut < 300 else text[:300])

"""The run directory: the single source of truth for a training run, and ``Run``, the only code that
knows its layout (docs/architecture.md, "The run directory").

```
runs/<name>/config.json      TrainConfig (typed: Run.config())
            classes.json     the class list, index = class index (Run.classes())
            split.json       image ids per part (Run.split())
            events.jsonl     one record per line: step / epoch / status (Run.log(), Run.events())
            checkpoints/     last.pt (resume), best.pt (prediction) (Run.checkpoint())
            thresholds.json  per-class score thresholds picked on the Evaluate page (Run.thresholds())
            benchmark.json   the last speed measurement (Run.benchmark())
            eval/            cached predictions (detcore.evaluation)
            exports/         exported models (detcore.export), tensorboard/ (detcore.train.tracking)
            job.json         what the app asked its training process to do (Run.job_spec())
            job.log          that process's stdout and stderr (Run.job_log_path)
```

Everything read from a run folder is validated as it is read: a hand-edited or damaged file is a
``DataError`` naming the file, never an AttributeError in a page; a malformed line of ``events.jsonl``
is skipped and counted, so one bad line cannot take down every page that lists runs.

A run's status is derived from its events: the last ``status`` record, except that a run still marked
``running`` whose process is gone (a server restart, a kill -9) is ``interrupted``. Status records
carry ``pid``, ``host`` and ``thread`` for that check. A run whose config or classes cannot be read is
listed as ``unreadable`` with the reason.

Torch-free: the app lists runs and reads their files without importing torch.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from detcore import atomic
from detcore.catalog import model_info
from detcore.data.splits import load_split, save_split
from detcore.errors import CheckpointError, ConfigError, DataError, DetcoreError
from detcore.train.config import TrainConfig

CONFIG_FILE, CLASSES_FILE, SPLIT_FILE = "config.json", "classes.json", "split.json"
EVENTS_FILE, THRESHOLDS_FILE = "events.jsonl", "thresholds.json"
JOB_FILE, JOB_LOG_FILE = "job.json", "job.log"  # written by the app's job registry (detcore/train/jobs.py)
BENCHMARK_FILE = "benchmark.json"
CHECKPOINT_NAMES = ("best", "last")
DEFAULT_THRESHOLD = 0.5


class Status(StrEnum):
    """What a run is doing. A ``str``, so it compares with and serialises as the plain word."""

    NEW = "new"  # the folder exists, training has not written a status yet
    QUEUED = "queued"  # a job waiting for its device (never written to a file)
    STARTING = "starting"  # a job's state before its first record (never written to a file)
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # derived: 'running' but its process is gone
    UNREADABLE = "unreadable"  # derived: config/classes cannot be read
    CANCELLED = "cancelled"  # a queued job removed before it started (never written to a file)

    @property
    def finished(self) -> bool:
        """The run will not change by itself any more (it may be resumed)."""
        return self in FINISHED


FINISHED = frozenset({Status.COMPLETED, Status.STOPPED, Status.FAILED, Status.INTERRUPTED, Status.CANCELLED})
WRITTEN_STATUSES = frozenset({Status.RUNNING, Status.COMPLETED, Status.STOPPED, Status.FAILED, Status.INTERRUPTED})


# --- events.jsonl: validated, incremental reading ---------------------------------------------------

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _opt(check):
    return lambda v: v is None or check(v)


def _number_dict(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and (v[k] is None or _is_number(v[k])) for k in v)


# Per record type: required keys and the type every listed key must have when present.
_RECORD_SCHEMA: dict[str, tuple[set[str], dict[str, Any]]] = {
    "step": ({"global_step"}, {
        "epoch": _is_int, "iter": _is_int, "global_step": _is_int, "total_steps": _is_int,
        "loss": _opt(_is_number), "losses": _number_dict, "lr": _opt(_is_number),
        "images_per_s": _opt(_is_number), "eta_s": _opt(_is_number), "time": _is_number,
        "gpu_mem_mb": _is_number}),
    "epoch": ({"epoch"}, {
        "epoch": _is_int, "val_loss": _opt(_is_number), "train_loss": _opt(_is_number),
        "metrics": _opt(_number_dict), "time": _is_number}),
    "status": ({"status"}, {
        "status": lambda v: v in WRITTEN_STATUSES, "message": _opt(lambda v: isinstance(v, str)),
        "time": _is_number, "pid": _opt(_is_int), "host": _opt(lambda v: isinstance(v, str)),
        "thread": _opt(_is_int), "epoch": _opt(_is_int)}),
    # the crop classifier stage (detcore/train/classifier.py): started, crops, training, finished or skipped
    "classifier": ({"phase"}, {
        "phase": lambda v: v in CLASSIFIER_PHASES, "message": _opt(lambda v: isinstance(v, str)),
        "kept": lambda v: isinstance(v, bool), "detector": _number_dict, "rescored": _number_dict,
        "left_s": _opt(_is_number), "loss": _opt(_is_number), "budget_s": _is_number, "time": _is_number}),
}
CLASSIFIER_PHASES = ("started", "crops", "training", "finished", "skipped")


def valid_record(record: Any) -> bool:
    """A record of a known type with the keys and value types readers rely on. Records of other
    types (written by newer versions) are valid but ignored by the summaries."""
    if not isinstance(record, dict) or not isinstance(record.get("type"), str):
        return False
    schema = _RECORD_SCHEMA.get(record["type"])
    if schema is None:
        return True
    required, checks = schema
    return required <= record.keys() and all(check(record[k]) for k, check in checks.items() if k in record)


def classifier_line(r: dict) -> str:
    """One line for a ``classifier`` record of events.jsonl (the CLI's progress and the Train page)."""
    phase = r.get("phase")
    if phase in ("finished", "skipped"):
        text = r.get("message") or phase
        return text if text.startswith("crop classifier") else f"crop classifier {phase}: {text}"
    if phase == "started":
        return f"crop classifier: started, {_clock(r.get('budget_s') or 0)} to train and check it"
    if phase == "crops":
        return f"crop classifier: {r.get('crops', 0)} training crops cut (per class {r.get('per_class')})"
    loss = f", loss {r['loss']:.3f}" if r.get("loss") is not None else ""
    return f"crop classifier: training, epoch {r.get('epochs', 0):.1f}{loss}, {_clock(r.get('left_s') or 0)} left"


def classifier_note(record: dict | None) -> str | None:
    """A sentence for pages that show a run's predictions when its crop classifier was kept (from the
    stage's ``finished`` record); None otherwise."""
    if not record or record.get("phase") != "finished" or not record.get("kept"):
        return None
    before, after = (record.get("detector") or {}).get("AP50"), (record.get("rescored") or {}).get("AP50")
    change = f" (validation AP50 {before:.3f} → {after:.3f})" if before is not None and after is not None else ""
    return f"class scores re-scored by the run's crop classifier{change}"


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


class EventReader:
    """Reads ``events.jsonl`` incrementally: ``read_new()`` returns only the valid records appended since
    the previous call (a byte offset), so a poll costs the new bytes, not the whole file. A trailing line
    without its newline (a writer mid-append) is left for the next call and returned once complete.
    Invalid lines are skipped and counted in ``skipped``. A file that was replaced or rewritten (another
    inode, shorter than the offset, or no line break just before the offset) is read afresh and
    ``restarted`` turns True."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.offset = 0
        self.skipped = 0
        self.restarted = False
        self._inode: tuple[int, int] | None = None

    def read_new(self) -> list[dict]:
        self.restarted = False
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                inode = (st.st_dev, st.st_ino)
                if self.offset and (inode != self._inode or st.st_size < self.offset
                                    or os.pread(f.fileno(), 1, self.offset - 1) != b"\n"):
                    self.offset, self.skipped, self.restarted = 0, 0, True
                self._inode = inode
                f.seek(self.offset)
                data = f.read(st.st_size - self.offset)
        except FileNotFoundError:
            if self.offset:
                self.offset, self.skipped, self.restarted = 0, 0, True
            return []
        end = data.rfind(b"\n") + 1  # only whole lines; the torn tail waits for its newline
        out = []
        for raw in data[:end].splitlines():
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
            if valid_record(record):
                out.append(record)
            else:
                self.skipped += 1
        self.offset += end
        return out


MAX_STEPS_KEPT = 4000  # step records a RunLog keeps for charts (decimated evenly beyond this)


@dataclass
class RunLog:
    """What pages and listings need from ``events.jsonl``, kept up to date incrementally: every status
    and epoch record, the step records thinned to at most ``MAX_STEPS_KEPT`` (every k-th, k doubling as
    the run grows; the last step is always at hand), and how many lines were skipped as malformed."""

    path: Path
    statuses: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    last_step: dict | None = None
    classifier: dict | None = None  # the crop classifier stage's latest record
    step_stride: int = 1
    _steps_seen: int = 0
    _reader: EventReader | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def skipped(self) -> int:
        return self._reader.skipped if self._reader else 0

    def refresh(self) -> "RunLog":
        """Fold in the records appended since the last refresh."""
        with self._lock:
            if self._reader is None:
                self._reader = EventReader(self.path)
            new = self._reader.read_new()
            if self._reader.restarted:
                self._reset()
            for record in new:
                self._add(record)
        return self

    def _reset(self) -> None:
        self.statuses, self.epochs, self.steps = [], [], []
        self.last_step, self.step_stride, self._steps_seen = None, 1, 0
        self.classifier = None

    def _add(self, record: dict) -> None:
        kind = record["type"]
        if kind == "status":
            self.statuses.append(record)
        elif kind == "epoch":
            self.epochs.append(record)
        elif kind == "classifier":
            self.classifier = record
        elif kind == "step":
            self.last_step = record
            if self._steps_seen % self.step_stride == 0:
                self.steps.append(record)
            self._steps_seen += 1
            if len(self.steps) > MAX_STEPS_KEPT:
                self.steps = self.steps[::2]
                self.step_stride *= 2

    def status_record(self) -> dict | None:
        return self.statuses[-1] if self.statuses else None

    def metrics(self) -> list[dict]:
        """One row per validated epoch: ``{"epoch", "val_loss", **metrics}``."""
        return [{"epoch": r["epoch"], "val_loss": r.get("val_loss"), **(r.get("metrics") or {})}
                for r in self.epochs if r.get("metrics")]

    def best_metric(self, key: str = "AP") -> float | None:
        values = [float(m[key]) for m in self.metrics() if m.get(key) is not None and math.isfinite(m[key])]
        return max(values) if values else None


_LOGS: dict[str, RunLog] = {}
_LOGS_LOCK = threading.Lock()
_MAX_LOGS = 256


def shared_log(events_path: Path) -> RunLog:
    """The process-wide RunLog of one events file, refreshed: every page, poll and listing of this
    process shares it, so each render reads only what was appended since."""
    key = str(events_path.resolve())
    with _LOGS_LOCK:
        log = _LOGS.get(key)
        if log is None:
            if len(_LOGS) >= _MAX_LOGS:
                _LOGS.pop(next(iter(_LOGS)))
            log = _LOGS[key] = RunLog(Path(key))
    return log.refresh()


# --- thresholds.json ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Thresholds:
    """The run's saved score thresholds: one global value and optional per-class overrides."""

    global_threshold: float | None = None
    per_class: dict[str, float] = field(default_factory=dict)

    @property
    def saved(self) -> bool:
        return self.global_threshold is not None or bool(self.per_class)

    def global_value(self, default: float = DEFAULT_THRESHOLD) -> float:
        return self.global_threshold if self.global_threshold is not None else default

    def for_classes(self, classes: list[str], default: float = DEFAULT_THRESHOLD) -> list[float]:
        """One threshold per class: its override, else the global value, else ``default``."""
        fallback = self.global_value(default)
        return [float(self.per_class.get(c, fallback)) for c in classes]

    def to_json(self) -> dict:
        return {"global": self.global_threshold, "per_class": dict(self.per_class)}


def _threshold_value(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v) and 0.0 <= v <= 1.0


def parse_thresholds(obj: Any, path: str | Path) -> Thresholds:
    """The one validation rule for thresholds: ``{"global": t, "per_class": {class: t}}``, every t a
    number in [0, 1] (either key may be missing or null). Anything else is a DataError naming ``path``."""
    if not isinstance(obj, dict):
        raise DataError(path, "expected a JSON object {\"global\": t, \"per_class\": {class: t}}")
    unknown = sorted(set(obj) - {"global", "per_class"})
    if unknown:
        raise DataError(path, f"unknown key(s) {unknown}; expected \"global\" and \"per_class\"")
    global_t = obj.get("global")
    if global_t is not None and not _threshold_value(global_t):
        raise DataError(path, f"\"global\" must be a number in [0, 1] (got {global_t!r})")
    per_class = obj.get("per_class") or {}
    if not isinstance(per_class, dict):
        raise DataError(path, "\"per_class\" must be an object {class: threshold}")
    for name, v in per_class.items():
        if not _threshold_value(v):
            raise DataError(path, f"threshold of class {name!r} must be a number in [0, 1] (got {v!r})")
    return Thresholds(None if global_t is None else float(global_t), {str(k): float(v) for k, v in per_class.items()})


# --- resume -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResumePlan:
    """How ``train --resume`` continues a run: the config it trains with (saved settings, maybe a moved
    dataset and more epochs), the checkpoint it starts from (None: killed before the first one, so it
    restarts from the beginning with the same config and split) and the message the run records."""

    config: Any  # TrainConfig
    checkpoint: Path | None
    message: str


@dataclass(frozen=True)
class JobSpec:
    """What the app asks a training process to do (``job.json``): train ``config`` into the run, or
    resume it (``config`` then only carries a moved dataset, or is None) with ``extra_epochs``, on
    ``processes`` processes (more than one: torchrun)."""

    KEYS = frozenset({"config", "resume", "extra_epochs", "processes"})

    config: Any  # TrainConfig | None
    resume: bool = False
    extra_epochs: int = 0
    processes: int = 1

    def to_json(self) -> dict:
        return {"config": self.config.to_dict() if self.config is not None else None, "resume": self.resume,
                "extra_epochs": self.extra_epochs, "processes": self.processes}


# --- the run folder -----------------------------------------------------------------------------

class Run:
    """One run directory. Reads are validated and go to the files every time, except ``log()``, which
    reads ``events.jsonl`` incrementally through a process-wide cache."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def events_path(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def thresholds_path(self) -> Path:
        return self.path / THRESHOLDS_FILE

    def exists(self) -> bool:
        return (self.path / CONFIG_FILE).is_file()

    def _json(self, name: str) -> Any:
        path = self.path / name
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(path, "missing from the run directory") from None
        except (OSError, ValueError) as e:
            raise DataError(path, f"unreadable: {e}") from None

    # -- files written when the run starts
    def config(self):
        """The run's TrainConfig. A config.json that is not a valid config is a DataError naming it."""
        path = self.path / CONFIG_FILE
        raw = self._json(CONFIG_FILE)
        if not isinstance(raw, dict):
            raise DataError(path, "expected a JSON object of training settings")
        try:
            config = TrainConfig.from_dict(raw)
            model_info(config.model)  # a model this version does not know cannot be rebuilt
        except ConfigError as e:
            raise DataError(path, f"not a valid run config: {e.file}: {e.problem}") from None
        return config

    def classes(self) -> list[str]:
        path = self.path / CLASSES_FILE
        raw = self._json(CLASSES_FILE)
        if not isinstance(raw, list) or not raw or not all(isinstance(c, str) and c for c in raw):
            raise DataError(path, "expected a non-empty JSON list of class names")
        if len(set(raw)) != len(raw):
            raise DataError(path, "repeats a class name")
        return list(raw)

    def split(self):
        return load_split(self.path / SPLIT_FILE)

    def split_ids(self, part: str = "test") -> list[str]:
        """The image ids of one part of the run's split; an empty part is a DataError naming split.json."""
        ids = self.split().part(part)
        if not ids:
            raise DataError(self.path / SPLIT_FILE, f"the run's {part!r} split is empty")
        return ids

    def write_files(self, *, config: dict, classes: list[str], split) -> None:
        """The files a new run starts with (atomically, each). config.json is what makes a folder a run
        (``exists()``), so it is written last: a listing never sees a run without its classes or split."""
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        (self.path / "eval").mkdir(exist_ok=True)
        atomic.write_json(self.path / CLASSES_FILE, list(classes))
        save_split(split, self.path / SPLIT_FILE)
        atomic.write_json(self.path / CONFIG_FILE, config)

    def save_config(self, config) -> Path:
        return atomic.write_json(self.path / CONFIG_FILE, config.to_dict())

    # -- the app's job: what its training process was asked to do, and what it printed
    @property
    def job_log_path(self) -> Path:
        return self.path / JOB_LOG_FILE

    def job_spec(self) -> "JobSpec":
        """The job the app wrote for this run (``train --job RUN``); a bad job.json is a DataError naming it."""
        path = self.path / JOB_FILE
        raw = self._json(JOB_FILE)
        if not isinstance(raw, dict) or set(raw) != JobSpec.KEYS:
            raise DataError(path, f"expected a JSON object with the keys {sorted(JobSpec.KEYS)}")
        config = raw["config"]
        if config is not None and not isinstance(config, dict):
            raise DataError(path, "\"config\" must be an object of training settings or null")
        if not isinstance(raw["resume"], bool) or (config is None and not raw["resume"]):
            raise DataError(path, "\"resume\" must be true or false (and a new run needs a \"config\")")
        if not _is_int(raw["extra_epochs"]) or not _is_int(raw["processes"]) or raw["processes"] < 1:
            raise DataError(path, "\"extra_epochs\" must be a whole number and \"processes\" one of at least 1")
        try:
            parsed = TrainConfig.from_dict(config) if config is not None else None
        except ConfigError as e:
            raise DataError(path, f"not a valid job config: {e.file}: {e.problem}") from None
        return JobSpec(parsed, raw["resume"], raw["extra_epochs"], raw["processes"])

    def save_job_spec(self, spec: "JobSpec") -> Path:
        return atomic.write_json(self.path / JOB_FILE, spec.to_json())

    def remove_job_spec(self) -> None:
        (self.path / JOB_FILE).unlink(missing_ok=True)

    def record_status(self, status: Status, message: str) -> None:
        """Append a final status for a training process that ended without writing one (a rank that
        crashed, a process killed): the run then reads ``status`` with the reason, after a restart too."""
        if status not in FINISHED or status not in WRITTEN_STATUSES:
            raise ValueError(f"{status!r} is not a final status a run can record")
        atomic.append_jsonl(self.events_path, {"type": "status", "status": str(status), "message": message,
                                               "time": time.time(), "pid": os.getpid(),
                                               "host": socket.gethostname(), "epoch": self.epochs_done()})

    # -- checkpoints
    def checkpoint_path(self, which: str) -> Path:
        """Where checkpoint ``which`` (best | last) is written; may not exist yet."""
        if which not in CHECKPOINT_NAMES:
            raise ConfigError("checkpoint", f"{which!r} is not one of {', '.join(CHECKPOINT_NAMES)}")
        return self.path / "checkpoints" / f"{which}.pt"

    def checkpoint(self, which: str = "best") -> Path:
        """The checkpoint file to load: ``best`` (falling back to ``last`` while nothing was validated
        yet, e.g. eval_every=0 or stopped in the first epoch), ``last``, or a path to a .pt file."""
        if which not in CHECKPOINT_NAMES:
            path = Path(which)
            if not path.is_file():
                raise CheckpointError(path, "checkpoint file not found (use 'best', 'last' or a path to a .pt file)")
            return path
        path = self.checkpoint_path(which)
        if which == "best" and not path.is_file():
            path = self.checkpoint_path("last")
        if not path.is_file():
            raise CheckpointError(self.path / "checkpoints", f"no {which}.pt checkpoint in this run yet")
        return path

    def checkpoint_stamp(self) -> str:
        """Which checkpoint ``checkpoint("best")`` loads and its mtime ("none" without one): a new best.pt
        changes it, so caches of predictions keyed by it are invalidated."""
        try:
            path = self.checkpoint("best")
        except CheckpointError:
            return "none"
        return f"{path.name}@{path.stat().st_mtime_ns}"

    # -- thresholds.json
    def thresholds(self) -> Thresholds:
        """The saved thresholds (empty when the file does not exist); a bad file is a DataError naming it."""
        if not self.thresholds_path.is_file():
            return Thresholds()
        return parse_thresholds(self._json(THRESHOLDS_FILE), self.thresholds_path)

    def save_thresholds(self, *, global_threshold: float, per_class: dict[str, float]) -> Path:
        """Write thresholds.json atomically, after the same validation ``thresholds()`` applies."""
        values = {"global": round(float(global_threshold), 4),
                  "per_class": {str(name): round(float(v), 4) for name, v in per_class.items()}}
        parse_thresholds(values, self.thresholds_path)
        return atomic.write_json(self.thresholds_path, values)

    # -- benchmark.json
    def benchmark(self) -> dict | None:
        """The last speed measurement (``predict RUN --benchmark``, the Compare page's Measure button),
        or None; a file that is not a JSON object with a numeric ``p50_ms`` is a DataError naming it."""
        path = self.path / BENCHMARK_FILE
        if not path.is_file():
            return None
        raw = self._json(BENCHMARK_FILE)
        if not isinstance(raw, dict) or not _is_number(raw.get("p50_ms")):
            raise DataError(path, "expected a JSON object with the measured \"p50_ms\" and \"images_per_s\"")
        return raw

    def save_benchmark(self, record: dict) -> Path:
        """Write benchmark.json atomically (it replaces the previous measurement)."""
        if not _is_number(record.get("p50_ms")):
            raise DataError(self.path / BENCHMARK_FILE, "a benchmark record needs a numeric \"p50_ms\"")
        return atomic.write_json(self.path / BENCHMARK_FILE, record)

    # -- events and status
    def log(self) -> RunLog:
        """The run's events summary (process-wide, incremental)."""
        return shared_log(self.events_path)

    def events(self, type: str | None = None) -> list[dict]:
        """Every valid record of the file (read whole; for the CLI and tests — pages use ``log()``)."""
        records = EventReader(self.events_path).read_new()
        return [r for r in records if type is None or r["type"] == type]

    def status_record(self) -> dict | None:
        return self.log().status_record()

    def status(self) -> Status:
        """``new`` before training wrote a status; ``interrupted`` for a 'running' run whose writer is gone."""
        last = self.status_record()
        if last is None:
            return Status.NEW
        status = Status(last["status"])
        if status == Status.RUNNING and not _writer_alive(last):
            return Status.INTERRUPTED
        return status

    def message(self) -> str:
        last = self.status_record()
        if last is None:
            return ""
        if last["status"] == Status.RUNNING and self.status() == Status.INTERRUPTED:
            return f"the training process (pid {last.get('pid')}) ended without a final status"
        return last.get("message") or ""

    def epochs_done(self) -> int:
        return len({r["epoch"] for r in self.log().epochs})  # a redone epoch counts once

    def metrics(self) -> list[dict]:
        return self.log().metrics()

    def best_metric(self, key: str = "AP") -> float | None:
        return self.log().best_metric(key)

    # -- resume
    def resume_plan(self, extra_epochs: int = 0, *, data: str | None = None, data_format: str | None = None,
                    time_limit: float | None = None):
        """Check that this run can be resumed and say how: its saved config (``data`` replaces a moved
        dataset; ``extra_epochs`` more — or, negative, fewer — epochs), validated, and the checkpoint to
        start from.

        A time-limited run (``time_limit``: its epochs only shape the schedule) keeps its budget, which
        counts the whole run; ``time_limit`` sets a new total budget in minutes; ``extra_epochs`` without
        one lift the budget and count from the epochs done (epochs done + extra, no time limit)."""
        if not self.exists():
            raise ConfigError(self.path, "is not a run directory (no config.json), so there is nothing to resume")
        if not _is_int(extra_epochs):
            raise ConfigError("extra_epochs", f"must be a whole number (got {extra_epochs!r})")
        if time_limit is not None and not (_is_number(time_limit) and time_limit > 0):
            raise ConfigError("time_limit", f"must be a positive number of minutes (got {time_limit!r})")
        config = self.config()
        if data:
            config.data = str(data)
            config.data_format = data_format or "auto"
        if time_limit is not None:
            config.time_limit = float(time_limit)
        elif config.time_limit and extra_epochs:
            config.time_limit, config.epochs = None, self.epochs_done()
        config.epochs += extra_epochs
        if config.epochs < 1:
            raise ConfigError("epochs", f"the resumed run would have {config.epochs} epochs; it needs at least 1")
        config.validate()
        last = self.checkpoint_path("last")
        if last.is_file():
            return ResumePlan(config, last, "resumed from the last checkpoint")
        return ResumePlan(config, None, "resumed from the start (the run had no checkpoint yet)")


def _writer_alive(record: dict) -> bool:
    """Is the process (and, in this very process, the thread) that wrote a 'running' record alive?

    A background job in the app shares the server's pid, so the pid alone would keep a job whose
    thread died without a final status (disk full) reading 'running' until the server restarts.
    """
    pid, host, thread = record.get("pid"), record.get("host"), record.get("thread")
    if not _process_alive(pid, host):
        return False
    if thread is not None and pid == os.getpid() and host in (None, socket.gethostname()):
        return any(t.ident == thread and t.is_alive() for t in threading.enumerate())
    return True


def _process_alive(pid: int | None, host: str | None) -> bool:
    if pid is None:
        return False
    if host is not None and host != socket.gethostname():
        return True  # another machine's process: we cannot tell, so do not call it dead
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


# --- listing and creating runs --------------------------------------------------------------------

@dataclass(frozen=True)
class RunSummary:
    """One row of a runs listing: enough for the sidebar and the runs table, cheap to build."""

    name: str
    path: Path
    status: Status
    best_ap: float | None
    model: str | None = None
    problem: str = ""  # why the run is unreadable, or how many event lines were skipped


def list_runs(root: str | Path) -> list[Run]:
    """Runs under ``root`` (folders with a config.json), newest first. A folder (or link) that resolves
    outside ``root`` is not a run of this root and is left out."""
    root = Path(root)
    if not root.is_dir():
        return []
    real_root = root.resolve()
    runs = []
    for p in root.iterdir():
        try:
            if not (p / CONFIG_FILE).is_file():
                continue
            real = p.resolve()
            stamp = (p / CONFIG_FILE).stat().st_mtime
        except OSError:
            continue
        if real.parent != real_root:
            continue
        runs.append((stamp, Run(p)))
    return [run for _, run in sorted(runs, key=lambda item: item[0], reverse=True)]


def summarize(run: Run) -> RunSummary:
    """The listing row of ``run``; an unreadable run is a row saying why, never an exception."""
    try:
        model = run.config().model
        run.classes()
        log = run.log()
        status, best = run.status(), log.best_metric()
        problem = f"{log.skipped} malformed line(s) of {EVENTS_FILE} skipped" if log.skipped else ""
    except (DetcoreError, OSError) as e:
        return RunSummary(run.name, run.path, Status.UNREADABLE, None, None, str(e))
    return RunSummary(run.name, run.path, status, best, model, problem)


def run_summaries(root: str | Path) -> list[RunSummary]:
    return [summarize(run) for run in list_runs(root)]


def new_run_dir(root: str | Path, name: str | None = None) -> Path:
    """A fresh, not yet existing folder under ``root``: ``name`` (or a timestamp), suffixed -2, -3… if taken."""
    root = Path(root)
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") if name else time.strftime("%Y%m%d-%H%M%S")
    base = base or "run"
    candidate, n = root / base, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{base}-{n}"
    candidate.mkdir(parents=True)
    return candidate


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse to train a new run into a folder that already holds one (resume it instead)."""
    if (run_dir / EVENTS_FILE).exists() or (run_dir / CONFIG_FILE).exists():
        raise ConfigError(run_dir, "already holds a training run; use --resume to continue it or choose a new --out")

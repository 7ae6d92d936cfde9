"""Background training jobs for the app (DESIGN.md §4): one process-wide JobRegistry runs
``train(...)`` in daemon threads, at most one running job per device.

The worker thread never touches the UI. The trainer hands every record it writes to
``events.jsonl`` to a callback here, which folds it into an in-memory, lock-protected state;
pages read ``Job.snapshot()``, a copy, on every poll. Stop is cooperative: ``Job.stop()`` sets the
``threading.Event`` the trainer checks every iteration, and the trainer writes a checkpoint on the
way out. Any exception ends the job as ``failed`` with its message — never the server.

A registry created after a server restart adopts runs that another live process (``python -m
detcore train``) is still training, so the page shows them and the device is not double-booked.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections import deque
from pathlib import Path

from detcore.errors import ConfigError, DetcoreError
from detcore.train.events import Callback

RECENT_STEPS = 500  # step records kept in memory for the live chart (the file keeps them all)
FINISHED = ("completed", "stopped", "failed", "interrupted")


class JobRefused(DetcoreError):
    """A job cannot start now (another one holds the device)."""


def device_key(device: str) -> str:
    """The device a config will train on, as the registry books it ("cpu" or "cuda")."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if device.startswith("cuda") else device


class _Recorder(Callback):
    """Feeds the job's in-memory state from the exact records the trainer writes to disk."""

    def __init__(self, job: "Job"):
        self.job = job

    def on_record(self, t, record):
        self.job._apply(record)


class Job:
    _ids = itertools.count(1)

    def __init__(self, *, run_dir: Path, device: str, config=None, resume: bool = False, extra_epochs: int = 0,
                 external_pid: int | None = None):
        self.id = next(Job._ids)
        self.run_dir = Path(run_dir)
        self.device = device
        self.config = config
        self.resume, self.extra_epochs = resume, extra_epochs
        self.external_pid = external_pid  # set for a run adopted from another process
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = {
            "id": self.id, "run_dir": str(self.run_dir), "run": self.run_dir.name, "device": device,
            "status": "starting", "message": "", "epoch": None, "iter": None, "step": 0, "total_steps": None,
            "loss": None, "losses": {}, "lr": None, "images_per_s": None, "eta_s": None,
            "recent_steps": deque(maxlen=RECENT_STEPS), "epochs": [], "started": time.time(), "finished": None,
            "adopted": external_pid is not None, "stop_requested": False,
        }

    # --- what pages call --------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """A deep copy of the job's state, safe to read while the worker keeps training."""
        if self.external_pid is not None:
            self._refresh_from_run()
        with self._lock:
            snap = copy.deepcopy(self._state)
        snap["recent_steps"] = list(snap["recent_steps"])
        return snap

    @property
    def status(self) -> str:
        return self.snapshot()["status"]

    def is_running(self) -> bool:
        return self.status not in FINISHED

    def stop(self) -> None:
        """Ask the trainer to stop after the current iteration (it writes last.pt first)."""
        if self.external_pid is not None:
            raise JobRefused(self.run_dir, f"is being trained by another process (pid {self.external_pid}); "
                                           "stop it there (Ctrl-C)")
        self._stop.set()
        with self._lock:
            self._state["stop_requested"] = True

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the job to end; True if it has."""
        if self.external_pid is not None:
            deadline = None if timeout is None else time.monotonic() + timeout
            while self.is_running():
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                time.sleep(0.5)
            return True
        if not self._done.wait(timeout):
            return False
        if self._thread is not None:  # _done is set just before the thread returns
            self._thread.join(5.0)
        return True

    # --- the worker -----------------------------------------------------------------------------
    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._work, name=f"detboard-train-{self.run_dir.name}", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        from detcore.train.precise_bn import PreciseBatchNorm
        from detcore.train.trainer import train

        try:
            callbacks = [_Recorder(self), PreciseBatchNorm()]  # see precise_bn.py: from-scratch BN stats lag
            status = train(self.config, self.run_dir, stop_event=self._stop, callbacks=callbacks,
                           resume=self.resume, extra_epochs=self.extra_epochs)
            self._finish(status, None)
        except BaseException as e:  # noqa: BLE001 - a worker must never take the server down
            message = str(e) if isinstance(e, DetcoreError) else f"{type(e).__name__}: {e}"
            self._finish("failed", message)

    def _finish(self, status: str, message: str | None) -> None:
        with self._lock:
            self._state["status"] = status if status in FINISHED else "failed"
            if message is not None:
                self._state["message"] = message
            self._state["finished"] = time.time()
        self._done.set()

    def _apply(self, record: dict) -> None:
        kind = record.get("type")
        with self._lock:
            s = self._state
            if kind == "step":
                s.update({k: record.get(k) for k in ("epoch", "iter", "total_steps", "loss", "lr",
                                                     "images_per_s", "eta_s")})
                s["step"], s["losses"] = record.get("global_step", s["step"]), dict(record.get("losses") or {})
                s["recent_steps"].append(dict(record))
            elif kind == "epoch":
                s["epochs"].append(dict(record))
            elif kind == "status":
                # A final status is taken from train()'s return; the record carries the message.
                if record.get("status") == "running":
                    s["status"] = "running"
                s["message"] = record.get("message", s["message"])

    def _refresh_from_run(self) -> None:
        from detcore.train.runs import Run

        run = Run(self.run_dir)
        steps = run.events("step")
        with self._lock:
            s = self._state
            s["status"], s["message"] = run.status(), run.message()
            s["epochs"] = run.events("epoch")
            if steps:
                last = steps[-1]
                s.update({k: last.get(k) for k in ("epoch", "iter", "total_steps", "loss", "lr", "images_per_s",
                                                   "eta_s")})
                s["step"], s["losses"] = last.get("global_step", 0), dict(last.get("losses") or {})
                s["recent_steps"] = deque(steps[-RECENT_STEPS:], maxlen=RECENT_STEPS)


class JobRegistry:
    """All jobs of this process. Thread-safe; the app keeps exactly one (``st.cache_resource``)."""

    def __init__(self, runs_root: str | Path | None = None, *, adopt: bool = True):
        self._lock = threading.Lock()
        self._jobs: list[Job] = []
        self._runs_root = Path(runs_root) if runs_root is not None else None
        self._adopt_pending = adopt

    def start(self, config=None, run_dir: str | Path | None = None, *, resume: bool = False,
              extra_epochs: int = 0) -> Job:
        """Validate, then train in a daemon thread. Raises ConfigError (bad settings, before any
        thread or file) or JobRefused (the device is busy)."""
        config, run_dir = self._prepare(config, run_dir, resume=resume, extra_epochs=extra_epochs)
        device = device_key(config.device)
        with self._lock:
            busy = self._running_on(device)
            if busy is not None:
                raise JobRefused(busy.run_dir, f"is already training on {device}; stop it or wait until it ends "
                                               "before starting another job")
            if run_dir is None:
                from detcore.train.runs import new_run_dir

                run_dir = new_run_dir(self.runs_root(), _run_name(config))
            job = Job(run_dir=run_dir, device=device, config=config, resume=resume, extra_epochs=extra_epochs)
            self._jobs.append(job)
            job._start_thread()
        return job

    def active(self, device: str | None = None) -> Job | None:
        """The running job (on ``device``, if given), or None."""
        self._adopt_once()
        with self._lock:
            if device is not None:
                return self._running_on(device_key(device))
            return next((j for j in reversed(self._jobs) if j.is_running()), None)

    def jobs(self) -> list[Job]:
        self._adopt_once()
        with self._lock:
            return list(self._jobs)

    def job_for(self, run_dir: str | Path) -> Job | None:
        target = Path(run_dir).resolve()
        return next((j for j in reversed(self.jobs()) if j.run_dir.resolve() == target), None)

    def runs_root(self) -> Path:
        from detcore import paths

        return self._runs_root if self._runs_root is not None else paths.runs_root()

    def adopt_running(self) -> list[Job]:
        """Report runs under the runs root that another live process is training right now."""
        from detcore.train.runs import Run, list_runs

        adopted = []
        with self._lock:
            known = {j.run_dir.resolve() for j in self._jobs}
            for run in list_runs(self.runs_root()):
                if run.path.resolve() in known or run.status() != "running":
                    continue
                record = run.status_record() or {}
                job = Job(run_dir=run.path, device=device_key(run.config().get("device", "auto")),
                          external_pid=record.get("pid"))
                job._refresh_from_run()
                self._jobs.append(job)
                adopted.append(job)
        return adopted

    # --- internals ------------------------------------------------------------------------------
    def _adopt_once(self) -> None:
        if self._adopt_pending:
            self._adopt_pending = False
            try:
                self.adopt_running()
            except (DetcoreError, OSError):
                pass  # an unreadable run must not stop the page from showing the others

    def _running_on(self, device: str) -> Job | None:
        return next((j for j in self._jobs if j.device == device and j.is_running()), None)

    def _prepare(self, config, run_dir, *, resume: bool, extra_epochs: int):
        from detcore.train.config import TrainConfig
        from detcore.train.runs import Run

        self._adopt_once()
        if resume:
            if run_dir is None or not Run(run_dir).exists():
                raise ConfigError("resume", f"{run_dir}: not a run directory, nothing to resume")
            if extra_epochs < 0:
                raise ConfigError("extra_epochs", f"must be >= 0 (got {extra_epochs})")
            saved = TrainConfig.from_dict(Run(run_dir).config())
            if config is None:
                config = saved
            config.validate()
            return config, Path(run_dir)
        if config is None:
            raise ConfigError("config", "no training settings given")
        from detcore.train.trainer import check_fits_dataset

        check_fits_dataset(config)  # e.g. batch size larger than the training images: refused here
        if run_dir is not None:
            from detcore.train.runs import check_new_run_dir

            check_new_run_dir(Path(run_dir))
        return config, (Path(run_dir) if run_dir is not None else None)


def _run_name(config) -> str:
    stem = config.preset or config.model
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"

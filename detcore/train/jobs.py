"""Background training jobs for the app: one process-wide JobRegistry (kept by ``ui/registry.py``)
runs every job as a supervised child process — ``python -m detcore train --job RUN``, or torchrun for
more than one process (``detcore/train/supervise.py``) — at most one running job per device, and a
FIFO queue per device for the rest (persisted in ``RUNS/queue.json``, ``detcore/train/jobqueue.py``).

A job's thread starts its process and follows the run's ``events.jsonl`` (``EventReader``: only the
bytes appended since the last look) into an in-memory, lock-protected state; pages read
``Job.snapshot()``, a copy, on every poll. The thread never touches the UI, and never trains: the
server's process keeps its cores and its GIL for the pages (benchmarks/bench_ui_under_training.py).
Stop sends SIGTERM to the process group and the train command stops cooperatively (last.pt written,
status ``stopped``); ``stop(force=True)`` kills the group. A process that ends without a final status
(a rank crashed, it was killed) ends the job ``failed`` with the cause found in its output
(``job.log``), recorded in the run too. When a job ends, the next queued job of its device starts.

A registry created after a server restart reads the queue file: it keeps following the processes the
previous server started (and can stop them), starts the queued jobs in order, and adopts runs that
another live process (``python -m detcore train``) is training, so the device is not double-booked.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import signal
import threading
import time
from collections import deque
from pathlib import Path

from detcore import paths
from detcore.errors import ConfigError, DetcoreError
from detcore.train import jobqueue, supervise
from detcore.train.runs import FINISHED, EventReader, JobSpec, Run, Status, check_new_run_dir, list_runs, new_run_dir

RECENT_STEPS = 500  # step records kept in memory for the live chart (the file keeps them all)
POLL_S = 0.5  # how often a job's thread looks at its process and its events file
LIVE = frozenset({Status.STARTING, Status.RUNNING})
log = logging.getLogger(__name__)


class JobRefused(DetcoreError):
    """A job cannot be started or stopped as asked (e.g. another process trains that run)."""


def device_key(device: str) -> str:
    """The device a config will train on, as the registry books it ("cpu" or "cuda")."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if device.startswith("cuda") else device


def gpu_count() -> int:
    """GPUs this machine offers to training processes (``torch.cuda.device_count()``)."""
    import torch  # here only: the registry stays torch-free until a job needs it

    return torch.cuda.device_count()


class Job:
    """One training job: queued, running in a child process (ours, or one a previous server started),
    or a run another process trains (``external_pid``: shown, never stopped from here)."""

    _ids = itertools.count(1)

    def __init__(self, registry: "JobRegistry", *, run_dir: Path, device: str, spec: JobSpec | None = None,
                 total_epochs: int | None = None, status: Status = Status.STARTING, by: str = "",
                 external_pid: int | None = None, process: supervise.TrainingProcess | None = None):
        self.id = next(Job._ids)
        self.run_dir = Path(run_dir)
        self.device = device
        self.spec = spec
        self.processes = spec.processes if spec is not None else 1
        self.config = spec.config if spec is not None else None
        self.resume, self.extra_epochs = (spec.resume, spec.extra_epochs) if spec is not None else (False, 0)
        self.external_pid = external_pid  # a run another process trains
        self.process = process  # set once started (or, after a restart, the process found running)
        self.by = by
        self._registry = registry
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_status: dict | None = None
        self._log_offset = 0
        self._killed = False
        self._stop_requested = False
        self._state = {
            "id": self.id, "run_dir": str(self.run_dir), "run": self.run_dir.name, "device": device,
            "processes": self.processes, "status": status, "message": "", "epoch": None, "iter": None, "step": 0,
            "total_steps": None, "total_epochs": total_epochs, "loss": None, "losses": {}, "lr": None,
            "images_per_s": None, "eta_s": None, "recent_steps": deque(maxlen=RECENT_STEPS), "epochs": [],
            "started": None if status == Status.QUEUED else time.time(), "queued": time.time(), "finished": None,
            "adopted": external_pid is not None or process is not None, "stop_requested": False,
            "queue_position": None, "by": by,
        }

    # --- what pages call --------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """A deep copy of the job's state, safe to read while its thread keeps following the run."""
        position = self._registry.position(self)
        with self._lock:
            snap = copy.deepcopy(self._state)
        snap["recent_steps"] = list(snap["recent_steps"])
        snap["queue_position"] = position
        return snap

    @property
    def status(self) -> Status:
        with self._lock:
            return Status(self._state["status"])

    def is_running(self) -> bool:
        """Starting or training (a queued job is not running yet)."""
        return self.status in LIVE

    @property
    def stoppable(self) -> bool:
        return self.external_pid is None

    def stop(self, *, force: bool = False) -> None:
        """Queued: cancel it. Running: SIGTERM to its processes — they finish the current iteration, write
        last.pt and end ``stopped``. ``force``: kill them now (the run keeps its last epoch's checkpoint)."""
        if self.external_pid is not None:
            raise JobRefused(self.run_dir, f"is being trained by another process (pid {self.external_pid}); "
                                           "stop it there (Ctrl-C)")
        if self._registry._cancel(self):
            return
        with self._lock:
            if self._state["status"] in FINISHED:
                return
            self._stop_requested = self._state["stop_requested"] = True
            process = self.process
            if force:
                self._killed = True
        if process is not None:
            process.kill() if force else process.terminate()
        self._wake.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the job to end; True if it has."""
        if not self._done.wait(timeout):
            return False
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)  # _done is set just before the thread returns
        return True

    # --- the thread -------------------------------------------------------------------------------
    def _start_thread(self, target) -> None:
        self._thread = threading.Thread(target=target, name=f"detboard-job-{self.run_dir.name}", daemon=True)
        self._thread.start()

    def _launch(self) -> None:
        """Start the training process in this job's thread (the registry calls it, holding its lock)."""
        with self._lock:
            self._state.update(status=Status.STARTING, started=time.time())
        self._start_thread(self._supervise)

    def _supervise(self) -> None:
        try:
            run = Run(self.run_dir)
            try:
                self._log_offset = run.job_log_path.stat().st_size  # a resumed run appends to its log
            except FileNotFoundError:
                self._log_offset = 0
            reader = EventReader(run.events_path)
            self._read(reader)  # a resumed run's history; its old statuses are not this job's
            with self._lock:
                self._last_status = None
                self._state.update(status=Status.STARTING, message="")
            self.process = supervise.TrainingProcess.launch(self.run_dir, self.processes, run.job_log_path,
                                                            cwd=os.getcwd())
            self._registry._persist()
            with self._lock:
                stop_early = self._stop_requested
            if stop_early:
                self.process.terminate()
            self._follow(self.process.alive, reader)
            self._conclude()
        except BaseException as e:  # noqa: BLE001 - a job must never take the server down
            self._finish(Status.FAILED, str(e) if isinstance(e, DetcoreError) else f"{type(e).__name__}: {e}")
        finally:
            self._registry._ended(self)

    def _follow_adopted(self) -> None:
        """After a restart: follow a process (ours before, or another's) until it ends."""
        try:
            if self.process is not None:
                self._follow(self.process.alive)
                self._conclude()
            else:
                run = Run(self.run_dir)
                self._follow(lambda: run.status() == Status.RUNNING)
                self._finish(run.status(), run.message())
        except BaseException as e:  # noqa: BLE001
            self._finish(Status.FAILED, f"{type(e).__name__}: {e}")
        finally:
            self._registry._ended(self)

    def _follow(self, alive, reader: EventReader | None = None) -> None:
        reader = reader if reader is not None else EventReader(Run(self.run_dir).events_path)
        while True:
            running = alive()
            self._read(reader)
            if not running:
                break
            self._wake.wait(POLL_S)
            self._wake.clear()
        self._read(reader)

    def _read(self, reader: EventReader) -> None:
        for record in reader.read_new():
            self._apply(record)

    def _conclude(self) -> None:
        """The process has ended: the job's final status, from the run's last status record, or — when
        the process wrote none (a rank crashed, it was killed) — from how it ended and what it printed."""
        run = Run(self.run_dir)
        returncode = self.process.returncode() if self.process is not None else None
        tail = supervise.log_tail(run.job_log_path, start=self._log_offset)
        last = self._last_status
        final = Status(last["status"]) if last is not None and last["status"] != Status.RUNNING else None
        if final is not None and final != Status.FAILED:
            self._finish(final, last.get("message") or "")
            return
        if final == Status.FAILED:
            # Rank 0 wrote the record; with several processes another rank may hold the cause
            # (rank 0 then only saw its peer vanish).
            cause = supervise.cli_error(tail) if self.processes > 1 else None
            if cause and cause != last.get("message"):
                _record(run, Status.FAILED, cause)
            self._finish(Status.FAILED, cause or last.get("message") or supervise.failure_message(tail, returncode))
            return
        with self._lock:
            killed, stop_requested = self._killed, self._stop_requested
        if killed:
            status, message = Status.INTERRUPTED, ("killed on request; resume it from its last checkpoint "
                                                   f"(epoch {run.epochs_done()})")
        elif stop_requested and returncode == -signal.SIGTERM:  # stopped before its handler was installed
            status, message = Status.STOPPED, "stopped by request before training began"
        else:
            status, message = Status.FAILED, supervise.failure_message(tail, returncode)
        if run.exists():
            _record(run, status, message)
        self._finish(status, message)

    def _finish(self, status: str, message: str | None) -> None:
        with self._lock:
            self._state["status"] = Status(status) if status in FINISHED else Status.FAILED
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
                self._last_status = record
                # The final status is decided when the process has ended (_conclude).
                if record.get("status") == Status.RUNNING:
                    s["status"] = Status.RUNNING
                s["message"] = record.get("message", s["message"])


class JobRegistry:
    """All jobs of this process. Thread-safe; the app keeps exactly one (``st.cache_resource``)."""

    def __init__(self, runs_root: str | Path | None = None, *, adopt: bool = True):
        self._lock = threading.RLock()
        self._jobs: list[Job] = []
        self._runs_root = Path(runs_root) if runs_root is not None else None
        self._load_pending = adopt

    def start(self, config=None, run_dir: str | Path | None = None, *, resume: bool = False,
              extra_epochs: int = 0, processes: int = 1, by: str = "") -> Job:
        """Validate, then start the job in a child process — or queue it behind the jobs already on its
        device (the Job's status is then ``queued``). Raises ConfigError (bad settings, before any process
        or file) or JobRefused (that run is already queued or training)."""
        plan_config, run_dir = self._prepare(config, run_dir, resume=resume, extra_epochs=extra_epochs)
        device = device_key(plan_config.device)
        _check_processes(processes, device)
        spec = JobSpec(config, resume, extra_epochs, processes)
        with self._lock:
            if run_dir is not None:
                taken = self._job_for(Path(run_dir))
                if taken is not None:
                    raise JobRefused(run_dir, f"already has a {taken.status} job; wait for it or stop it first")
            else:
                run_dir = new_run_dir(self.runs_root(), _run_name(plan_config))
            Run(run_dir).save_job_spec(spec)
            busy = self._running_on(device) is not None or self.queued(device)
            job = Job(self, run_dir=Path(run_dir), device=device, spec=spec, total_epochs=_planned_epochs(plan_config),
                      status=Status.QUEUED if busy else Status.STARTING, by=by)
            self._jobs.append(job)
            if not busy:
                job._launch()
            self._persist()
        return job

    def active(self, device: str | None = None) -> Job | None:
        """The running job (on ``device``, if given), or None."""
        self._load_once()
        with self._lock:
            if device is not None:
                return self._running_on(device_key(device))
            return next((j for j in reversed(self._jobs) if j.is_running()), None)

    def running(self) -> list[Job]:
        """Every running job (one per device at most), oldest first."""
        self._load_once()
        with self._lock:
            return [j for j in self._jobs if j.is_running()]

    def queued(self, device: str | None = None) -> list[Job]:
        """The jobs waiting for a device, in the order they will start (FIFO per device)."""
        self._load_once()
        with self._lock:
            return [j for j in self._jobs if j.status == Status.QUEUED and (device is None or j.device == device)]

    def position(self, job: Job) -> int | None:
        """1 for the next job to start on its device, 2 after it ...; None when not queued."""
        with self._lock:
            waiting = [j for j in self._jobs if j.device == job.device and j.status == Status.QUEUED]
        return waiting.index(job) + 1 if job in waiting else None

    def jobs(self) -> list[Job]:
        self._load_once()
        with self._lock:
            return list(self._jobs)

    def runs_root(self) -> Path:
        return self._runs_root if self._runs_root is not None else paths.runs_root()

    def adopt_running(self) -> list[Job]:
        """Report runs under the runs root that another live process is training right now."""
        adopted = []
        with self._lock:
            known = {j.run_dir.resolve() for j in self._jobs}
            for run in list_runs(self.runs_root()):
                try:
                    if run.path.resolve() in known or run.status() != Status.RUNNING:
                        continue
                    device = device_key(run.config().device)
                except DetcoreError:
                    continue  # an unreadable run is listed as such; it cannot be adopted
                record = run.status_record() or {}
                job = Job(self, run_dir=run.path, device=device, status=Status.RUNNING,
                          external_pid=record.get("pid"))
                self._catch_up(job)
                self._jobs.append(job)
                job._start_thread(job._follow_adopted)
                adopted.append(job)
        return adopted

    # --- internals ------------------------------------------------------------------------------
    def _load_once(self) -> None:
        with self._lock:
            if not self._load_pending:
                return
            self._load_pending = False
            try:
                self._restore(jobqueue.load(self.runs_root()))
                self.adopt_running()
            except (DetcoreError, OSError) as e:
                log.warning("restoring the job list failed: %s", e)  # the pages still show the runs
            self._dispatch()

    def _restore(self, entries: list[jobqueue.QueueEntry]) -> None:
        """A restarted server's view of the saved job list: live processes are followed, queued jobs
        wait in their saved order; everything else is dropped (its run says how it ended)."""
        for entry in entries:
            run = Run(entry.run_dir)
            try:
                spec = run.job_spec()
                saved = run.config() if spec.resume else spec.config
                total = _planned_epochs(saved)
                if total is not None and spec.resume:
                    total += spec.extra_epochs
            except DetcoreError as e:
                log.warning("dropping the saved job of %s: %s", entry.run_dir, e)
                continue
            if entry.state == jobqueue.STARTED:
                if entry.pid is None or not supervise.is_training_group(entry.pid, entry.pgid):
                    continue
                process = supervise.TrainingProcess(entry.pid, entry.pgid)
                job = Job(self, run_dir=run.path, device=entry.device, spec=spec, total_epochs=total,
                          status=Status.RUNNING, by=entry.by, process=process)
                self._catch_up(job)
                self._jobs.append(job)
                job._start_thread(job._follow_adopted)
            else:
                job = Job(self, run_dir=run.path, device=entry.device, spec=spec, total_epochs=total,
                          status=Status.QUEUED, by=entry.by)
                job._state["queued"] = entry.queued
                self._jobs.append(job)

    @staticmethod
    def _catch_up(job: Job) -> None:
        """Read the run's events so far, so the first snapshot of an adopted job is current."""
        reader = EventReader(Run(job.run_dir).events_path)
        job._read(reader)
        with job._lock:
            job._state["status"] = Status.RUNNING
            if job._state["total_epochs"] is None:
                try:
                    job._state["total_epochs"] = _planned_epochs(Run(job.run_dir).config())
                except DetcoreError:
                    pass

    def _running_on(self, device: str) -> Job | None:
        return next((j for j in self._jobs if j.device == device and j.is_running()), None)

    def _job_for(self, run_dir: Path) -> Job | None:
        target = run_dir.resolve()
        return next((j for j in self._jobs if j.run_dir.resolve() == target
                     and (j.is_running() or j.status == Status.QUEUED)), None)

    def _cancel(self, job: Job) -> bool:
        """Take a queued job off the queue (True), or say it is not queued (False)."""
        with self._lock:
            if job.status != Status.QUEUED:
                return False
            job._finish(Status.CANCELLED, "cancelled before it started")
            run = Run(job.run_dir)
            if not run.exists():  # a new run that never started: leave no empty folder behind
                run.remove_job_spec()
                try:
                    job.run_dir.rmdir()
                except OSError:
                    pass
            self._persist()
        return True

    def _ended(self, job: Job) -> None:
        with self._lock:
            self._dispatch()
            self._persist()

    def _dispatch(self) -> None:
        """Start the first queued job of every device that is free."""
        with self._lock:
            started = False
            for job in [j for j in self._jobs if j.status == Status.QUEUED]:
                if self._running_on(job.device) is None:
                    job._launch()
                    started = True
            if started:
                self._persist()

    def _persist(self) -> None:
        """Write the queue and the running processes this registry supervises to RUNS/queue.json."""
        with self._lock:
            entries = []
            for j in self._jobs:
                if j.external_pid is not None:
                    continue
                status = j.status
                if status == Status.QUEUED:
                    entries.append(jobqueue.QueueEntry(str(j.run_dir), j.device, j.processes, jobqueue.QUEUED,
                                                       queued=j._state["queued"], by=j.by))
                elif status in LIVE:
                    process = j.process
                    entries.append(jobqueue.QueueEntry(
                        str(j.run_dir), j.device, j.processes, jobqueue.STARTED,
                        pid=process.pid if process else None, pgid=process.pgid if process else None,
                        queued=j._state["queued"], started=j._state["started"], by=j.by))
            try:
                jobqueue.save(self.runs_root(), entries)
            except OSError as e:
                log.warning("could not save the job list: %s", e)

    def _prepare(self, config, run_dir, *, resume: bool, extra_epochs: int):
        """Check the job before anything is written; returns the config it will train with and the run dir."""
        self._load_once()
        if resume:
            if run_dir is None:
                raise ConfigError("resume", "name the run directory to resume")
            plan = Run(run_dir).resume_plan(extra_epochs, data=config.data if config is not None else None,
                                            data_format=config.data_format if config is not None else None)
            return plan.config, Path(run_dir)
        if config is None:
            raise ConfigError("config", "no training settings given")
        from detcore.train.trainer import check_fits_dataset  # torch: reads the data, sizes the split

        check_fits_dataset(config)  # e.g. batch size larger than the training images: refused here
        if run_dir is not None:
            check_new_run_dir(Path(run_dir))
        return config, (Path(run_dir) if run_dir is not None else None)


def _record(run: Run, status: Status, message: str) -> None:
    """The job's final status in the run too; a disk that refuses it must not hide the cause."""
    try:
        run.record_status(status, message)
    except OSError as e:
        log.warning("%s: could not record %s (%s): %s", run.events_path, status, e, message)


def _check_processes(processes, device: str) -> None:
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        raise ConfigError("processes", f"must be a whole number of at least 1 (got {processes!r})")
    if device == "cuda" and processes > 1:
        available = gpu_count()
        if processes > available:
            raise ConfigError("processes", f"{processes} GPU processes asked for, but this machine has {available} GPU(s)")


def _planned_epochs(config) -> int | None:
    """The epochs a run will train, or None under a time limit (the budget sets its length)."""
    return None if config.time_limit else config.epochs


def _run_name(config) -> str:
    stem = config.preset or config.model
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"

"""The run directory (DESIGN.md §2): the single source of truth for a training run.

```
runs/<name>/config.json  classes.json  split.json  events.jsonl  checkpoints/{last,best}.pt
            eval/  thresholds.json
```
A run's status is derived from its events: the last ``status`` record, except that a run still
marked ``running`` whose process is gone (a server restart, a kill -9) is reported as ``interrupted``.
Status records carry ``pid`` and ``host`` for that check.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from pathlib import Path

from detcore import atomic
from detcore.errors import CheckpointError, ConfigError, DataError

RUN_FILES = ("config.json", "classes.json", "split.json", "events.jsonl")


class Run:
    """Read-only view of one run directory; every call reads the files afresh."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        return (self.path / "config.json").is_file()

    def _json(self, name: str):
        path = self.path / name
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(path, "missing from the run directory") from None
        except (OSError, ValueError) as e:
            raise DataError(path, f"unreadable: {e}") from None

    def config(self) -> dict:
        return self._json("config.json")

    def classes(self) -> list[str]:
        return list(self._json("classes.json"))

    def split(self):
        from detcore.data.splits import load_split

        return load_split(self.path / "split.json")

    def events(self, type: str | None = None) -> list[dict]:
        records = atomic.read_jsonl(self.path / "events.jsonl")
        return [r for r in records if type is None or r.get("type") == type]

    def status_record(self) -> dict | None:
        statuses = self.events("status")
        return statuses[-1] if statuses else None

    def status(self) -> str:
        """``running|completed|stopped|failed|interrupted``, or ``new`` before training started."""
        last = self.status_record()
        if last is None:
            return "new"
        if last["status"] == "running" and not _writer_alive(last):
            return "interrupted"
        return last["status"]

    def message(self) -> str:
        last = self.status_record()
        if last is None:
            return ""
        if self.status() == "interrupted" and last["status"] == "running":
            return f"the training process (pid {last.get('pid')}) ended without a final status"
        return last.get("message", "")

    def epochs_done(self) -> int:
        return len({r["epoch"] for r in self.events("epoch")})  # a redone epoch counts once

    def metrics(self) -> list[dict]:
        """One row per validated epoch: ``{"epoch", "val_loss", **metrics}``."""
        return [{"epoch": r["epoch"], "val_loss": r.get("val_loss"), **(r.get("metrics") or {})}
                for r in self.events("epoch") if r.get("metrics")]

    def best_metric(self, key: str = "AP") -> float | None:
        values = [m[key] for m in self.metrics() if m.get(key) is not None]
        return max(values) if values else None

    def checkpoint(self, which: str = "best") -> Path:
        if which not in ("best", "last"):
            raise ConfigError("checkpoint", f"{which!r} is not best or last")
        path = self.path / "checkpoints" / f"{which}.pt"
        if not path.is_file():
            raise CheckpointError(path, f"the run has no {which} checkpoint yet")
        return path

    def summary(self) -> dict:
        cfg = self.config() if self.exists() else {}
        return {"name": self.name, "path": str(self.path), "status": self.status(), "model": cfg.get("model"),
                "epochs": cfg.get("epochs"), "epochs_done": self.epochs_done(), "best_AP": self.best_metric(),
                "message": self.message()}


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
    return True


def list_runs(root: str | Path) -> list[Run]:
    """Runs under ``root`` (folders with a config.json), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir() if (p / "config.json").is_file()]
    return sorted(runs, key=lambda r: (r.path / "config.json").stat().st_mtime, reverse=True)


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
    if (run_dir / "events.jsonl").exists() or (run_dir / "config.json").exists():
        raise ConfigError(run_dir, "already holds a training run; use --resume to continue it or choose a new --out")


def write_run_files(run_dir: Path, *, config: dict, classes: list[str], split) -> None:
    from detcore.data.splits import save_split

    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "eval").mkdir(exist_ok=True)
    atomic.write_json(run_dir / "config.json", config)
    atomic.write_json(run_dir / "classes.json", list(classes))
    save_split(split, run_dir / "split.json")

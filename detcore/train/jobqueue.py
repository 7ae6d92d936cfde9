"""The app's job list on disk, ``RUNS/queue.json``: the jobs waiting for a device (FIFO per device, in
file order) and the training processes the app started, so a restarted server finds both — it starts
the waiting jobs in order and keeps following (and can stop) the processes still training.

Written whole and atomically (``detcore.atomic``) by the one ``JobRegistry`` of the server process on
every change; read once, when a registry starts. Torch-free.

```
{"version": 1, "jobs": [{"run_dir": "/abs/runs/x", "device": "cpu", "processes": 2,
                         "state": "queued" | "started", "pid": null | int, "pgid": null | int,
                         "queued": unix time, "started": null | unix time, "by": "who asked"}]}
```
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from detcore import atomic

QUEUE_FILE = "queue.json"
VERSION = 1
QUEUED, STARTED = "queued", "started"  # where a job of the list is (not a run status)
log = logging.getLogger(__name__)


@dataclass
class QueueEntry:
    run_dir: str
    device: str
    processes: int = 1
    state: str = QUEUED
    pid: int | None = None
    pgid: int | None = None
    queued: float = 0.0
    started: float | None = None
    by: str = ""

    @classmethod
    def from_json(cls, raw) -> "QueueEntry | None":
        """An entry from the file, or None when it is not one (skipped, with a warning)."""
        try:
            entry = cls(**raw)
        except TypeError:
            return None
        ints_ok = all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in (entry.pid, entry.pgid))
        if (not isinstance(entry.run_dir, str) or not entry.run_dir or entry.device not in ("cpu", "cuda")
                or not isinstance(entry.processes, int) or isinstance(entry.processes, bool) or entry.processes < 1
                or entry.state not in (QUEUED, STARTED) or not ints_ok
                or not isinstance(entry.queued, (int, float)) or not isinstance(entry.by, str)):
            return None
        return entry


def queue_path(runs_root: str | Path) -> Path:
    return Path(runs_root) / QUEUE_FILE


def load(runs_root: str | Path) -> list[QueueEntry]:
    """The saved list. A file that is not a job list is moved aside (``queue.json.unreadable-<time>``,
    logged) rather than trusted or silently overwritten; entries that are not jobs are skipped."""
    path = queue_path(runs_root)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        _set_aside(path, f"unreadable ({e})")
        return []
    if not isinstance(raw, dict) or raw.get("version") != VERSION or not isinstance(raw.get("jobs"), list):
        _set_aside(path, f"not a version-{VERSION} job list")
        return []
    entries = [QueueEntry.from_json(item) if isinstance(item, dict) else None for item in raw["jobs"]]
    if None in entries:
        log.warning("%s: %d entr(y/ies) that are not jobs skipped", path, entries.count(None))
    return [e for e in entries if e is not None]


def save(runs_root: str | Path, entries: list[QueueEntry]) -> Path:
    return atomic.write_json(queue_path(runs_root), {"version": VERSION, "jobs": [asdict(e) for e in entries]})


def _set_aside(path: Path, why: str) -> None:
    aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        path.replace(aside)
    except OSError:
        aside = path
    log.warning("%s: %s; kept as %s, starting with an empty job list", path, why, aside)

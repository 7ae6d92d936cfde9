"""Crash-safe file writes: a reader never sees a half-written file.

Every run file goes through here: write to a temp file in the same folder, fsync,
then ``os.replace`` — atomic on POSIX. ``append_jsonl`` writes one whole line per call and fsyncs,
so a SIGKILL leaves at most a missing line, never a torn one that a reader must skip.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def _default_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_file_mode()


def remove_stale_temp_files(folder: str | Path) -> int:
    """Delete temp files a killed writer left in ``folder`` (``.<name>.*.tmp``); returns how many.

    Call it only where no other writer can be active (a run folder being resumed)."""
    n = 0
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            tmp.unlink()
            n += 1
        except OSError:
            pass
    return n


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_with(path: str | Path, writer: Callable[[io.BufferedWriter], None]) -> Path:
    """Call ``writer(fileobj)`` on a temp file beside ``path`` and atomically rename it into place.

    On any failure (disk full, read-only folder, writer raising) the temp file is removed and the
    previous ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; run files are meant to be read by others too
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, tmp):
            # "No space left on device" alone does not say which file failed; the caller's message
            # (a failed run's status, the CLI's last line) should. Same errno, so the same subclass.
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    _fsync_dir(path.parent)
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    return write_with(path, lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def torch_save(path: str | Path, obj: Any) -> Path:
    import torch

    return write_with(path, lambda f: torch.save(obj, f))


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one JSON object as one complete line (single write + fsync).

    If a previous writer was killed mid-line, the torn fragment is first closed with a newline so
    the new record starts on a line of its own instead of being glued to the garbage.
    """
    line = (json.dumps(record, allow_nan=False) + "\n").encode("utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str | Path) -> list[dict]:
    """Read every complete JSON line; torn lines (no newline, bad JSON) are skipped."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            if not raw.strip():
                continue
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
    return out

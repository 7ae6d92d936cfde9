"""Where things live: runs under ./runs and datasets under ./data, overridable by DETBOARD_RUNS / DETBOARD_DATA."""

from __future__ import annotations

import os
from pathlib import Path

from detcore.errors import DataError


def data_root() -> Path:
    return Path(os.environ.get("DETBOARD_DATA", "data")).resolve()


def runs_root() -> Path:
    return Path(os.environ.get("DETBOARD_RUNS", "runs")).resolve()


def demo_dataset_dir() -> Path:
    return data_root() / "demo"


def uploads_root() -> Path:
    """Where the app extracts dropped archives: inside DATA, so it is a data root too."""
    return data_root() / "uploads"


def confine_to_data_roots(user_path: str | Path, roots: list[Path] | None = None) -> Path:
    """Resolve a dataset path typed in the app and refuse anything outside the data roots.

    Relative paths are taken relative to DATA. ``..`` segments, absolute paths elsewhere and
    symlinks that lead out are refused (after full resolution), so a shared deployment does not
    expose the server's files. Raises ``DataError`` naming the path.
    """
    roots = [r.resolve() for r in (roots or [data_root()])]
    raw = str(user_path).strip()
    if not raw:
        raise DataError("<dataset path>", "empty path")
    if "\x00" in raw:
        raise DataError(raw, "path contains a NUL byte")
    p = Path(raw).expanduser()
    candidate = (p if p.is_absolute() else roots[0] / p).resolve()
    for root in roots:
        if candidate == root or root in candidate.parents:
            return candidate
    shown = ", ".join(str(r) for r in roots)
    raise DataError(raw, f"outside the allowed data folders ({shown}); put datasets under DATA or upload a .zip")

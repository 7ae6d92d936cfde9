"""Cached readers the pages share. Each one wraps a detcore call; the cache keys carry a file stamp
(mtime) so an edited dataset or a new checkpoint is picked up without restarting the app."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from detcore.structures import ParsedDataset


def folder_stamp(path: str | Path) -> float:
    """Latest mtime among a folder and its direct children — changes when files are added or replaced."""
    path = Path(path)
    if not path.exists():
        return 0.0
    stamps = [path.stat().st_mtime]
    if path.is_dir():
        stamps += [child.stat().st_mtime for child in path.iterdir()]
    return max(stamps)


@st.cache_resource(show_spinner="Reading the dataset…", max_entries=8)
def _parsed_dataset(path: str, fmt: str, stamp: float) -> ParsedDataset:
    # cache_resource, not cache_data: a ParsedDataset is read-only for the pages, so no per-call copy.
    from detcore.data.detect import load_dataset

    return load_dataset(path, format=fmt, verify_images=True)


def load_parsed_dataset(path: str | Path, fmt: str = "auto") -> ParsedDataset:
    """The dataset at ``path`` (folder or .zip), image headers verified; raises DataError."""
    return _parsed_dataset(str(path), fmt, folder_stamp(path))


def run_listing(runs_root: str) -> list[dict]:
    """Runs on disk, newest first, as plain dicts for widgets: name, path, status, best metric."""
    from detcore.train.runs import list_runs

    rows = []
    for run in list_runs(Path(runs_root)):
        rows.append({"name": run.path.name, "path": str(run.path), "status": run.status(),
                     "best": run.best_metric()})
    return rows

"""Cached readers the pages share. Each one wraps a detcore call; the cache keys carry a file stamp
(mtime) so an edited dataset or a new checkpoint is picked up without restarting the app."""

from __future__ import annotations

from dataclasses import dataclass
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
    if not Path(runs_root).is_dir():
        return []
    from detcore.train.runs import list_runs

    rows = []
    for run in list_runs(Path(runs_root)):
        rows.append({"name": run.path.name, "path": str(run.path), "status": run.status(),
                     "best": run.best_metric()})
    return rows


@st.cache_data(show_spinner=False, max_entries=64)
def _sample_image(image_path: str, stamp: float, _sample, _classes: tuple[str, ...]):
    from detcore import viz
    from detcore.data.images import load_rgb

    return viz.draw_ground_truth(load_rgb(image_path), _sample, list(_classes))


def load_sample_image(parsed: ParsedDataset, sample):
    """A dataset image with its ground truth drawn (boxes coloured by class, masks when present)."""
    path = Path(sample.image_path)
    return _sample_image(str(path), path.stat().st_mtime if path.exists() else 0.0, sample, tuple(parsed.classes))


def _checkpoint_stamp(run_dir: Path) -> str:
    """Which checkpoint the Predictor will load and its mtime: a new best.pt invalidates caches."""
    ckpts = run_dir / "checkpoints"
    for name in ("best.pt", "last.pt"):
        if (ckpts / name).exists():
            return f"{name}@{(ckpts / name).stat().st_mtime_ns}"
    return "none"


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def _predictor(run_dir: str, stamp: str):
    from detcore.inference import Predictor

    return Predictor.from_run(run_dir, checkpoint="best", device="auto")


def load_predictor(run_dir: Path):
    """(Predictor for the run's best checkpoint, the checkpoint stamp that keys prediction caches)."""
    stamp = _checkpoint_stamp(Path(run_dir))
    return _predictor(str(run_dir), stamp), stamp


@dataclass
class EvaluatedRun:
    """What the Evaluate page reads: the result (cached matches) plus the images and detections
    behind it, for the error browser and the COCO export."""

    result: object  # detcore.metrics.EvaluationResult
    samples: list
    detections: list
    ci: object  # per-class bootstrap interval table (pandas), or None when it failed


@st.cache_resource(show_spinner="Evaluating the run (runs the model once over the split)…", max_entries=4)
def _evaluation(run_dir: str, split: str, stamp: str) -> EvaluatedRun:
    from detcore.evaluation import run_predictions
    from detcore.metrics import evaluate_detections
    from detcore.train.runs import Run

    samples, dets = run_predictions(run_dir, split=split)
    result = evaluate_detections(samples, dets, Run(run_dir).classes())
    return EvaluatedRun(result, samples, dets, result.bootstrap_ci(n_boot=200, seed=0))


def load_evaluation(run_dir: Path, split: str) -> EvaluatedRun:
    """The run's evaluation on ``split``: computed once per checkpoint, then thresholds only filter."""
    return _evaluation(str(run_dir), split, _checkpoint_stamp(Path(run_dir)))


THRESHOLDS_FILE = "thresholds.json"


def load_run_thresholds(run_dir: Path) -> dict:
    """The run's saved score thresholds: ``{"global": float, "per_class": {class: float}}``, or {}."""
    import json

    path = Path(run_dir) / THRESHOLDS_FILE
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        from detcore.errors import DataError

        raise DataError(path, f"unreadable thresholds file: {e}") from None
    return saved if isinstance(saved, dict) else {}


def save_run_thresholds(run_dir: Path, *, global_threshold: float, per_class: dict[str, float]) -> Path:
    """Write thresholds.json atomically (the Predict page and later sessions read it)."""
    from detcore.atomic import write_json

    return write_json(Path(run_dir) / THRESHOLDS_FILE, {
        "global": round(float(global_threshold), 4),
        "per_class": {name: round(float(v), 4) for name, v in per_class.items()},
    })

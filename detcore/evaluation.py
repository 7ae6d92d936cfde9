"""Evaluate a trained run on its saved split: the run's split + the Predictor + the metrics engine.

Predictions are cached in the run's ``eval/`` folder (one compressed ``.npz`` per split and
checkpoint, written atomically) keyed by the checkpoint file's size and mtime, the split's image
ids, the data folder and the score floor — so the Evaluate page and ``python -m detcore evaluate``
re-run the model only when something that changes its output changed.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Callable

import numpy as np

from detcore import atomic
from detcore.errors import ConfigError, DataError
from detcore.structures import Detections, ParsedDataset, Sample

# COCO practice: keep nearly every box so PR curves and threshold sweeps reach low scores.
EVAL_SCORE_FLOOR = 0.001
CACHE_VERSION = 1
PREDICT_CHUNK = 16  # images decoded at a time: bounded memory on large test sets

ProgressFn = Callable[[int, int], None]


def load_run_dataset(run_dir: str | Path, data: str | Path | None = None) -> ParsedDataset:
    """The run's dataset (its config's data path unless ``data`` is given), with the run's classes."""
    from detcore.data.detect import load_dataset
    from detcore.train.runs import Run

    run = Run(run_dir)
    config, classes = run.config(), run.classes()
    path = data if data is not None else config.get("data")
    if not path:
        raise ConfigError("data", f"{run.path}: the run's config names no dataset; pass --data")
    parsed = load_dataset(path, config.get("data_format", "auto") if data is None else "auto", classes=classes)
    if list(parsed.classes) != classes:
        raise DataError(path, f"classes {list(parsed.classes)} differ from the run's classes {classes}")
    return parsed


def split_samples(run_dir: str | Path, parsed: ParsedDataset, split: str = "test") -> list[Sample]:
    from detcore.train.runs import Run

    ids = Run(run_dir).split().part(split)
    if not ids:
        raise DataError(Path(run_dir) / "split.json", f"the run's {split!r} split is empty")
    by_id = parsed.sample_by_id()
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DataError(parsed.root, f"{len(missing)} image(s) of the run's {split!r} split are not in this dataset "
                                     f"(first: {missing[0]}); is it the data the run was trained on?")
    return [by_id[i] for i in ids]


def run_predictions(run_dir: str | Path, data: str | Path | None = None, *, split: str = "test",
                    checkpoint: str = "best", device: str = "auto",
                    progress: ProgressFn | None = None) -> tuple[list[Sample], list[Detections]]:
    """(ground-truth samples, detections) of the run's model on the split, from cache when valid."""
    from detcore.inference import checkpoint_file

    run_dir = Path(run_dir)
    parsed = load_run_dataset(run_dir, data)
    samples = split_samples(run_dir, parsed, split)
    ckpt = checkpoint_file(run_dir, checkpoint)
    key = _cache_key(ckpt, samples, parsed.root)
    cache = run_dir / "eval" / f"predictions-{split}-{ckpt.stem}.npz"
    dets = _read_cache(cache, key)
    if dets is None:
        dets = _predict(run_dir, samples, checkpoint=checkpoint, device=device, progress=progress)
        _write_cache(cache, key, dets)
    return samples, dets


def evaluate_run(run_dir: str | Path, data: str | Path | None = None, *, split: str = "test",
                 checkpoint: str = "best", iou_type: str = "bbox", device: str = "auto",
                 progress: ProgressFn | None = None):
    """COCO-style EvaluationResult of the run's checkpoint on its saved ``split``."""
    from detcore.metrics import evaluate_detections
    from detcore.train.runs import Run

    samples, dets = run_predictions(run_dir, data, split=split, checkpoint=checkpoint, device=device,
                                    progress=progress)
    return evaluate_detections(samples, dets, Run(run_dir).classes(), iou_type=iou_type)


def _predict(run_dir: Path, samples: list[Sample], *, checkpoint: str, device: str,
             progress: ProgressFn | None) -> list[Detections]:
    from detcore.data.images import load_rgb
    from detcore.inference import Predictor

    predictor = Predictor.from_run(run_dir, checkpoint=checkpoint, device=device)
    out: list[Detections] = []
    for start in range(0, len(samples), PREDICT_CHUNK):
        chunk = samples[start:start + PREDICT_CHUNK]
        images = [load_rgb(s.image_path) for s in chunk]
        out += predictor.predict(images, image_ids=[s.image_id for s in chunk], score_floor=EVAL_SCORE_FLOOR)
        if progress is not None:
            progress(len(out), len(samples))
    return out


def _cache_key(ckpt: Path, samples: list[Sample], data_root: Path) -> str:
    st = ckpt.stat()
    ids = hashlib.sha1("\n".join(s.image_id for s in samples).encode()).hexdigest()
    return json.dumps({"version": CACHE_VERSION, "checkpoint": str(ckpt.resolve()), "size": st.st_size,
                       "mtime_ns": st.st_mtime_ns, "images": ids, "data": str(Path(data_root).resolve()),
                       "score_floor": EVAL_SCORE_FLOOR}, sort_keys=True)


def _write_cache(path: Path, key: str, dets: list[Detections]) -> None:
    counts = np.array([len(d) for d in dets], dtype=np.int64)
    arrays = {
        "key": np.array(key), "image_ids": np.array([d.image_id for d in dets]), "counts": counts,
        "boxes": np.concatenate([d.boxes for d in dets]) if dets else np.zeros((0, 4), np.float32),
        "scores": np.concatenate([d.scores for d in dets]) if dets else np.zeros((0,), np.float32),
        "labels": np.concatenate([d.labels for d in dets]) if dets else np.zeros((0,), np.int64),
    }
    if dets and all(d.masks is not None for d in dets):
        # Masks of one image share its size; store each image's stack packed to bits.
        for k, d in enumerate(dets):
            arrays[f"masks_{k}"] = np.packbits(d.masks, axis=-1)
            arrays[f"mask_shape_{k}"] = np.array(d.masks.shape, dtype=np.int64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic.write_bytes(path, buffer.getvalue())


def _read_cache(path: Path, key: str) -> list[Detections] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            ids, counts = [str(i) for i in z["image_ids"]], z["counts"]
            bounds = np.concatenate([[0], np.cumsum(counts)])
            out = []
            for k, image_id in enumerate(ids):
                lo, hi = bounds[k], bounds[k + 1]
                masks = None
                if f"masks_{k}" in z:
                    shape = tuple(z[f"mask_shape_{k}"])
                    masks = np.unpackbits(z[f"masks_{k}"], axis=-1, count=shape[-1]).astype(bool).reshape(shape)
                out.append(Detections(image_id, z["boxes"][lo:hi], z["scores"][lo:hi], z["labels"][lo:hi], masks))
            return out
    except (OSError, KeyError, ValueError):
        return None  # a damaged cache is just recomputed

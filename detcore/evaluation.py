"""Evaluate a trained run on its saved split: the run's split + the Predictor + the metrics engine.

Predictions are cached in the run's ``eval/`` folder (one compressed ``.npz`` per split and
checkpoint, written atomically) keyed by the checkpoint file's size and mtime, the split's image
ids, the data folder and the score floor — so the Evaluate page and ``python -m detcore evaluate``
re-run the model only when something that changes its output changed.

Predicted masks (Mask R-CNN) are kept as COCO RLE (``Detections.mask_rles``), thresholded at the
Predictor's 0.5: full-size boolean arrays of up to 100 detections per image would not fit in
memory for a whole split. ``iou_type="segm"`` needs a mask model and ground truth with masks.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Callable

import numpy as np

from detcore import atomic
from detcore.catalog import model_info
from detcore.data.detect import load_dataset
from detcore.data.images import load_rgb
from detcore.errors import ConfigError, DataError
from detcore.inference import Predictor
from detcore.metrics import evaluate_detections
from detcore.metrics.export import write_coco_pair
from detcore.metrics.masks import encode_bool_masks, has_instance_masks, rle_to_json
from detcore.structures import Detections, ParsedDataset, Sample
from detcore.train.runs import Run

# COCO practice: keep nearly every box so PR curves and threshold sweeps reach low scores.
EVAL_SCORE_FLOOR = 0.001
CACHE_VERSION = 2  # 2: masks stored as RLE
PREDICT_CHUNK = 16  # images decoded at a time: bounded memory on large test sets

ProgressFn = Callable[[int, int], None]


def load_run_dataset(run_dir: str | Path, data: str | Path | None = None) -> ParsedDataset:
    """The run's dataset (its config's data path unless ``data`` is given), with the run's classes."""
    run = Run(run_dir)
    config, classes = run.config(), run.classes()
    path = data if data is not None else config.data
    if not path:
        raise ConfigError("data", f"{run.path}: the run's config names no dataset; pass --data")
    parsed = load_dataset(path, config.data_format if data is None else "auto", classes=classes)
    if list(parsed.classes) != classes:
        raise DataError(path, f"classes {list(parsed.classes)} differ from the run's classes {classes}")
    return parsed


def split_samples(run_dir: str | Path, parsed: ParsedDataset, split: str = "test") -> list[Sample]:
    ids = Run(run_dir).split_ids(split)
    by_id = parsed.sample_by_id()
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DataError(parsed.root, f"{len(missing)} image(s) of the run's {split!r} split are not in this dataset "
                                     f"(first: {missing[0]}); is it the data the run was trained on?")
    return [by_id[i] for i in ids]


def run_predictions(run_dir: str | Path, data: str | Path | None = None, *, split: str = "test",
                    checkpoint: str = "best", device: str = "auto", progress: ProgressFn | None = None,
                    rescore: bool = True) -> tuple[list[Sample], list[Detections]]:
    """(ground-truth samples, detections) of the run's model on the split, from cache when valid;
    ``rescore=False``: the detector's own scores, without the run's crop classifier."""
    run_dir = Path(run_dir)
    parsed = load_run_dataset(run_dir, data)
    samples = split_samples(run_dir, parsed, split)
    name = f"predictions-{split}" + ("" if rescore else "-detector")
    return samples, _cached_predictions(run_dir, parsed.root, samples, name, checkpoint=checkpoint,
                                        device=device, progress=progress, rescore=rescore)


def image_predictions(run_dir: str | Path, data: str | Path | None, image_ids: list[str], *,
                      checkpoint: str = "best", device: str = "auto",
                      progress: ProgressFn | None = None) -> tuple[list[Sample], list[Detections]]:
    """Like ``run_predictions`` for any images of the dataset (e.g. another run's test split, on the
    Compare page), cached under a name derived from the ids."""
    run_dir = Path(run_dir)
    parsed = load_run_dataset(run_dir, data)
    by_id = parsed.sample_by_id()
    missing = [i for i in image_ids if i not in by_id]
    if missing:
        raise DataError(parsed.root, f"{len(missing)} image(s) to predict are not in this dataset (first: {missing[0]})")
    samples = [by_id[i] for i in image_ids]
    label = hashlib.sha1("\n".join(image_ids).encode()).hexdigest()[:12]
    return samples, _cached_predictions(run_dir, parsed.root, samples, f"predictions-images-{label}",
                                        checkpoint=checkpoint, device=device, progress=progress)


def _cached_predictions(run_dir: Path, root: Path, samples: list[Sample], name: str, *, checkpoint: str,
                        device: str, progress: ProgressFn | None, rescore: bool = True) -> list[Detections]:
    """The checkpoint's detections on ``samples``, from ``RUN/eval/<name>-<checkpoint>.npz`` while its key
    (checkpoint, images, dataset) still holds, else predicted and cached."""
    ckpt = Run(run_dir).checkpoint(checkpoint)
    key = _cache_key(ckpt, samples, root)
    cache = run_dir / "eval" / f"{name}-{ckpt.stem}.npz"
    dets = _read_cache(cache, key)
    if dets is None:
        dets = _predict(run_dir, samples, checkpoint=checkpoint, device=device, progress=progress, rescore=rescore)
        _write_cache(cache, key, dets)
    return dets


def evaluate_run(run_dir: str | Path, data: str | Path | None = None, *, split: str = "test",
                 checkpoint: str = "best", iou_type: str = "bbox", device: str = "auto",
                 progress: ProgressFn | None = None, rescore: bool = True):
    """COCO-style EvaluationResult of the run's checkpoint on its saved ``split`` (``iou_type`` bbox or segm);
    ``rescore=False`` scores the detector without the run's crop classifier."""
    check_iou_type(run_dir, iou_type)
    samples, dets = run_predictions(run_dir, data, split=split, checkpoint=checkpoint, device=device,
                                    progress=progress, rescore=rescore)
    check_masks(samples, iou_type, data if data is not None else Run(run_dir).config().data)
    return evaluate_detections(samples, dets, Run(run_dir).classes(), iou_type=iou_type)


def check_iou_type(run_dir: str | Path, iou_type: str) -> None:
    """segm needs a model that predicts masks; say so before anything runs."""
    if iou_type not in ("bbox", "segm"):
        raise ConfigError("iou_type", f"must be 'bbox' or 'segm', got {iou_type!r}")
    if iou_type == "segm":
        model = Run(run_dir).config().model
        if not model_info(model).has_masks:
            raise ConfigError("--iou-type", f"segm needs a mask model (Mask R-CNN); run {Path(run_dir).name} "
                                            f"trained {model}, which predicts boxes only")


def check_masks(samples: list[Sample], iou_type: str, data) -> None:
    if iou_type == "segm" and not has_instance_masks(samples):
        raise DataError(data or "data", "has no instance masks for these images; segm AP needs them "
                                        "(Penn-Fudan PedMasks, or COCO annotations with segmentation)")


def export_coco(run_dir: str | Path, out_dir: str | Path, data: str | Path | None = None, *, split: str = "test",
                checkpoint: str = "best", device: str = "auto", rescore: bool = True) -> tuple[Path, Path]:
    """Write the split's ground truth and the run's predictions as a COCO pair (``gt.json``,
    ``detections.json``) into ``out_dir``; masks as RLE when the model predicts them and the ground
    truth has them. pycocotools (or ``evaluate --gt --dt``) on the pair gives our numbers."""
    samples, dets = run_predictions(run_dir, data, split=split, checkpoint=checkpoint, device=device, rescore=rescore)
    with_masks = model_info(Run(run_dir).config().model).has_masks and has_instance_masks(samples)
    return write_coco_pair(out_dir, samples, dets, Run(run_dir).classes(), with_masks=with_masks)


def _predict(run_dir: Path, samples: list[Sample], *, checkpoint: str, device: str,
             progress: ProgressFn | None, rescore: bool = True) -> list[Detections]:
    predictor = Predictor.from_run(run_dir, checkpoint=checkpoint, device=device, rescore=rescore)
    out: list[Detections] = []
    for start in range(0, len(samples), PREDICT_CHUNK):
        chunk = samples[start:start + PREDICT_CHUNK]
        images = [load_rgb(s.image_path) for s in chunk]
        out += [_masks_as_rle(d) for d in
                predictor.predict(images, image_ids=[s.image_id for s in chunk], score_floor=EVAL_SCORE_FLOOR)]
        if progress is not None:
            progress(len(out), len(samples))
    return out


def _masks_as_rle(d: Detections) -> Detections:
    if d.masks is None:
        return d
    return Detections(d.image_id, d.boxes, d.scores, d.labels, mask_rles=encode_bool_masks(d.masks))


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
    if dets and all(d.mask_rles is not None for d in dets):
        arrays["mask_rles"] = np.array(json.dumps([[rle_to_json(r) for r in d.mask_rles] for d in dets]))
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
            rles = json.loads(str(z["mask_rles"])) if "mask_rles" in z else None
            out = []
            for k, image_id in enumerate(ids):
                lo, hi = bounds[k], bounds[k + 1]
                mask_rles = None if rles is None else [{"size": r["size"], "counts": r["counts"].encode("ascii")}
                                                       for r in rles[k]]
                out.append(Detections(image_id, z["boxes"][lo:hi], z["scores"][lo:hi], z["labels"][lo:hi],
                                      mask_rles=mask_rles))
            return out
    except (OSError, KeyError, ValueError, TypeError, AttributeError):
        return None  # a damaged cache is just recomputed

"""Run a file written by ``export_run`` — ONNX through onnxruntime, TorchScript through torch —
and get the same ``Detections`` the Predictor gives for the run (``predict FILE IMAGE``).

Only the file is needed: classes, thresholds and the score floor come from its metadata.
"""

from __future__ import annotations

import json
import threading
import warnings
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from detcore.errors import CheckpointError, ConfigError, DataError
from detcore.export import METADATA_KEYS
from detcore.structures import Detections


def exported_kind(path: str | Path) -> str | None:
    """"onnx" / "torchscript" when ``path`` is a file that looks like one, else None (a run folder)."""
    path = Path(path)
    if not path.is_file():
        return None
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if zipfile.is_zipfile(path):
        return "torchscript"
    return None


class ExportedModel:
    """An exported detector and its metadata. ``predict`` is safe to call from several threads."""

    def __init__(self, path: Path, kind: str, metadata: dict[str, Any], runner):
        self.path, self.kind, self.metadata, self._run = path, kind, metadata, runner
        self.classes: list[str] = list(metadata["classes"])
        saved = metadata.get("thresholds") or {}
        self.thresholds: list[float] = [float(saved.get(c, 0.5)) for c in self.classes]
        self.score_floor = float(metadata.get("score_floor") or 0.0)
        self.mask_threshold = metadata.get("mask_threshold")
        self.model_name = metadata.get("model")
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> "ExportedModel":
        """``threads``: onnxruntime's intra-op threads (default: its own choice; TorchScript uses torch's)."""
        path = Path(path)
        kind = exported_kind(path)
        if kind == "onnx":
            return cls(path, kind, *_load_onnx(path, threads))
        if kind == "torchscript":
            return cls(path, kind, *_load_torchscript(path))
        raise CheckpointError(path, "is neither a run directory nor an .onnx or TorchScript file exported by detboard")

    def class_thresholds(self, override: float | None = None) -> list[float]:
        """Per-class thresholds: ``override`` for every class, else the ones embedded at export."""
        if override is None:
            return list(self.thresholds)
        if not 0.0 <= override <= 1.0:
            raise ConfigError("--score-threshold", f"must be in [0, 1] (got {override})")
        if override < self.score_floor:
            raise ConfigError("--score-threshold", f"{override} is below this file's score floor {self.score_floor} "
                                                   "(the exported model drops lower scores)")
        return [override] * len(self.classes)

    def predict(self, images: Sequence[np.ndarray], *, image_ids: Sequence[str] | None = None,
                score_floor: float | None = None) -> list[Detections]:
        """Detections (class-index labels) for each RGB uint8 (H, W, 3) image, scores >= the floor."""
        ids = [str(i) for i in (image_ids if image_ids is not None else range(len(images)))]
        if len(ids) != len(images):
            raise DataError("image_ids", f"{len(ids)} ids for {len(images)} images")
        floor = self.score_floor if score_floor is None else max(float(score_floor), self.score_floor)
        out = []
        with self._lock:
            for name, image in zip(ids, images):
                outputs = self._run(_to_chw(image, name))
                out.append(self._detections(name, outputs, floor))
        return out

    def _detections(self, name: str, outputs: Sequence[np.ndarray], floor: float) -> Detections:
        boxes, labels, scores = (np.asarray(o) for o in outputs[:3])
        keep = (scores >= floor) & (labels >= 0)
        masks = None
        if len(outputs) > 3:
            masks = (np.asarray(outputs[3])[:, 0] > float(self.mask_threshold or 0.5))[keep]
        return Detections(name, boxes[keep].astype(np.float32), scores[keep], labels[keep].astype(np.int64), masks)


def _to_chw(image: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or min(a.shape[:2]) < 1:
        raise DataError(name, f"expected an RGB uint8 image of shape (H, W, 3), got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def _parse_metadata(path: Path, raw: dict[str, str]) -> dict[str, Any]:
    if not raw.get("classes"):
        raise CheckpointError(path, "was not exported by detboard (no 'classes' in its metadata)")
    meta = {}
    for key in METADATA_KEYS:
        if raw.get(key):
            try:
                meta[key] = json.loads(raw[key])
            except ValueError:
                raise CheckpointError(path, f"metadata {key!r} is not valid JSON") from None
    if not isinstance(meta["classes"], list) or not all(isinstance(c, str) for c in meta["classes"]):
        raise CheckpointError(path, "metadata 'classes' must be a JSON list of class names")
    thresholds = meta.get("thresholds") or {}
    if not isinstance(thresholds, dict) or not all(
            isinstance(v, (int, float)) and 0 <= v <= 1 for v in thresholds.values()):
        raise CheckpointError(path, "metadata 'thresholds' must map class names to numbers in [0, 1]")
    return meta


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def _load_onnx(path: Path, threads: int | None = None):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("onnxruntime", "is not installed; pip install -r requirements.txt") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # not ONNX, truncated, an op this runtime lacks
        raise CheckpointError(path, f"onnxruntime cannot load it ({_first_line(e)})") from None
    meta = _parse_metadata(path, dict(session.get_modelmeta().custom_metadata_map))
    input_name = session.get_inputs()[0].name

    def run(chw: np.ndarray) -> list[np.ndarray]:
        return session.run(None, {input_name: chw})

    return meta, run


def _load_torchscript(path: Path):
    import torch
    import torchvision  # noqa: F401  registers torchvision::nms / roi_align, which scripted detectors call

    extra = {key: "" for key in METADATA_KEYS}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as e:  # a zip that is not a TorchScript archive, a truncated file
        raise CheckpointError(path, f"is not a TorchScript file exported by detboard ({_first_line(e)}); "
                                    "for a training checkpoint give its run directory (and --checkpoint)") from None
    meta = _parse_metadata(path, {k: (v.decode("utf-8") if isinstance(v, bytes) else v) for k, v in extra.items()})
    module.eval()

    def run(chw: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "... always returns a (Losses, Detections) tuple in scripting"
            outputs = module(torch.from_numpy(chw))
        return [o.numpy() for o in outputs]

    return meta, run

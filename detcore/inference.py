"""Predictor: a run's checkpoint → model → numpy Detections, loaded once (conventions: detcore/structures.py).

The model's own score threshold is lowered to the caller's ``score_floor`` so the app can
re-threshold (a slider, per-class thresholds) without running the model again. Labels leave as
class indices (model label − 1); Mask R-CNN masks leave thresholded at 0.5 as bool (N, H, W).
A checkpoint with a crop classifier (``classifier_minutes``) re-scores every prediction with it
(detcore/crop_classifier.py); ``rescore=False`` gives the detector's own scores.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from detcore.catalog import model_info
from detcore.checkpoints import check_matches_run, load_checkpoint
from detcore.crop_classifier import ModelView, Rescorer, load_rescorer
from detcore.errors import CheckpointError, DataError
from detcore.models import build_model
from detcore.structures import Detections
from detcore.train.runs import Run

MASK_THRESHOLD = 0.5


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError("device", f"{device!r} was requested but no CUDA GPU is available")
    return torch.device(device)


def _load_weights(model: torch.nn.Module, state: dict, path: Path) -> None:
    # A model built without pretrained weights has BatchNorm2d where a COCO-initialised one had
    # FrozenBatchNorm2d; they compute the same thing in eval mode, only num_batches_tracked differs.
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise CheckpointError(path, f"does not fit the run's model: {str(e).splitlines()[0]}") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        detail = (f"missing {missing[:3]}" if missing else "") + (
            f" unexpected {result.unexpected_keys[:3]}" if result.unexpected_keys else "")
        raise CheckpointError(path, f"does not fit the run's model: {detail.strip()}")


def _set_score_floor(model: torch.nn.Module, floor: float) -> None:
    """Lower the family's internal score cut so low-scoring boxes reach us. torchvision keeps
    ``score > thresh`` while we keep ``score >= floor`` (as ``Detections.above`` does), so the model
    is set a hair below the floor and the exact cut is made in numpy."""
    floor = float(np.nextafter(np.float32(floor), np.float32(-1))) if floor > 0 else -1.0
    heads = getattr(model, "roi_heads", None)
    if heads is not None and hasattr(heads, "score_thresh"):  # Faster/Mask R-CNN
        heads.score_thresh = floor
    if hasattr(model, "score_thresh"):  # RetinaNet, FCOS, SSD
        model.score_thresh = floor


class Predictor:
    """Holds one eval-mode model on one device; ``predict`` is safe to call from several threads."""

    def __init__(self, model: torch.nn.Module, classes: list[str], *, device: torch.device,
                 checkpoint_path: Path | None = None, model_name: str | None = None,
                 rescorer: Rescorer | None = None):
        self.model = model.to(device).eval()
        self.rescorer = rescorer.to(device).eval() if rescorer is not None else None
        self.view = ModelView(self.model.transform).to(device) if rescorer is not None else None
        self.classes = list(classes)
        self.device = device
        self.checkpoint_path = checkpoint_path
        self.model_name = model_name
        self._lock = threading.Lock()

    @classmethod
    def from_run(cls, run_dir: str | Path, *, checkpoint: str = "best", device: str = "auto",
                 rescore: bool = True) -> "Predictor":
        """The run's checkpoint (``best`` falling back to ``last``, ``last``, or a .pt path) on ``device``;
        with its crop classifier, if it has one, unless ``rescore`` is False."""
        run = Run(run_dir)
        config, classes = run.config(), run.classes()
        path = run.checkpoint(checkpoint)
        ckpt = load_checkpoint(path)
        model_name = config.model
        check_matches_run(ckpt, path, classes=classes, model_name=model_name, geometry=config.geometry)
        model = build_model(model_name, classes=classes, weights="none", min_size=config.min_size,
                            max_size=config.max_size, geometry=config.geometry)
        _load_weights(model, ckpt["model"], path)
        rescorer = None
        if rescore and ckpt.get("classifier") is not None:
            try:
                rescorer = load_rescorer(ckpt["classifier"], model, len(classes))
            except ValueError as e:
                raise CheckpointError(path, f"has a crop classifier that cannot be used: {e}") from None
        return cls(model, classes, device=resolve_device(device), checkpoint_path=path, model_name=model_name,
                   rescorer=rescorer)

    def predict(self, images: Sequence[np.ndarray], *, image_ids: Sequence[str] | None = None,
                score_floor: float = 0.05, batch_size: int | None = None) -> list[Detections]:
        """Detections for each RGB uint8 (H, W, 3) image, scores >= ``score_floor``, in input order.
        By default images are batched only for models whose output does not depend on the batch
        (``ModelInfo.batch_invariant``), so an image gets the same detections on every page and command."""
        if batch_size is None:
            batch_size = 4 if self.model_name and model_info(self.model_name).batch_invariant else 1
        ids = [str(i) for i in (image_ids if image_ids is not None else range(len(images)))]
        if len(ids) != len(images):
            raise DataError("image_ids", f"{len(ids)} ids for {len(images)} images")
        tensors = [_to_tensor(img, name) for img, name in zip(images, ids)]
        out: list[Detections] = []
        with self._lock, torch.inference_mode():
            _set_score_floor(self.model, float(score_floor))
            for start in range(0, len(tensors), max(1, batch_size)):
                batch = [t.to(self.device, non_blocking=True) for t in tensors[start:start + batch_size]]
                for name, raw in zip(ids[start:start + batch_size], self._run(batch)):
                    out.append(_to_detections(name, raw, score_floor))
        return out

    def _run(self, batch: list[torch.Tensor]) -> list[dict]:
        """The model's raw outputs for ``batch``, re-scored by the crop classifier when there is one."""
        outputs = self.model(batch)
        if self.rescorer is None:
            return outputs
        return [self.rescorer(*self.view(image), raw) for image, raw in zip(batch, outputs)]

    def predict_soft_masks(self, image: np.ndarray, *, image_id: str = "0",
                           score_floor: float = 0.05) -> tuple[Detections, np.ndarray | None]:
        """One image's Detections (masks at 0.5, as ``predict``) and the mask probabilities as uint8
        (N, H, W; 255 = 1.0), so a picture can show the masks at any threshold without re-running
        the model per threshold. None for models without masks."""
        tensor = _to_tensor(image, image_id)
        with self._lock, torch.inference_mode():
            _set_score_floor(self.model, float(score_floor))
            raw = self._run([tensor.to(self.device)])[0]
        dets = _to_detections(image_id, raw, score_floor)
        if "masks" not in raw:
            return dets, None
        keep = ((raw["scores"].float() >= score_floor) & (raw["labels"] >= 1)).cpu().numpy()
        probs = (raw["masks"][:, 0].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()[keep]
        return dets, probs


def _to_tensor(image: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(image, torch.Tensor) and image.dtype == torch.float32 and image.ndim == 3 and image.shape[0] == 3:
        return image  # already the model's input: RGB in [0, 1], (3, H, W) (detcore/image_prediction.py)
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or min(a.shape[:2]) < 1:
        raise DataError(name, f"expected an RGB uint8 image of shape (H, W, 3), got {a.dtype} {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div_(255.0)


def _to_detections(image_id: str, raw: dict, score_floor: float) -> Detections:
    scores = raw["scores"].float().cpu().numpy()
    labels = raw["labels"].cpu().numpy().astype(np.int64)
    keep = (scores >= score_floor) & (labels >= 1)  # label 0 is background for every family
    masks = None
    if "masks" in raw:
        masks = (raw["masks"][:, 0] > MASK_THRESHOLD).cpu().numpy()[keep]
    return Detections(image_id, raw["boxes"].float().cpu().numpy()[keep], scores[keep], labels[keep] - 1, masks)

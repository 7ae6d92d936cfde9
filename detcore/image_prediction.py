"""One image through a Predictor with bounded memory: what the Predict page (and any other input of it —
a camera, a server folder) calls per image (hostile walk, finding 6).

``predict_image(predictor, source)`` decodes the image (``detcore.data.images``), and when it is bigger
than ``FULL_SIZE_MAX_PIXELS`` resizes it to the size the model would resize it to — sampling exactly
the pixels torchvision's own resize samples (bilinear, no antialias, same output size), from the
8-bit pixels a band of rows at a time — so no full-size float copy of a 90 MP photo (12 bytes a
pixel, twice, in torchvision) is ever made. Boxes come back in the
image's own pixels; the full-size pixels are then dropped and only a copy of at most
``DISPLAY_LONG_SIDE`` px is kept for display. One image at a time: the caller loops.

Images up to ``FULL_SIZE_MAX_PIXELS`` go to the model unchanged, exactly as ``predict`` on the command
line and the evaluation do; above it the model gets the pixels its own resize would give it, up to
float rounding (tests/reliability/test_hostile_walk_app.py compares both paths).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from detcore.data.images import load_rgb
from detcore.structures import Detections

DISPLAY_LONG_SIDE = 2048  # what a browser figure needs at most
FULL_SIZE_MAX_PIXELS = 2048 * 2048  # above this the image is resized before the model sees it


@dataclass(frozen=True)
class ImagePrediction:
    """One image's detections and what is kept of its pixels."""

    name: str
    size: tuple[int, int]  # (width, height) of the decoded image (EXIF applied): the detections' pixels
    display: np.ndarray  # (h, w, 3) uint8, at most DISPLAY_LONG_SIDE px on its long side
    detections: Detections  # boxes in the image's pixels; Mask R-CNN masks at the resolution the model saw
    model_ms: float | None = None  # the model's own time on this image (decoding and resizing excluded)

    @property
    def display_scale(self) -> tuple[float, float]:
        """(x, y) factors from the image's pixels to the display copy's."""
        return self.display.shape[1] / self.size[0], self.display.shape[0] / self.size[1]

    @property
    def nbytes(self) -> int:
        """Memory the result holds (pixels, boxes, scores, labels, masks)."""
        d = self.detections
        return int(self.display.nbytes + d.boxes.nbytes + d.scores.nbytes + d.labels.nbytes
                   + (d.masks.nbytes if d.masks is not None else 0))

    def for_display(self, detections: Detections) -> Detections:
        """``detections`` (of this image, e.g. filtered by thresholds) with boxes in the display copy's
        pixels; masks stay as they are (``detcore.viz`` resizes them when it draws)."""
        sx, sy = self.display_scale
        boxes = np.asarray(detections.boxes, np.float32) * np.float32([sx, sy, sx, sy])
        return Detections(detections.image_id, boxes, detections.scores, detections.labels, detections.masks)


def model_input_size(model: torch.nn.Module, width: int, height: int) -> tuple[int, int]:
    """(width, height) torchvision's GeneralizedRCNNTransform resizes a ``width x height`` image to at
    inference: its fixed size (SSD), else by the scale min(min_size / short side, max_size / long side),
    each side rounded down (``interpolate(scale_factor=..., recompute_scale_factor=True)``)."""
    transform = model.transform
    if getattr(transform, "fixed_size", None) is not None:
        fw, fh = transform.fixed_size
        return int(fw), int(fh)
    scale = min(float(transform.min_size[-1]) / min(width, height), float(transform.max_size) / max(width, height))
    return int(np.floor(width * scale)), int(np.floor(height * scale))


def _source_index(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps of ``interpolate(..., align_corners=False)`` along one axis: for each output pixel
    the two input pixels and the weight of the second (torch's area_pixel_compute_source_index)."""
    ratio = np.float32(n_in) / np.float32(n_out)  # in float32, as torch computes it for float32 images
    src = np.maximum(ratio * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    first = np.minimum(src.astype(np.int64), n_in - 1)
    second = np.minimum(first + 1, n_in - 1)
    return first, second, np.clip(src - first.astype(np.float32), 0, 1).astype(np.float32)


def resize_for_model(image: np.ndarray, model: torch.nn.Module, *, rows_per_chunk: int = 64) -> torch.Tensor:
    """``image`` (H, W, 3 uint8) as the model's transform would resize it — bilinear, no antialias,
    align_corners False, the same output size — returned as the (3, h, w) float tensor in [0, 1] the
    model takes. Computed a band of output rows at a time from the 8-bit pixels, so the full-size
    float copy torchvision makes (12 bytes a pixel, twice) never exists; the values equal torchvision's
    up to float rounding. The model's own resize then leaves it as it is (for the rare size whose
    rounding lands a pixel short of the model's target, it stretches it by that pixel)."""
    h, w = image.shape[:2]
    out_w, out_h = model_input_size(model, w, h)
    y0, y1, wy = _source_index(h, out_h)
    x0, x1, wx = _source_index(w, out_w)
    wy, wx = wy[:, None, None], wx[None, :, None]
    out = np.empty((out_h, out_w, 3), np.float32)
    for start in range(0, out_h, rows_per_chunk):
        band = slice(start, start + rows_per_chunk)
        top = image[y0[band]].astype(np.float32) / 255  # (rows, W, 3): two input rows per output row
        bottom = image[y1[band]].astype(np.float32) / 255
        rows = top + (bottom - top) * wy[band]
        out[band] = rows[:, x0] + (rows[:, x1] - rows[:, x0]) * wx
    return torch.from_numpy(out).permute(2, 0, 1).contiguous()


def display_copy(image: np.ndarray, long_side: int = DISPLAY_LONG_SIDE) -> np.ndarray:
    """At most ``long_side`` px on the long side (PIL bilinear with antialias: a picture for eyes)."""
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    if scale >= 1:
        return np.ascontiguousarray(image)
    small = Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    return np.asarray(small)


def predict_image(predictor, source: bytes | str | Path, *, name: str | None = None, score_floor: float = 0.05,
                  display_long_side: int = DISPLAY_LONG_SIDE) -> ImagePrediction:
    """Decode ``source`` (bytes of an upload or a path), predict it with ``predictor`` (a
    ``detcore.inference.Predictor``) and keep a display copy. Raises DataError naming the image."""
    label = name or (str(source) if not isinstance(source, bytes) else "<upload>")
    image = load_rgb(source, name=label)
    h, w = image.shape[:2]
    display = display_copy(image, display_long_side)
    target = model_input_size(predictor.model, w, h)
    model_input = image
    if w * h > FULL_SIZE_MAX_PIXELS and target[0] * target[1] < w * h:
        model_input = resize_for_model(image, predictor.model)
        del image  # the full-size pixels are dropped here
    seen_h, seen_w = model_input.shape[-2:] if isinstance(model_input, torch.Tensor) else model_input.shape[:2]
    start = time.perf_counter()
    dets = predictor.predict([model_input], image_ids=[label], score_floor=score_floor, batch_size=1)[0]
    model_ms = (time.perf_counter() - start) * 1000.0
    del model_input
    if (seen_w, seen_h) != (w, h):
        factors = np.float32([w / seen_w, h / seen_h, w / seen_w, h / seen_h])
        dets = Detections(dets.image_id, dets.boxes * factors, dets.scores, dets.labels, dets.masks)
    return ImagePrediction(label, (w, h), display, dets, model_ms)

"""The exportable form of a torchvision detector: one image in, flat tensors out.

``ExportableDetector(model)`` wraps an eval-mode detector from :mod:`detcore.models` so that
``forward(image)`` takes ONE float32 RGB tensor (3, H, W) in [0, 1] and returns
``boxes`` (N, 4) xyxy in the input image's pixels, ``labels`` (N,) int64 class indices into the
run's class list (torchvision's label minus one, as everywhere in detcore; model label 0, background,
is dropped as the Predictor drops it), ``scores`` (N,) and,
for Mask R-CNN, ``masks`` (N, 1, H, W) float probabilities. The detector's own pre- and
post-processing (normalisation, resize, NMS, box rescaling, mask pasting) is inside the graph.

Why the transform is replaced (:class:`ExactResizeTransform`): when torchvision's resize is traced
for ONNX (or scripted) it computes the scale in float32 and floors ``side * scale``, so e.g. a
400 px side at scale 0.4 becomes 159 px where eager PyTorch (float64) gives 160 — a different
sampling grid and visibly different boxes. The replacement computes the same float64 arithmetic
as eager PyTorch on every path (eager, TorchScript, ONNX tracing); the equivalence tests in
tests/export/ check its output against the untouched eager model.
"""


import io
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from detcore.crop_classifier import ModelView

ONNX_OPSET = 17


class ExactResizeTransform(GeneralizedRCNNTransform):
    """GeneralizedRCNNTransform whose inference resize gives eager PyTorch's output size on every path."""

    @classmethod
    def like(cls, t: GeneralizedRCNNTransform) -> "ExactResizeTransform":
        new = cls(t.min_size, t.max_size, t.image_mean, t.image_std, size_divisible=t.size_divisible,
                  fixed_size=t.fixed_size)
        new._skip_resize = t._skip_resize
        return new.train(t.training)

    def resize(self, image: Tensor,
               target: Optional[Dict[str, Tensor]] = None) -> Tuple[Tensor, Optional[Dict[str, Tensor]]]:
        # Inference only: an exported detector never sees targets.
        if self.fixed_size is not None:  # SSD: every image to one square, as torchvision does
            size = [self.fixed_size[1], self.fixed_size[0]]
            return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0], target
        if torchvision._is_tracing():
            return self._resize_traced(image), target
        # Eager and TorchScript: Python/TorchScript floats are float64, exactly torchvision's eager formula
        # (scale = min(min_size / short side, max_size / long side); side = int(side * scale)).
        height, width = float(image.shape[-2]), float(image.shape[-1])
        scale = min(float(self.min_size[-1]) / min(height, width), float(self.max_size) / max(height, width))
        size = [int(height * scale), int(width * scale)]
        return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0], target

    @torch.jit.unused
    def _resize_traced(self, image: Tensor) -> Tensor:
        # The same arithmetic on float64 *vectors*: the ONNX exporter demotes 0-d float64 scalars to
        # float32, vectors keep their type. The size stays a graph value, so any input size works.
        shape = torch._shape_as_tensor(image)[-2:].to(torch.float64)
        limits = torch.tensor([float(self.min_size[-1]), float(self.max_size)], dtype=torch.float64)
        scale = (limits / torch.stack([shape.min(), shape.max()])).min()
        size = torch.floor(shape * scale).to(torch.int64)
        return F.interpolate(image[None], size=[size[0], size[1]], mode="bilinear", align_corners=False)[0]


class ExportableDetector(nn.Module):
    """``forward(image) -> (boxes, labels, scores)`` for one (3, H, W) float image in [0, 1]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def _detect(self, image: Tensor) -> Dict[str, Tensor]:
        if torch.jit.is_scripting():  # scripted torchvision detectors return (losses, detections)
            _, detections = self.model([image])
        else:
            detections = self.model([image])
        return detections[0]

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        d = self._detect(image)
        keep = d["labels"] > 0  # model label 0 is background (RetinaNet/FCOS/SSD heads can still emit it)
        return d["boxes"][keep], d["labels"][keep] - 1, d["scores"][keep]


class ExportableMaskDetector(ExportableDetector):
    """As ExportableDetector, plus ``masks`` (N, 1, H, W) float probabilities in image pixels."""

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:  # type: ignore[override]
        d = self._detect(image)
        keep = d["labels"] > 0
        return d["boxes"][keep], d["labels"][keep] - 1, d["scores"][keep], d["masks"][keep]


class RescoredDetector(ExportableDetector):
    """ExportableDetector whose detections are re-scored by the run's crop classifier — the same
    ``Rescorer`` the Predictor runs (detcore/crop_classifier.py), cut at ``score_floor`` again since
    re-scoring lowers scores."""

    def __init__(self, model: nn.Module, rescorer: nn.Module, score_floor: float):
        super().__init__(model)
        self.view = ModelView(model.transform)
        self.rescorer = rescorer.eval()
        self.score_floor = float(score_floor)

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        view, factor = self.view(image)
        d = self.rescorer(view, factor, self._detect(image))
        keep = (d["labels"] > 0) & (d["scores"] >= self.score_floor)
        return d["boxes"][keep], d["labels"][keep] - 1, d["scores"][keep]


def set_score_floor(model: nn.Module, floor: float) -> None:
    """Bake the score floor into the detector: it keeps ``score > thresh``, we promise ``>= floor``,
    so the threshold sits one float32 step below the floor (the runtime cuts exactly at the floor)."""
    thresh = float(np.nextafter(np.float32(floor), np.float32(-1))) if floor > 0 else -1.0
    heads = getattr(model, "roi_heads", None)
    if heads is not None and hasattr(heads, "score_thresh"):  # Faster/Mask R-CNN
        heads.score_thresh = thresh
    if hasattr(model, "score_thresh"):  # RetinaNet, FCOS, SSD
        model.score_thresh = thresh


def exportable(model: nn.Module, *, score_floor: float, with_masks: bool,
               rescorer: Optional[nn.Module] = None) -> ExportableDetector:
    """Wrap an eval-mode detector (and its crop classifier's ``rescorer``, if any) for export (the model
    is changed in place: transform, score floor)."""
    model.eval()
    model.transform = ExactResizeTransform.like(model.transform)
    set_score_floor(model, score_floor)
    if rescorer is not None:
        return RescoredDetector(model, rescorer, score_floor).eval()
    wrapper = ExportableMaskDetector(model) if with_masks else ExportableDetector(model)
    return wrapper.eval()


def example_image(fixed_size: int | None = None) -> Tensor:
    """A deterministic textured image to trace with (any size works afterwards)."""
    height, width = (fixed_size, fixed_size) if fixed_size else (480, 640)
    g = torch.Generator().manual_seed(0)
    ys = torch.linspace(0, 1, height)[:, None]
    xs = torch.linspace(0, 1, width)[None, :]
    base = torch.stack([ys * xs, ys.expand(height, width), xs.expand(height, width)])
    return (0.7 * base + 0.3 * torch.rand(3, height, width, generator=g)).clamp(0, 1)


def output_names(with_masks: bool) -> List[str]:
    return ["boxes", "labels", "scores"] + (["masks"] if with_masks else [])


def to_onnx_bytes(module: ExportableDetector, example: Tensor, *, with_masks: bool) -> bytes:
    """The traced ONNX graph (opset 17, any input height/width, any number of detections)."""
    names = output_names(with_masks)
    axes: dict = {"image": {1: "height", 2: "width"}, **{n: {0: "detections"} for n in names}}
    if with_masks:
        axes["masks"] = {0: "detections", 2: "height", 3: "width"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns about every Python value it records as a constant (torchvision's
        # detectors were written for it; the equivalence tests are what prove the graph right).
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buf, dynamo=False, opset_version=ONNX_OPSET, input_names=["image"],
                          output_names=names, dynamic_axes=axes, do_constant_folding=True)
    return buf.getvalue()


def to_torchscript_bytes(module: ExportableDetector, extra_files: dict[str, str]) -> bytes:
    """The scripted module (not traced: scripting keeps the data-dependent control flow), with
    ``extra_files`` stored beside it (``torch.jit.load(..., _extra_files=...)`` reads them back).
    Loading needs torch and torchvision (its C++ NMS/RoIAlign ops), not detboard."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "RetinaNet always returns a (Losses, Detections) tuple in scripting"
        scripted = torch.jit.script(module)
        buf = io.BytesIO()  # (torch.jit.save warns that TorchScript is deprecated; it is what plain torch loads)
        torch.jit.save(scripted, buf, _extra_files=extra_files)
    return buf.getvalue()

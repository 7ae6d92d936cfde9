"""Detector geometry: which ground-truth boxes a model's anchors can match, and anchors fitted to the data.

Pure numpy (no torch), so the Data page and ``inspect --fit`` answer in a fraction of a second.
A model's *geometry* is plain JSON, stored in a run's config.json and in its checkpoints::

    {"input": {"min_size": 800, "max_size": 1333}            # or {"fixed_size": 320} (SSD)
     "anchors": {"kind": "grid", "sizes": [[32], ...], "aspect_ratios": [[0.5, 1.0, 2.0], ...]}}
                # or {"kind": "ssd", "scales": [...], "aspect_ratios": [[2, 3], ...]}  (default boxes)
                # or {"kind": "points", "sizes": [[8], ...]}                           (FCOS, no anchors)

This module reproduces exactly what torchvision does with it (``tests/models/test_geometry.py``
compares every registry model's anchors with the ones its own anchor generator makes):

- **resize**: ``min_size``/``max_size`` scale an image by ``min(min_size / short, max_size / long)``
  (output size floored) and pad the batch to a multiple of 32; SSD squeezes every image to
  ``fixed_size`` squared (no padding, aspect ratio not kept).
- **feature grids**: a level of stride ``2**k`` has ``ceil(ceil(H / 2) / 2 ...)`` (k times) cells.
- **grid anchors** (Faster/Mask R-CNN, RetinaNet): ``AnchorGenerator`` boxes, rounded, centred on
  ``i * (padded // cells)`` — cell corners, not cell centres.
- **SSD default boxes**: centred on ``(i + 0.5) / cells`` of the image, sizes ``scale * input``.
- **FCOS points**: no boxes; torchvision assigns a point to a ground-truth box when it lies inside
  it, within ``1.5 * stride`` of its centre, with the box's largest side distance in that level's
  range (``4 * stride .. 8 * stride``, first level from 0, last to infinity). We count a box as
  learnable when it gets a point and spans at least ``POINTS_MIN_CELLS`` (1) cell of the finest level.

*Best possible recall* (BPR) at IoU 0.5: the share of ground-truth boxes for which at least one
anchor (default box) overlaps with IoU >= 0.5 after the model's resize — the ceiling on recall
that no training can lift. For FCOS it is the share of learnable boxes (above).
Boxes are bucketed COCO-style by their area in model-input pixels (small < 32², medium < 96²).

Fitting (:func:`fit_geometry`) uses only the boxes it is given — the caller passes the training
split, never the test split. It keeps the number of anchors per location of the model's default,
so pretrained heads keep their shapes, and searches anchor sizes (a geometric series over the
levels, smallest sizes on the finest level), aspect ratios (quantiles of the boxes' height/width)
and the input size (the smallest candidate that reaches the recall the larger ones reach).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from detcore.data.images import image_size
from detcore.errors import ConfigError

IOU_THRESHOLD = 0.5
SIZE_BUCKETS = (("small", 0.0, 32.0 ** 2), ("medium", 32.0 ** 2, 96.0 ** 2), ("large", 96.0 ** 2, math.inf))
SIZE_DIVISIBLE = 32  # GeneralizedRCNNTransform pads batches to a multiple of this
FCOS_CENTER_RADIUS = 1.5
# FCOS: a learnable box spans at least one cell of the finest level. Measured on Face Mask (FCOS
# MobileNetV3, crops of 256, 3 epochs): input 384 reached test AP50 0.108, input 576 0.057 — smaller
# inputs (more objects per crop) train better as long as the boxes stay above the stride.
POINTS_MIN_CELLS = 1.0
# The smallest input whose best possible recall on the training boxes reaches this wins. 0.95 chose
# 256 px on Face Mask's training split, where only 84 % of the test boxes were reachable (crowd photos
# of tiny faces fall unevenly between splits); 320 px (97 %) measured test AP50 0.386 against 0.348.
TARGET_RECALL = 0.97
# Crop training (detcore/data/crops.py) cuts crops around objects at the fitted size times a scale
# jitter; prediction then runs on whole images. Run at that same size, the model meets objects smaller
# than in training (the train/test resolution discrepancy FixRes describes), so a crop run with
# ``input_size="auto"`` predicts this much larger, while its crops stay at the fitted size (``crop_input``).
# Measured on Face Mask (cpu-real, crops fitted at 320 px x jitter [0.7, 1.4], 15 min): one model
# predicting at 320 / 384 / 448 px scored test AP50 0.387 / 0.420 / 0.416 (validation 0.475 / 0.497 / 0.476).
CROP_PREDICT_SCALE = 1.2
MINMAX_CANDIDATES = (256, 320, 384, 448, 512, 576, 640, 704, 800, 896, 1024, 1216)
FIXED_CANDIDATES = (256, 320, 384, 448, 512, 576, 640, 704, 800)
MAX_TO_MIN = 1333 / 800  # torchvision's max_size : min_size
FIT_SAMPLE = 1000  # boxes the search scores each candidate on (a fixed random subset; reports use all)


@dataclass(frozen=True)
class Layout:
    """What a model's geometry is made of: the log2 strides of its feature levels, the kind of
    anchors and the default input and anchors (torchvision's values)."""

    levels: tuple[int, ...]  # log2 of each level's stride
    kind: str  # "grid" | "ssd" | "points"
    input: dict
    anchors: dict

    @property
    def strides(self) -> list[int]:
        return [2 ** k for k in self.levels]

    def default_geometry(self) -> dict:
        return {"input": dict(self.input), "anchors": _copy_anchors(self.anchors)}


def _grid(sizes, ratios=(0.5, 1.0, 2.0)) -> dict:
    return {"kind": "grid", "sizes": [list(s) for s in sizes], "aspect_ratios": [list(ratios) for _ in sizes]}


def _retinanet_sizes() -> list[tuple[int, ...]]:
    return [(x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in (32, 64, 128, 256, 512)]


def _ssd_scales(n: int, lo: float = 0.2, hi: float = 0.95) -> list[float]:
    return [lo + (hi - lo) * k / (n - 1.0) for k in range(n)] + [1.0]


_R50_FPN = Layout((2, 3, 4, 5, 6), "grid", {"min_size": 800, "max_size": 1333},
                  _grid([(32,), (64,), (128,), (256,), (512,)]))
_MV3_FPN_SIZES = [(32, 64, 128, 256, 512)] * 3
_RETINA = Layout((3, 4, 5, 6, 7), "grid", {"min_size": 800, "max_size": 1333}, _grid(_retinanet_sizes()))

# Registry model name → layout. tests/models/test_geometry.py checks each against torchvision.
LAYOUTS: dict[str, Layout] = {
    "fasterrcnn_resnet50_fpn": _R50_FPN,
    "fasterrcnn_resnet50_fpn_v2": _R50_FPN,
    "maskrcnn_resnet50_fpn": _R50_FPN,
    "maskrcnn_resnet50_fpn_v2": _R50_FPN,
    # torchvision's MobileNetV3 FPN takes both maps at stride 32 (+ a pooled stride-64 level)
    "fasterrcnn_mobilenet_v3_large_fpn": Layout((5, 5, 6), "grid", {"min_size": 800, "max_size": 1333},
                                                _grid(_MV3_FPN_SIZES)),
    "fasterrcnn_mobilenet_v3_large_320_fpn": Layout((5, 5, 6), "grid", {"min_size": 320, "max_size": 640},
                                                    _grid(_MV3_FPN_SIZES)),
    "fasterrcnn_mobilenet_v2_custom": Layout((5,), "grid", {"min_size": 800, "max_size": 1333},
                                             _grid([(32, 64, 128, 256, 512)])),
    "retinanet_resnet50_fpn": _RETINA,
    "retinanet_resnet50_fpn_v2": _RETINA,
    "fcos_resnet50_fpn": Layout((3, 4, 5, 6, 7), "points", {"min_size": 800, "max_size": 1333},
                                {"kind": "points", "sizes": [[8], [16], [32], [64], [128]]}),
    # detcore.models' light CPU models: MobileNetV3-Large FPN over strides 8..128
    "fcos_mobilenet_v3_fpn8": Layout((3, 4, 5, 6, 7), "points", {"min_size": 512, "max_size": 853},
                                     {"kind": "points", "sizes": [[8], [16], [32], [64], [128]]}),
    "fcos_resnet18_fpn8": Layout((3, 4, 5, 6, 7), "points", {"min_size": 512, "max_size": 853},
                                 {"kind": "points", "sizes": [[8], [16], [32], [64], [128]]}),
    "retinanet_mobilenet_v3_fpn8": Layout((3, 4, 5, 6, 7), "grid", {"min_size": 512, "max_size": 853},
                                          _grid([(x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3)))
                                                 for x in (16, 32, 64, 128, 256)])),
    "ssdlite320_mobilenet_v3_large": Layout((4, 5, 6, 7, 8, 9), "ssd", {"fixed_size": 320},
                                            {"kind": "ssd", "scales": _ssd_scales(6),
                                             "aspect_ratios": [[2.0, 3.0] for _ in range(6)]}),
}


def register_layout(name: str, layout: Layout) -> None:
    """Models defined outside this file (detcore.models' own builders) describe their geometry here."""
    LAYOUTS[name] = layout


def layout_for(model: str) -> Layout:
    try:
        return LAYOUTS[model]
    except KeyError:
        raise ConfigError("model", f"no geometry known for model {model!r}; choose one of: "
                                   f"{', '.join(sorted(LAYOUTS))}") from None


def _copy_anchors(anchors: dict) -> dict:
    return {k: ([list(v) if isinstance(v, (list, tuple)) else v for v in val] if isinstance(val, list) else val)
            for k, val in anchors.items()}


# --- the boxes, as the model sees them --------------------------------------------------------------

@dataclass
class BoxSet:
    """Ground-truth boxes with the size of the image each belongs to (original pixels)."""

    boxes: np.ndarray  # (N, 4) xyxy
    labels: np.ndarray  # (N,) class index
    image_w: np.ndarray  # (N,)
    image_h: np.ndarray  # (N,)
    classes: list[str]
    images: int = 0

    def __len__(self) -> int:
        return len(self.boxes)

    def subset(self, n: int, seed: int = 0) -> "BoxSet":
        """At most ``n`` boxes, a fixed random choice (the fit's search scores candidates on these)."""
        if len(self) <= n:
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return BoxSet(self.boxes[keep], self.labels[keep], self.image_w[keep], self.image_h[keep],
                      self.classes, self.images)


def boxes_from_samples(samples: Iterable, classes: Sequence[str]) -> BoxSet:
    """Every non-crowd box of ``samples`` with its image size (read from the image header when the
    annotation did not give it)."""
    boxes, labels, ws, hs, n_images = [], [], [], [], 0
    for s in samples:
        n_images += 1
        if not len(s.boxes):
            continue
        w, h = s.width, s.height
        if not w or not h:
            w, h = image_size(s.image_path)
        keep = ~np.asarray(s.iscrowd, bool) if s.iscrowd is not None else np.ones(len(s.boxes), bool)
        b = np.asarray(s.boxes, np.float64)[keep]
        ok = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        boxes.append(b[ok])
        labels.append(np.asarray(s.labels)[keep][ok])
        ws.append(np.full(int(ok.sum()), float(w)))
        hs.append(np.full(int(ok.sum()), float(h)))
    if not boxes:
        return BoxSet(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0), np.zeros(0), list(classes), n_images)
    return BoxSet(np.concatenate(boxes), np.concatenate(labels).astype(np.int64), np.concatenate(ws),
                  np.concatenate(hs), list(classes), n_images)


@dataclass
class Resized:
    """Boxes in model-input pixels and the padded input each lives in."""

    boxes: np.ndarray  # (N, 4)
    pad_w: np.ndarray  # (N,) int
    pad_h: np.ndarray


def resize(boxset: BoxSet, input_spec: dict) -> Resized:
    """The model's own resize (torchvision GeneralizedRCNNTransform) applied to the boxes."""
    w, h = boxset.image_w, boxset.image_h
    if "fixed_size" in input_spec:
        n = int(input_spec["fixed_size"])
        new_w = np.full_like(w, n)
        new_h = np.full_like(h, n)
        pad_w, pad_h = new_w.astype(np.int64), new_h.astype(np.int64)
    else:
        lo, hi = float(input_spec["min_size"]), float(input_spec["max_size"])
        # as torchvision (eager): a double scale, then interpolate(recompute_scale_factor=True)
        # floors size * scale
        scale = np.minimum(lo / np.minimum(w, h), hi / np.maximum(w, h))
        new_w, new_h = np.floor(w * scale), np.floor(h * scale)
        pad_w = (np.ceil(new_w / SIZE_DIVISIBLE) * SIZE_DIVISIBLE).astype(np.int64)
        pad_h = (np.ceil(new_h / SIZE_DIVISIBLE) * SIZE_DIVISIBLE).astype(np.int64)
    b = boxset.boxes * np.stack([new_w / w, new_h / h, new_w / w, new_h / h], axis=1)
    return Resized(b, pad_w, pad_h)


def _cells(size: np.ndarray, log2_stride: int) -> np.ndarray:
    """Feature-map cells along one side: stride-2 convolutions (padding k//2) halve with ceil."""
    out = size.astype(np.int64)
    for _ in range(log2_stride):
        out = -(-out // 2)
    return out


# --- the anchors ------------------------------------------------------------------------------------

def _grid_cell_anchors(sizes: Sequence[float], ratios: Sequence[float]) -> np.ndarray:
    """AnchorGenerator.generate_anchors: (A, 4) zero-centred boxes, rounded half to even like torch.round."""
    scales = np.asarray(sizes, np.float32)
    ar = np.asarray(ratios, np.float32)
    h_ratios = np.sqrt(ar)
    w_ratios = (np.float32(1) / h_ratios).astype(np.float32)
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1).astype(np.float32) / np.float32(2)).astype(np.float64)


def _ssd_wh(scales: Sequence[float], ratios: Sequence[Sequence[float]]) -> list[np.ndarray]:
    """DefaultBoxGenerator._generate_wh_pairs (clipped to [0, 1]) as fractions of the input."""
    out = []
    for k, level_ratios in enumerate(ratios):
        s_k, s_prime = scales[k], math.sqrt(scales[k] * scales[k + 1])
        pairs = [[s_k, s_k], [s_prime, s_prime]]
        for ar in level_ratios:
            q = math.sqrt(ar)
            pairs += [[s_k * q, s_k / q], [s_k / q, s_k * q]]
        out.append(np.clip(np.asarray(pairs, np.float32), 0, 1).astype(np.float64))
    return out


def anchors_per_location(anchors: dict) -> list[int]:
    if anchors["kind"] == "grid":
        return [len(s) * len(r) for s, r in zip(anchors["sizes"], anchors["aspect_ratios"])]
    if anchors["kind"] == "ssd":
        return [2 + 2 * len(r) for r in anchors["aspect_ratios"]]
    return [1 for _ in anchors["sizes"]]


def anchor_shapes(layout: Layout, geometry: dict) -> list[dict]:
    """One row per anchor shape: level, stride, width, height in model-input pixels (SSD: at its input)."""
    anchors, rows = geometry["anchors"], []
    if anchors["kind"] == "grid":
        for lvl, (sizes, ratios) in enumerate(zip(anchors["sizes"], anchors["aspect_ratios"])):
            for x0, y0, x1, y1 in _grid_cell_anchors(sizes, ratios):
                rows.append({"level": lvl, "stride": layout.strides[lvl], "width": x1 - x0, "height": y1 - y0})
    elif anchors["kind"] == "ssd":
        n = float(geometry["input"]["fixed_size"])
        for lvl, wh in enumerate(_ssd_wh(anchors["scales"], anchors["aspect_ratios"])):
            for w, h in wh:
                rows.append({"level": lvl, "stride": layout.strides[lvl], "width": w * n, "height": h * n})
    else:
        for lvl, (s,) in enumerate(anchors["sizes"]):
            rows.append({"level": lvl, "stride": layout.strides[lvl], "width": float(s), "height": float(s)})
    return rows


def all_anchors(layout: Layout, geometry: dict, image_h: int, image_w: int) -> np.ndarray:
    """Every anchor (xyxy, model-input pixels) of one resized image (height, width before padding),
    in torchvision's order — for tests and plots, not used by the recall computation."""
    pad_h, pad_w = _padded(geometry["input"], image_h, image_w)
    anchors, out = geometry["anchors"], []
    for lvl, k in enumerate(layout.levels):
        gh, gw = int(_cells(np.array([pad_h]), k)[0]), int(_cells(np.array([pad_w]), k)[0])
        if anchors["kind"] in ("grid", "points"):
            ratios = anchors["aspect_ratios"][lvl] if anchors["kind"] == "grid" else [1.0]
            base = _grid_cell_anchors(anchors["sizes"][lvl], ratios)
            sy, sx = pad_h // gh, pad_w // gw
            ys, xs = np.meshgrid(np.arange(gh) * sy, np.arange(gw) * sx, indexing="ij")
            shifts = np.stack([xs.ravel(), ys.ravel(), xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
            out.append((shifts[:, None, :] + base[None, :, :]).reshape(-1, 4))
        else:
            wh = _ssd_wh(anchors["scales"], anchors["aspect_ratios"])[lvl]
            cy, cx = np.meshgrid((np.arange(gh) + 0.5) / gh, (np.arange(gw) + 0.5) / gw, indexing="ij")
            centres = np.stack([cx.ravel(), cy.ravel()], axis=1).astype(np.float32)
            c = np.repeat(centres, len(wh), axis=0)
            s = np.tile(wh.astype(np.float32), (gh * gw, 1))
            scale = np.array([pad_w, pad_h], np.float32)
            out.append(np.concatenate([(c - 0.5 * s) * scale, (c + 0.5 * s) * scale], axis=1).astype(np.float64))
    return np.concatenate(out)


def _padded(input_spec: dict, h: int, w: int) -> tuple[int, int]:
    if "fixed_size" in input_spec:
        return int(input_spec["fixed_size"]), int(input_spec["fixed_size"])
    return (int(math.ceil(h / SIZE_DIVISIBLE) * SIZE_DIVISIBLE), int(math.ceil(w / SIZE_DIVISIBLE) * SIZE_DIVISIBLE))


# --- best possible recall ---------------------------------------------------------------------------

def _iou_nearest(b: np.ndarray, ax0, ay0, ax1, ay1) -> np.ndarray:
    """IoU of boxes (N, 4) with anchors given as (N, A) coordinate arrays; best over A, per box."""
    bx0, by0, bx1, by1 = (b[:, i:i + 1] for i in range(4))
    iw = np.clip(np.minimum(bx1, ax1) - np.maximum(bx0, ax0), 0, None)
    ih = np.clip(np.minimum(by1, ay1) - np.maximum(by0, ay0), 0, None)
    inter = iw * ih
    union = (bx1 - bx0) * (by1 - by0) + (ax1 - ax0) * (ay1 - ay0) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).max(axis=1)


def best_iou(layout: Layout, geometry: dict, resized: Resized) -> np.ndarray:
    """For each box, the best IoU any anchor reaches (grid / SSD), or for FCOS 1.0 when some point
    is assigned to it and 0.0 otherwise.

    Along each axis the overlap of two boxes of fixed sizes only shrinks as their centres move
    apart, so on a regular grid the best anchor of a given shape is the one whose centre is
    nearest the box's centre (clamped to the grid); one candidate per shape and level suffices.
    """
    anchors, b = geometry["anchors"], resized.boxes
    best = np.zeros(len(b))
    if not len(b):
        return best
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    if anchors["kind"] == "points":
        return _fcos_assignable(layout, anchors, resized).astype(np.float64)
    for lvl, k in enumerate(layout.levels):
        gh, gw = _cells(resized.pad_h, k)[:, None], _cells(resized.pad_w, k)[:, None]
        ph, pw = resized.pad_h[:, None], resized.pad_w[:, None]
        if anchors["kind"] == "grid":
            base = _grid_cell_anchors(anchors["sizes"][lvl], anchors["aspect_ratios"][lvl])  # (A, 4)
            sy, sx = ph // gh, pw // gw
            ox, oy = (base[:, 0] + base[:, 2]) / 2, (base[:, 1] + base[:, 3]) / 2
            ix = np.clip(np.round((cx[:, None] - ox) / sx), 0, gw - 1) * sx
            iy = np.clip(np.round((cy[:, None] - oy) / sy), 0, gh - 1) * sy
            iou = _iou_nearest(b, ix + base[:, 0], iy + base[:, 1], ix + base[:, 2], iy + base[:, 3])
        else:
            wh = _ssd_wh(anchors["scales"], anchors["aspect_ratios"])[lvl]  # (A, 2)
            aw, ah = wh[:, 0] * pw, wh[:, 1] * ph
            ix = (np.clip(np.round(cx[:, None] / pw * gw - 0.5), 0, gw - 1) + 0.5) / gw * pw
            iy = (np.clip(np.round(cy[:, None] / ph * gh - 0.5), 0, gh - 1) + 0.5) / gh * ph
            iou = _iou_nearest(b, ix - aw / 2, iy - ah / 2, ix + aw / 2, iy + ah / 2)
        best = np.maximum(best, iou)
    return best


def _fcos_assignable(layout: Layout, anchors: dict, resized: Resized) -> np.ndarray:
    """torchvision FCOS.compute_loss's matching rule, per box: is any point of any level positive?"""
    b = resized.boxes
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    ok = np.zeros(len(b), bool)
    n_levels = len(layout.levels)
    for lvl, k in enumerate(layout.levels):
        gh, gw = _cells(resized.pad_h, k), _cells(resized.pad_w, k)
        sy, sx = resized.pad_h // gh, resized.pad_w // gw
        (x0, y0, x1, _), = _grid_cell_anchors(anchors["sizes"][lvl], [1.0])
        size, off = x1 - x0, (x0 + x1) / 2  # the anchor's width sets radius and scale range
        lo = 0.0 if lvl == 0 else size * 4
        hi = math.inf if lvl == n_levels - 1 else size * 8
        for di in range(-2, 3):
            for dj in range(-2, 3):
                px = np.clip(np.round((cx - off) / sx) + dj, 0, gw - 1) * sx + off
                py = np.clip(np.round((cy - off) / sy) + di, 0, gh - 1) * sy + off
                near = np.maximum(np.abs(px - cx), np.abs(py - cy)) < FCOS_CENTER_RADIUS * size
                d = np.stack([px - b[:, 0], py - b[:, 1], b[:, 2] - px, b[:, 3] - py], axis=1)
                inside = d.min(axis=1) > 0
                far = d.max(axis=1)
                ok |= near & inside & (far > lo) & (far < hi)
    return ok


def matched(layout: Layout, geometry: dict, resized: Resized, *, iou: float = IOU_THRESHOLD) -> np.ndarray:
    """Which boxes the model can learn: an anchor at IoU >= ``iou``; for FCOS (points) a point
    torchvision assigns to the box *and* a box spanning ``POINTS_MIN_CELLS`` cell of the finest
    level — a smaller one gets a point only where the grid happens to fall inside it and falls
    between the feature map's samples."""
    best = best_iou(layout, geometry, resized)
    if layout.kind != "points":
        return best >= iou
    b = resized.boxes
    side = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    return (best > 0) & (side >= POINTS_MIN_CELLS * layout.strides[0])


def recall_report(layout: Layout, geometry: dict, boxset: BoxSet, *, iou: float = IOU_THRESHOLD) -> dict:
    """Best possible recall overall, per class and per COCO size bucket (model-input pixels)."""
    resized = resize(boxset, geometry["input"])
    best = best_iou(layout, geometry, resized)
    hit = matched(layout, geometry, resized, iou=iou)
    b = resized.boxes
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    per_class = {}
    for i, name in enumerate(boxset.classes):
        m = boxset.labels == i
        per_class[name] = {"boxes": int(m.sum()), "best_possible_recall": _share(hit[m])}
    per_size = {}
    for name, lo, hi in SIZE_BUCKETS:
        m = (area >= lo) & (area < hi)
        per_size[name] = {"boxes": int(m.sum()), "best_possible_recall": _share(hit[m])}
    side = np.sqrt(area)
    return {
        "best_possible_recall": _share(hit),
        "boxes": int(len(b)),
        "mean_best_iou": float(best.mean()) if len(b) and layout.kind != "points" else None,
        "per_class": per_class,
        "per_size": per_size,
        "median_box_px": float(np.median(side)) if len(b) else None,
        "geometry": {"input": dict(geometry["input"]), "anchors": _copy_anchors(geometry["anchors"])},
        "anchor_sizes_px": sorted({round(math.sqrt(r["width"] * r["height"]), 1)
                                   for r in anchor_shapes(layout, geometry)}),
    }


def _share(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if len(mask) else None


def best_possible_recall(layout: Layout, geometry: dict, boxset: BoxSet, *, iou: float = IOU_THRESHOLD) -> float:
    hit = matched(layout, geometry, resize(boxset, geometry["input"]), iou=iou)
    return float(hit.mean()) if len(hit) else 0.0


# --- fitting ---------------------------------------------------------------------------------------

def _ratio_quantiles(resized: Resized, n: int) -> list[float]:
    """``n`` aspect ratios (height / width) at evenly spaced quantiles of the boxes' log ratio."""
    b = resized.boxes
    log_r = np.log((b[:, 3] - b[:, 1]) / (b[:, 2] - b[:, 0]))
    qs = [(i + 0.5) / n for i in range(n)]
    return [round(float(np.exp(np.quantile(log_r, q))), 3) for q in qs]


def _geometric(lo: float, hi: float, n: int) -> list[float]:
    if n == 1:
        return [lo]
    return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]


def _score(layout: Layout, geometry: dict, resized: Resized) -> tuple[float, float]:
    best = best_iou(layout, geometry, resized)
    return float((best >= IOU_THRESHOLD).mean()), float(best.mean())


def _size_grid(resized: Resized) -> np.ndarray:
    b = resized.boxes
    side = np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
    lo, hi = max(float(np.quantile(side, 0.01)), 2.0), max(float(np.quantile(side, 0.99)), 4.0)
    return np.exp(np.linspace(np.log(lo / 1.5), np.log(hi * 1.5), 10))


def fit_anchors(layout: Layout, input_spec: dict, boxset: BoxSet, *, reference: dict | None = None) -> dict:
    """Anchors for ``input_spec`` fitted to ``boxset``, with the same count per location as
    ``reference`` (the model's default anchors). FCOS keeps its points (nothing to fit)."""
    reference = reference or layout.anchors
    kind = reference["kind"]
    if kind == "points" or not len(boxset):
        return _copy_anchors(reference)
    resized = resize(boxset.subset(FIT_SAMPLE), input_spec)
    geometry = {"input": dict(input_spec)}
    sizes_grid = _size_grid(resized)
    best, best_key = None, None
    if kind == "grid":
        n_levels = len(reference["sizes"])
        n_sizes = len(reference["sizes"][0])
        ratios = _ratio_quantiles(resized, len(reference["aspect_ratios"][0]))
        total = n_levels * n_sizes
        for i, lo in enumerate(sizes_grid):
            for hi in sizes_grid[i:]:
                series = _geometric(lo, hi, total)
                anchors = {"kind": "grid",
                           "sizes": [[round(float(s), 1) for s in series[l * n_sizes:(l + 1) * n_sizes]]
                                     for l in range(n_levels)],
                           "aspect_ratios": [list(ratios) for _ in range(n_levels)]}
                key = _score(layout, {**geometry, "anchors": anchors}, resized)
                if best_key is None or key > best_key:
                    best, best_key = anchors, key
    else:  # ssd: scales are fractions of the fixed input; two default boxes per scale + ratio pairs
        n = float(input_spec["fixed_size"])
        n_levels = len(reference["aspect_ratios"])
        n_ratios = len(reference["aspect_ratios"][0])
        b = resized.boxes
        wide = np.abs(np.log((b[:, 3] - b[:, 1]) / (b[:, 2] - b[:, 0])))
        ratios = [round(max(float(np.exp(2 * np.quantile(wide, (i + 1) / (n_ratios + 1)))), 1.1), 2)
                  for i in range(n_ratios)]
        for i, lo in enumerate(sizes_grid):
            for hi in sizes_grid[i:]:
                scales = [min(s / n, 1.0) for s in _geometric(lo, hi, n_levels)]
                scales.append(min(scales[-1] * (scales[-1] / scales[-2] if n_levels > 1 else 1.5), 1.0))
                anchors = {"kind": "ssd", "scales": [round(float(s), 4) for s in scales],
                           "aspect_ratios": [list(ratios) for _ in range(n_levels)]}
                key = _score(layout, {**geometry, "anchors": anchors}, resized)
                if best_key is None or key > best_key:
                    best, best_key = anchors, key
    full = resize(boxset, input_spec)  # the winner must beat the default on every box, not only the sample
    if _score(layout, {**geometry, "anchors": best}, full) > _score(layout, {**geometry, "anchors": reference}, full):
        return best
    return _copy_anchors(reference)


def _input_candidates(layout: Layout) -> list[dict]:
    if "fixed_size" in layout.input:
        return [{"fixed_size": n} for n in FIXED_CANDIDATES]
    return [{"min_size": n, "max_size": int(round(n * MAX_TO_MIN))} for n in MINMAX_CANDIDATES]


def input_spec_for(layout: Layout, size: int) -> dict:
    """``input_size: N``: SSD's square side, or min_size N with max_size keeping torchvision's 5:3."""
    if "fixed_size" in layout.input:
        return {"fixed_size": int(size)}
    return {"min_size": int(size), "max_size": int(round(size * MAX_TO_MIN))}


def resize_spec_with_overrides(layout: Layout, min_size: int | None, max_size: int | None) -> dict:
    """The input spec of a config that sets min_size / max_size itself (unset ones keep the layout's)."""
    if "fixed_size" in layout.input:
        return dict(layout.input)
    return {"min_size": int(min_size or layout.input["min_size"]), "max_size": int(max_size or layout.input["max_size"])}


def same_geometry(a: dict | None, b: dict | None) -> bool:
    """Do two stored geometries build the same model (input size and anchors; fit notes ignored)?"""
    if a is None or b is None:
        return a is None and b is None
    return _plain(a.get("input")) == _plain(b.get("input")) and _plain(a.get("anchors")) == _plain(b.get("anchors"))


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool):
        return round(float(x), 4)
    return x


def describe(geometry: dict | None) -> str:
    """One line for messages: input size and the anchor sizes."""
    if geometry is None:
        return "torchvision's default input size and anchors"
    inp = geometry["input"]
    size = f"{inp['fixed_size']}x{inp['fixed_size']}" if "fixed_size" in inp else \
        f"min_size {inp['min_size']} / max_size {inp['max_size']}"
    a = geometry["anchors"]
    if a["kind"] == "grid":
        anchors = "anchor sizes " + ", ".join("/".join(f"{x:g}" for x in s) for s in a["sizes"])
    elif a["kind"] == "ssd":
        anchors = "default-box scales " + ", ".join(f"{x:g}" for x in a["scales"])
    else:
        anchors = "points (no anchors)"
    crops = f", crops cut at min_size {geometry['crop_input']['min_size']}" if geometry.get("crop_input") else ""
    return f"{size}, {anchors}{crops}"


def input_size_of(input_spec: dict) -> int:
    return int(input_spec.get("fixed_size") or input_spec["min_size"])


def fit_geometry(model: str, boxset: BoxSet, *, anchors: str | dict = "auto", input_size: str | int = "auto",
                 max_input: int | None = None, target: float = TARGET_RECALL, crops: bool = False) -> dict:
    """Resolve ``anchors`` ("default" | "auto" | explicit dict) and ``input_size`` ("default" |
    "auto" | N) for ``model`` on ``boxset`` into a full geometry, plus what the fit found.

    With ``input_size="auto"`` each candidate size (up to ``max_input``) is tried with its own
    fitted (or the requested) anchors; the smallest one whose recall reaches
    ``min(target, best - 0.02)`` wins — larger inputs cost time for little recall. With ``crops``
    (crop training) and ``input_size="auto"`` that size is where crops are cut (``crop_input``) and
    the model predicts at ``CROP_PREDICT_SCALE`` times it (``input``; min_size/max_size models only).
    """
    layout = layout_for(model)
    if isinstance(anchors, dict):
        check_anchors(layout, anchors)
    elif anchors not in ("default", "auto"):
        raise ConfigError("anchors", f"{anchors!r} is not default, auto or an explicit anchor specification")
    if isinstance(input_size, dict):  # an input spec as such (a config's own min_size / max_size)
        candidates = [dict(input_size)]
    elif input_size == "default":
        candidates = [dict(layout.input)]
    elif input_size == "auto":
        candidates = [c for c in _input_candidates(layout) if max_input is None or input_size_of(c) <= max_input]
        candidates = candidates or [dict(layout.input)]
    else:
        candidates = [input_spec_for(layout, _checked_size(input_size))]

    def anchors_for(spec: dict) -> dict:
        if isinstance(anchors, dict):
            return _copy_anchors(anchors)
        if anchors == "default" or not len(boxset):
            return _copy_anchors(layout.anchors)
        return fit_anchors(layout, spec, boxset)

    tried, sample = [], boxset.subset(FIT_SAMPLE)
    for spec in candidates:
        geometry = {"input": spec, "anchors": anchors_for(spec)}
        recall = best_possible_recall(layout, geometry, sample) if len(sample) else 0.0
        tried.append((spec, geometry, recall))
    if len(tried) == 1:
        chosen = tried[0]
    else:
        top = max(r for _, _, r in tried)
        goal = min(target, top - 0.02)
        chosen = next(t for t in tried if t[2] >= goal)
    crop_input = None
    if crops and input_size == "auto" and "min_size" in chosen[1]["input"]:
        crop_input = chosen[1]["input"]
        size = input_size_of(crop_input)
        predict = max(size, int(round(size * CROP_PREDICT_SCALE / SIZE_DIVISIBLE)) * SIZE_DIVISIBLE)
        if max_input is not None:
            predict = max(size, min(predict, int(max_input)))
        spec = input_spec_for(layout, predict)
        chosen = (spec, {"input": spec, "anchors": chosen[1]["anchors"] if isinstance(anchors, dict) or
                         anchors == "default" else anchors_for(spec)}, None)
    return {"model": model, "input": chosen[1]["input"], "anchors": chosen[1]["anchors"],
            **({"crop_input": crop_input} if crop_input is not None else {}),
            "best_possible_recall": best_possible_recall(layout, chosen[1], boxset) if len(boxset) else 0.0,
            "input_candidates": [{"input_size": input_size_of(s), "best_possible_recall": round(r, 4)}
                                 for s, _, r in tried] if len(tried) > 1 else []}


def _checked_size(size) -> int:
    try:
        n = int(size)
    except (TypeError, ValueError):
        raise ConfigError("input_size", f"{size!r} is not default, auto or a number of pixels") from None
    if n < 32 or n > 4096:
        raise ConfigError("input_size", f"must be between 32 and 4096 pixels (got {n})")
    return n


def check_anchors(layout: Layout, anchors: dict) -> None:
    """Refuse an explicit anchor specification that the model cannot use, naming the problem."""
    kind = layout.anchors["kind"]
    n = len(layout.levels)
    if not isinstance(anchors, dict) or anchors.get("kind", kind) != kind:
        raise ConfigError("anchors", f"this model needs {kind!r} anchors (see Geometry in docs/architecture.md)")
    if kind == "points":
        raise ConfigError("anchors", "FCOS has no anchors to set; use anchors=default")
    ratios = anchors.get("aspect_ratios")
    if not isinstance(ratios, list) or len(ratios) != n or not all(isinstance(r, list) and r for r in ratios):
        raise ConfigError("anchors", f"aspect_ratios must be {n} non-empty lists, one per feature level")
    if any(not isinstance(x, (int, float)) or not x > 0 for r in ratios for x in r):
        raise ConfigError("anchors", "aspect ratios must be positive numbers")
    if kind == "grid":
        sizes = anchors.get("sizes")
        if not isinstance(sizes, list) or len(sizes) != n or not all(isinstance(s, list) and s for s in sizes):
            raise ConfigError("anchors", f"sizes must be {n} non-empty lists of pixel sizes, one per feature level")
        if any(not isinstance(x, (int, float)) or not x >= 1 for s in sizes for x in s):
            raise ConfigError("anchors", "anchor sizes must be numbers of pixels >= 1")
        if len({len(s) * len(r) for s, r in zip(sizes, ratios)}) != 1:
            raise ConfigError("anchors", "every level needs the same number of anchors (sizes x aspect ratios)")
    else:
        scales = anchors.get("scales")
        if not isinstance(scales, list) or len(scales) != n + 1:
            raise ConfigError("anchors", f"scales must list {n + 1} fractions of the input size")
        if any(not isinstance(x, (int, float)) or not 0 < x <= 1 for x in scales):
            raise ConfigError("anchors", "scales must be fractions of the input size in (0, 1]")


def normalise_anchors(layout: Layout, anchors: dict) -> dict:
    """An explicit specification with the model's anchor kind filled in and numbers as floats."""
    check_anchors(layout, anchors)
    out = {"kind": layout.anchors["kind"],
           "aspect_ratios": [[float(x) for x in r] for r in anchors["aspect_ratios"]]}
    if out["kind"] == "grid":
        out["sizes"] = [[float(x) for x in s] for s in anchors["sizes"]]
    else:
        out["scales"] = [float(x) for x in anchors["scales"]]
    return out


def compare(model: str, boxset: BoxSet, *, fitted: dict | None = None, max_input: int | None = None) -> dict:
    """The ``inspect --fit`` object: recall of the model's default geometry and of the fitted one."""
    layout = layout_for(model)
    default = recall_report(layout, layout.default_geometry(), boxset)
    if fitted is None:
        fitted = fit_geometry(model, boxset, max_input=max_input)
    fitted_report = recall_report(layout, {"input": fitted["input"], "anchors": fitted["anchors"]}, boxset)
    if fitted.get("input_candidates"):
        fitted_report["input_candidates"] = fitted["input_candidates"]
    if fitted.get("crop_input"):
        fitted_report["crop_input"] = fitted["crop_input"]
    return {"model": model, "kind": layout.kind, "images": boxset.images, "default": default, "fitted": fitted_report}


def head_notes(model: str, anchors: dict, weights: str) -> dict:
    """What happens to pretrained heads with these anchors: {"reinitialised": [...], "kept": [...]}.
    A head predicts a fixed number of anchors per location, so it keeps its pretrained weights
    exactly when the count is the default's (fitted anchors always keep it)."""
    layout = layout_for(model)
    pretrained = weights not in ("none",)
    same = anchors_per_location(anchors) == anchors_per_location(layout.anchors)
    changed = _plain(anchors) != _plain(layout.anchors)
    out = {"reinitialised": [], "kept": []}
    if weights == "coco":
        out["reinitialised"].append("the class-specific output layers (sized for your classes)")
    if not same:
        out["reinitialised"].append(f"the anchor-dependent head ({anchors_per_location(layout.anchors)[0]} → "
                                    f"{anchors_per_location(anchors)[0]} anchors per location)")
    elif changed and weights == "coco":
        out["kept"].append(f"the box head's weights ({anchors_per_location(anchors)[0]} anchors per location as "
                           "before; it now predicts offsets from the fitted anchors, which fine-tuning adapts)")
    if not pretrained:
        out = {"reinitialised": [], "kept": []}  # everything starts from scratch anyway
    return out

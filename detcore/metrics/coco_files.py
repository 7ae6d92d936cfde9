"""COCO ground-truth JSON + COCO results JSON → Samples / Detections, and exact evaluation of them.

This is deliberately not the dataset reader (``detcore.data.coco``): a metric tool must see the
boxes exactly as pycocotools does — no clipping, no dropping of degenerate boxes, float64 boxes
and scores — so that ``evaluate --gt --dt`` reproduces COCOeval on the same files. Classes are the
categories sorted by id; images are sorted by id (pycocotools' order, which breaks score ties).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detcore.errors import DataError
from detcore.metrics import masks as mask_ops
from detcore.metrics.inputs import flatten_inputs
from detcore.metrics.result import evaluate_flat
from detcore.structures import Detections, Sample


def _read_json(path: str | Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(path, f"not readable JSON ({e})") from None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)  # JSON true is a Python int


def _shown(v) -> str:
    """A value as the JSON file spells it (NaN, Infinity, true), so the user can find it."""
    return json.dumps(v, allow_nan=True)


def _xywh(ann: dict, path, what: str) -> list[float]:
    box = ann.get("bbox")
    if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
        raise DataError(path, f"{what} has no valid 'bbox' [x, y, w, h] (got {_shown(box)})")
    if not all(np.isfinite(box)):
        raise DataError(path, f"{what} has a non-finite 'bbox' {_shown(box)}")
    for value, side in zip(box[2:], ("width", "height")):
        if value < 0:
            raise DataError(path, f"{what} has a negative {side} in 'bbox' {_shown(box)} ([x, y, width, height])")
    return [float(v) for v in box]


def _number(value, path, what: str, key: str) -> float:
    if not _is_number(value):
        raise DataError(path, f"{what} has no numeric '{key}' (got {_shown(value)})")
    if not np.isfinite(value):
        raise DataError(path, f"{what} has a non-finite '{key}' ({_shown(value)})")
    return float(value)


class CocoFiles:
    """The parsed pair of files: ``samples``, ``detections``, ``classes`` plus exact float64 arrays."""

    def __init__(self, gt_json: str | Path, dt_json: str | Path, *, iou_type: str = "bbox"):
        self.gt_path, self.dt_path, self.iou_type = Path(gt_json), Path(dt_json), iou_type
        self._read_gt(_read_json(gt_json))
        self._read_dt(_read_json(dt_json))

    def _read_gt(self, data) -> None:
        path = self.gt_path
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
            raise DataError(path, "not a COCO ground-truth file (needs lists 'images', 'annotations', 'categories')")
        try:
            cats = sorted(data["categories"], key=lambda c: c["id"])
            self.cat_index = {c["id"]: i for i, c in enumerate(cats)}
            self.classes = [str(c.get("name", c["id"])) for c in cats]
            images = sorted(data["images"], key=lambda im: im["id"])
        except (KeyError, TypeError) as e:
            raise DataError(path, f"category or image entry without a usable 'id' ({e})") from None
        if not self.classes:
            raise DataError(path, "no categories")
        self.image_index = {im["id"]: i for i, im in enumerate(images)}
        per_image: list[list[dict]] = [[] for _ in images]
        for ann in data["annotations"]:
            if not isinstance(ann, dict) or ann.get("image_id") not in self.image_index:
                raise DataError(path, f"annotation {ann.get('id') if isinstance(ann, dict) else ann!r} refers to an unknown image")
            if ann.get("category_id") not in self.cat_index:
                raise DataError(path, f"annotation {ann.get('id')} has unknown category_id {ann.get('category_id')!r}")
            per_image[self.image_index[ann["image_id"]]].append(ann)
        self.samples, boxes, areas = [], [], []
        for im, anns in zip(images, per_image):
            xywh = np.array([_xywh(a, path, f"annotation {a.get('id')}") for a in anns], dtype=np.float64).reshape(-1, 4)
            area = np.array([_number(a["area"], path, f"annotation {a.get('id')}", "area") if "area" in a
                             else xywh[j, 2] * xywh[j, 3] for j, a in enumerate(anns)])
            segs = [a.get("segmentation") for a in anns] if self.iou_type == "segm" else None
            self.samples.append(Sample(str(im["id"]), Path(str(im.get("file_name", im["id"]))), im.get("width"), im.get("height"),
                                       boxes=_to_xyxy(xywh), labels=[self.cat_index[a["category_id"]] for a in anns],
                                       iscrowd=[bool(a.get("iscrowd", 0)) for a in anns], segmentations=segs, areas=area))
            boxes.append(xywh)
            areas.append(area)
        self.gt_xywh = np.concatenate(boxes) if boxes else np.zeros((0, 4))

    def _read_dt(self, data) -> None:
        path = self.dt_path
        if isinstance(data, dict) and isinstance(data.get("annotations"), list):
            data = data["annotations"]  # a whole COCO file used as results
        if not isinstance(data, list):
            raise DataError(path, "not a COCO results file (needs a list of {image_id, category_id, bbox, score})")
        per_image: dict[int, list[int]] = {}
        for j, d in enumerate(data):
            if not isinstance(d, dict) or d.get("image_id") not in self.image_index:
                raise DataError(path, f"result {j} refers to image {d.get('image_id') if isinstance(d, dict) else d!r} not in the ground truth")
            if d.get("category_id") not in self.cat_index:
                raise DataError(path, f"result {j} has unknown category_id {d.get('category_id')!r}")
            _number(d.get("score"), path, f"result {j}", "score")
            if self.iou_type == "segm" and "segmentation" not in d:
                raise DataError(path, f"result {j} has no 'segmentation' (needed for --iou-type segm)")
            per_image.setdefault(self.image_index[d["image_id"]], []).append(j)
        order = [j for i in sorted(per_image) for j in per_image[i]]
        self.results_have_bbox = bool(data) and "bbox" in data[0] and data[0]["bbox"] != []
        self.dt_rles = [self._dt_rle(data[j]) for j in order] if self.iou_type == "segm" else []
        xywh = np.array([self._dt_xywh(data[j], j, k, path) for k, j in enumerate(order)], dtype=np.float64).reshape(-1, 4)
        self.dt_xywh, self.dt_score = xywh, np.array([float(data[j]["score"]) for j in order])
        self.detections, pos = [], 0
        for i in sorted(per_image):
            js = per_image[i]
            self.detections.append(Detections(self.samples[i].image_id, _to_xyxy(xywh[pos : pos + len(js)]),
                                              self.dt_score[pos : pos + len(js)],
                                              [self.cat_index[data[j]["category_id"]] for j in js]))
            pos += len(js)

    def _dt_rle(self, d: dict) -> dict:
        s = self.samples[self.image_index[d["image_id"]]]
        segm = d["segmentation"]
        return mask_ops.segmentation_to_rle(segm, int(s.height or 0), int(s.width or 0))

    def _dt_xywh(self, d: dict, j: int, k: int, path) -> list[float]:
        """Result ``j`` of the file (the ``k``-th in image order) as float xywh."""
        if "bbox" in d:
            return _xywh(d, path, f"result {j}")
        return [float(v) for v in mask_ops.mask_utils.toBbox(self.dt_rles[k])]


def _to_xyxy(xywh: np.ndarray) -> np.ndarray:
    return np.column_stack([xywh[:, 0], xywh[:, 1], xywh[:, 0] + xywh[:, 2], xywh[:, 1] + xywh[:, 3]])


def load_coco_files(gt_json: str | Path, dt_json: str | Path, *, iou_type: str = "bbox"):
    """→ (samples, detections, classes). Boxes become float32 xyxy (our convention)."""
    files = CocoFiles(gt_json, dt_json, iou_type=iou_type)
    return files.samples, files.detections, files.classes


def evaluate_coco_files(gt_json: str | Path, dt_json: str | Path, *, iou_type: str = "bbox", iou_thresholds=None):
    """Evaluate a pair of COCO files with pycocotools' exact inputs (float64 xywh and scores)."""
    files = CocoFiles(gt_json, dt_json, iou_type=iou_type)
    flat = flatten_inputs(files.samples, files.detections, len(files.classes), iou_type="bbox")
    flat.gt.box, flat.dt.box, flat.dt.score = files.gt_xywh, files.dt_xywh, files.dt_score
    flat.dt.area = files.dt_xywh[:, 2] * files.dt_xywh[:, 3]
    if iou_type == "segm":
        flat.iou_type = "segm"
        flat.gt_rles = [r for s in files.samples for r in mask_ops.sample_rles(s)]
        flat.dt_rles = files.dt_rles
        if not files.results_have_bbox:  # loadRes: box area when results have a bbox, else mask area
            flat.dt.area = mask_ops.rle_area(flat.dt_rles)
    return evaluate_flat(flat, files.classes, iou_type=iou_type, iou_thresholds=iou_thresholds)

"""Ground truth and predictions as COCO JSON (for pycocotools, other tools, and our own oracle tests).

Image ids: COCO wants positive integers. ``coco_image_id_map`` keeps ids that already are
positive integers and otherwise numbers images 1..N in the given order, so the same list of
image ids always gives the same mapping for gt and detections. Annotation ids start at 1
(pycocotools treats id 0 as "no match"). Categories are class index + 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detcore.atomic import write_json
from detcore.metrics import masks as mask_ops
from detcore.metrics.inputs import xyxy_to_xywh
from detcore.structures import Detections, Sample


def coco_image_id_map(image_ids: list[str]) -> dict[str, int]:
    as_int = [_positive_int(i) for i in image_ids]
    ordered = all(v is not None for v in as_int) and all(a < b for a, b in zip(as_int, as_int[1:]))
    # keep numeric ids only when their order equals the given order: ties between images are
    # broken by image order, so renumbering must not reorder them
    if ordered and len(set(as_int)) == len(as_int):
        return dict(zip(image_ids, as_int))
    return {iid: i + 1 for i, iid in enumerate(image_ids)}


def _positive_int(s: str) -> int | None:
    return int(s) if isinstance(s, str) and s.isdigit() and int(s) > 0 else None


def to_coco_gt(samples: list[Sample], classes: list[str], *, image_id_map: dict[str, int] | None = None,
               with_masks: bool = False) -> dict:
    ids = image_id_map or coco_image_id_map([s.image_id for s in samples])
    images, annotations = [], []
    for s in samples:
        images.append({"id": ids[s.image_id], "file_name": s.image_path.name, "width": s.width, "height": s.height,
                       "detboard_image_id": s.image_id})
        rles = mask_ops.sample_rles(s) if with_masks else None
        xywh = xyxy_to_xywh(s.boxes)
        for j in range(s.num_objects):
            ann = {"id": len(annotations) + 1, "image_id": ids[s.image_id], "category_id": int(s.labels[j]) + 1,
                   "bbox": [float(v) for v in xywh[j]], "iscrowd": int(s.iscrowd[j])}
            if rles is not None:
                ann["segmentation"] = mask_ops.rle_to_json(rles[j])
            ann["area"] = _gt_area(s, j, xywh[j], rles)
            annotations.append(ann)
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(classes)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _gt_area(s: Sample, j: int, xywh: np.ndarray, rles) -> float:
    if s.areas is not None and len(s.areas) == s.num_objects:
        return float(s.areas[j])
    if rles is not None:
        return float(mask_ops.rle_area([rles[j]])[0])
    return float(xywh[2] * xywh[3])


def to_coco_detections(dets: list[Detections], classes: list[str], *, image_id_map: dict[str, int] | None = None,
                       with_masks: bool = False) -> list[dict]:
    """COCO results list (``[{image_id, category_id, bbox, score, segmentation?}]``)."""
    ids = image_id_map or coco_image_id_map([d.image_id for d in dets])
    out = []
    for d in dets:
        xywh = xyxy_to_xywh(d.boxes)
        rles = mask_ops.detection_rles(d) if with_masks else None
        for j in range(len(d)):
            res = {"image_id": ids[d.image_id], "category_id": int(d.labels[j]) + 1,
                   "bbox": [float(v) for v in xywh[j]], "score": float(d.scores[j])}
            if rles is not None:
                res["segmentation"] = mask_ops.rle_to_json(rles[j])
            out.append(res)
    return out


def write_coco_pair(out_dir, samples: list[Sample], dets: list[Detections], classes: list[str], *,
                    with_masks: bool = False) -> tuple:
    """Write ``gt.json`` and ``detections.json`` (same image-id mapping) atomically into ``out_dir``;
    the pair can be fed straight to ``evaluate --gt --dt`` or to pycocotools."""
    id_map = coco_image_id_map([s.image_id for s in samples])
    out = Path(out_dir)
    gt_path = write_json(out / "gt.json", to_coco_gt(samples, classes, image_id_map=id_map, with_masks=with_masks))
    dt_path = write_json(out / "detections.json",
                         to_coco_detections(dets, classes, image_id_map=id_map, with_masks=with_masks))
    return gt_path, dt_path

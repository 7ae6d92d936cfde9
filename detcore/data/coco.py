"""COCO instances JSON reader (pure parser: no pixels).

- ``bbox`` ``[x, y, w, h]`` becomes continuous xyxy ``[x, y, x + w, y + h]``, clipped to the image.
- Segmentation (polygon list or RLE dict) is kept per object in ``Sample.segmentations``;
  ``iscrowd`` and ``area`` are kept as given.
- Category ids may be non-contiguous: class index i is the i-th category in ascending id order;
  ``parsed.meta["category_ids"][i]`` is its id (so exports can write the original ids back).
- Images without annotations are kept (negatives). Annotations pointing at a missing image or
  category are reported (``missing_image_ref``, ``unknown_category``) and skipped.
- ``file_name`` comes from the file, so it is untrusted: an absolute name, a drive letter or ``..``
  that leads outside the dataset folder is refused as ``unsafe_path`` *before* the file system is
  asked anything, so the report never tells whether such a file exists (an uploaded COCO zip must
  not be able to show or probe the server's files).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from detcore.data.quality import MAX_OBJECTS_PER_IMAGE, keep_objects, sanitize_boxes, too_many_objects
from detcore.errors import DataError
from detcore.structures import ParsedDataset, Problem, Sample


def looks_like_coco(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("images"), list) and isinstance(obj.get("annotations"), list)


def _read_json(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (OSError, ValueError) as e:
        raise DataError(path, f"not valid JSON: {e}") from None
    if not looks_like_coco(obj):
        raise DataError(path, "not a COCO instances file: needs 'images' and 'annotations' lists")
    return obj


_DRIVE = re.compile(r"^[A-Za-z]:")


def default_dataset_root(json_path: Path) -> Path:
    """The folder a COCO file belongs to: its own, or the one above an ``annotations/`` folder."""
    here = json_path.parent
    return here.parent if here.name.lower() == "annotations" else here


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def safe_image_path(root: Path, file_name: str, dataset_root: Path) -> Path | None:
    """``root / file_name`` when it stays inside ``dataset_root`` (lexically and once symlinks are
    resolved; an image folder that is itself a link, set up by the admin, may lie elsewhere), else None.
    Decided without asking whether the file exists."""
    name = file_name.replace("\\", "/")
    if not name or "\x00" in name or name.startswith("/") or _DRIVE.match(name):
        return None
    path = Path(os.path.normpath(root / name))
    if not _inside(Path(os.path.abspath(path)), Path(os.path.abspath(dataset_root))):
        return None
    real = path.resolve()
    if not (_inside(real, dataset_root.resolve()) or _inside(real, root.resolve())):
        return None
    return path


def _guess_image_root(json_path: Path, images: list[dict], dataset_root: Path) -> Path:
    """The folder the ``file_name`` entries are relative to, among the usual places inside the dataset."""
    here = json_path.parent
    split_name = json_path.stem.removeprefix("instances_")  # annotations/instances_val2017.json -> val2017/
    candidates = [here, here / "images", here.parent / "images", here.parent, here.parent / split_name,
                  here / split_name]
    candidates = [c for c in candidates if _inside(Path(os.path.abspath(c)), Path(os.path.abspath(dataset_root)))]
    names = [str(im.get("file_name", "")) for im in images[:20] if isinstance(im, dict) and im.get("file_name")]
    for folder in candidates:
        paths = [safe_image_path(folder, n, dataset_root) for n in names]
        if any(p is not None and p.is_file() for p in paths):
            return folder
    return here


def load_coco_json(json_path: str | Path, image_root: str | Path | None = None, *,
                   dataset_root: str | Path | None = None) -> ParsedDataset:
    """Read a COCO instances file. Images must lie inside ``dataset_root`` (default: the JSON's folder,
    or the folder above ``annotations/``); ``file_name``s leading elsewhere are ``unsafe_path`` problems."""
    json_path = Path(json_path)
    dataset_root = Path(dataset_root) if dataset_root is not None else default_dataset_root(json_path)
    coco = _read_json(json_path)
    file = str(json_path)
    problems: list[Problem] = []
    categories = _categories(coco.get("categories") or [], file)
    category_ids = sorted(categories)
    index_of = {cid: i for i, cid in enumerate(category_ids)}
    root = Path(image_root) if image_root is not None else _guess_image_root(json_path, coco["images"], dataset_root)
    images = _images(coco["images"], root, file, problems)
    per_image: dict[Any, list[dict]] = {key: [] for key in images}
    for n, ann in enumerate(coco["annotations"]):
        if not isinstance(ann, dict):
            problems.append(Problem("bad_coordinates", file, f"annotation #{n} is not an object; skipped"))
            continue
        if ann.get("image_id") not in images:
            problems.append(Problem("missing_image_ref", file, f"annotation id {ann.get('id')} refers to image id "
                                    f"{ann.get('image_id')!r}, which is not in 'images'; skipped"))
        elif ann.get("category_id") not in categories:
            problems.append(Problem("unknown_category", file, f"annotation id {ann.get('id')} has category id "
                                    f"{ann.get('category_id')!r}, which is not in 'categories'; skipped"))
        else:
            per_image[ann["image_id"]].append(ann)
    samples = []
    for key, im in images.items():
        if len(per_image[key]) > MAX_OBJECTS_PER_IMAGE:  # before a box or a problem is made per object
            problems.append(too_many_objects(len(per_image[key]), file=file, image_id=str(im["id"])))
            continue
        sample = _sample(im, root, per_image[key], index_of, file, problems, dataset_root)
        if sample is not None:
            samples.append(sample)
    return ParsedDataset(format="coco", root=root, classes=[categories[c] for c in category_ids], samples=samples,
                         problems=problems, meta={"category_ids": category_ids, "annotation_file": file})


def _categories(raw: list, file: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for cat in raw:
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not cat.get("name"):
            raise DataError(file, f"category {cat!r} needs an integer 'id' and a 'name'")
        if cat["id"] in out:
            raise DataError(file, f"category id {cat['id']} is listed twice")
        out[cat["id"]] = str(cat["name"])
    if len(set(out.values())) != len(out):
        raise DataError(file, "two categories share a name; class names must be unique")
    return out


def _images(raw: list, root: Path, file: str, problems: list[Problem]) -> dict[Any, dict]:
    images: dict[Any, dict] = {}
    seen_files: set[str] = set()
    for im in raw:
        if not isinstance(im, dict) or "id" not in im or not im.get("file_name"):
            problems.append(Problem("missing_image", file, f"image entry {im!r} has no id or file_name; skipped"))
            continue
        if im["id"] in images or im["file_name"] in seen_files:
            problems.append(Problem("duplicate_image", file, f"image id {im['id']!r} / file "
                                    f"{im['file_name']!r} is listed twice; first entry kept"))
            continue
        seen_files.add(im["file_name"])
        images[im["id"]] = im
    return images


def _box(ann: dict) -> list[float] | None:
    bbox = ann.get("bbox")
    if bbox is None:
        seg = ann.get("segmentation")
        if isinstance(seg, list) and seg and all(isinstance(p, list) and len(p) >= 6 for p in seg):
            xs = [v for p in seg for v in p[0::2]]
            ys = [v for p in seg for v in p[1::2]]
            return [min(xs), min(ys), max(xs), max(ys)]  # polygon-only annotations still get a box
        return None
    x, y, w, h = (float(v) for v in bbox)  # ValueError/TypeError handled by the caller
    return [x, y, x + w, y + h]


def _sample(im: dict, root: Path, anns: list[dict], index_of: dict[int, int], file: str,
            problems: list[Problem], dataset_root: Path) -> Sample | None:
    image_id = str(im["id"])
    path = safe_image_path(root, str(im["file_name"]), dataset_root)
    if path is None:  # reported without touching the path: the report must not say whether it exists
        problems.append(Problem("unsafe_path", file, f"image id {image_id}: file_name {str(im['file_name'])[:200]!r} "
                                "is absolute or leads outside the dataset folder; refused", image_id))
        return None
    if not path.is_file():
        problems.append(Problem("missing_image", str(path), f"listed in {Path(file).name} but not on disk; skipped",
                                image_id))
        return None
    w, h = _int_or_none(im.get("width")), _int_or_none(im.get("height"))
    rows, labels, crowd, segs, areas = [], [], [], [], []
    for ann in anns:
        try:
            box = _box(ann)
        except (TypeError, ValueError):
            problems.append(Problem("bad_coordinates", file, f"annotation id {ann.get('id')} has bbox "
                                    f"{ann.get('bbox')!r}; needs 4 numbers; skipped", image_id))
            continue
        if box is None:
            problems.append(Problem("missing_bndbox", file, f"annotation id {ann.get('id')} has no bbox; skipped", image_id))
            continue
        if not all(math.isfinite(v) for v in box):
            problems.append(Problem("bad_coordinates", file, f"annotation id {ann.get('id')} has non-finite bbox; skipped",
                                    image_id))
            continue
        rows.append(box)
        labels.append(index_of[ann["category_id"]])
        crowd.append(bool(ann.get("iscrowd", 0)))
        segs.append(ann.get("segmentation"))
        area = ann.get("area")
        areas.append(float(area) if isinstance(area, (int, float)) else (box[2] - box[0]) * (box[3] - box[1]))
    boxes, keep, box_problems = sanitize_boxes(np.asarray(rows, np.float32), w, h, file=file, image_id=image_id)
    problems.extend(box_problems)
    sample = Sample(image_id=image_id, image_path=path, width=w, height=h, boxes=boxes, labels=labels,
                    iscrowd=crowd, annotation_path=Path(file), segmentations=segs, areas=np.asarray(areas, np.float32))
    keep_objects(sample, keep)
    if sample.num_objects == 0:
        problems.append(Problem("no_objects", str(path), "no annotations; kept as a negative image", image_id))
    return sample


def _int_or_none(v: Any) -> int | None:
    try:
        v = int(v)
    except (TypeError, ValueError):
        return None
    return v if v > 0 else None

"""Penn-Fudan reader: ``PNGImages/``, ``PedMasks/<stem>_mask.png``, ``Annotation/<stem>.txt``.

The instance mask is the ground truth: pixel value 0 is background and every other value is one
pedestrian (class ``person``). Boxes come from the mask as continuous coordinates
(x1 = leftmost column, x2 = rightmost column + 1), which is what a box drawn around those pixels
covers. The text annotations use 1-based inclusive pixels; they are only cross-checked against
the mask (``annotation_disagrees`` when a box differs by more than ``BOX_TOLERANCE_PX`` or the
counts differ). Reading the mask PNG is annotation data; the photo itself is never decoded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from detcore.data.images import NOT_ACCEPTED, open_file
from detcore.data.quality import sanitize_boxes
from detcore.errors import DataError
from detcore.structures import ParsedDataset, Problem, Sample

CLASSES = ["person"]
BOX_TOLERANCE_PX = 2.0
_TXT_BOX = re.compile(r"Bounding box for object (\d+)[^:]*:\s*\((\d+),\s*(\d+)\)\s*-\s*\((\d+),\s*(\d+)\)")


def is_pennfudan_folder(root: str | Path) -> bool:
    root = Path(root)
    return (root / "PNGImages").is_dir() and (root / "PedMasks").is_dir()


def boxes_from_instance_mask(mask: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """(N,4) continuous xyxy boxes and the instance ids (sorted, 0 excluded) of an id mask."""
    ids = [int(i) for i in np.unique(mask) if i != 0]
    boxes = np.zeros((len(ids), 4), np.float32)
    for row, i in enumerate(ids):
        ys, xs = np.nonzero(mask == i)
        boxes[row] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return boxes, ids


def read_text_boxes(path: Path) -> np.ndarray:
    """Boxes of a Penn-Fudan text annotation, converted to continuous xyxy (1-based inclusive → x1-1)."""
    rows = []
    for _, x1, y1, x2, y2 in _TXT_BOX.findall(path.read_text(encoding="utf-8", errors="replace")):
        rows.append((int(x1) - 1, int(y1) - 1, int(x2), int(y2)))
    return np.asarray(rows, np.float32).reshape(-1, 4)


def _read_mask(path: Path) -> np.ndarray:
    with open_file(path) as img:
        if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
            raise ValueError(f"mode {img.mode} is not an instance-id mask")
        return np.asarray(img)


def load_pennfudan(root: str | Path) -> ParsedDataset:
    """Read a Penn-Fudan folder. Images without a mask are reported (``missing_annotation``) and
    skipped; masks without an image are reported (``missing_image``)."""
    root = Path(root)
    if not is_pennfudan_folder(root):
        raise DataError(root, "not a Penn-Fudan folder: expected PNGImages/ and PedMasks/")
    img_dir, mask_dir, txt_dir = root / "PNGImages", root / "PedMasks", root / "Annotation"
    images = sorted(e.name for e in os.scandir(img_dir) if e.is_file() and not e.name.startswith("."))
    masks = {e.name for e in os.scandir(mask_dir) if e.is_file()}
    samples: list[Sample] = []
    problems: list[Problem] = []
    for name in images:
        stem = os.path.splitext(name)[0]
        mask_name = f"{stem}_mask.png"
        if mask_name not in masks:
            problems.append(Problem("missing_annotation", str(img_dir / name),
                                    f"no PedMasks/{mask_name}; image not loaded", stem))
            continue
        masks.discard(mask_name)
        sample = _read_sample(img_dir / name, mask_dir / mask_name, txt_dir / f"{stem}.txt", problems)
        if sample is not None:
            samples.append(sample)
    for mask_name in sorted(masks):
        problems.append(Problem("missing_image", str(mask_dir / mask_name), "mask without an image in PNGImages/",
                                mask_name.removesuffix("_mask.png")))
    return ParsedDataset(format="pennfudan", root=root, classes=list(CLASSES), samples=samples, problems=problems)


def _read_sample(image_path: Path, mask_path: Path, txt_path: Path, problems: list[Problem]) -> Sample | None:
    stem = image_path.stem
    try:
        mask = _read_mask(mask_path)
    except UnidentifiedImageError:
        problems.append(Problem("unreadable_annotation", str(mask_path), f"cannot read the mask: {NOT_ACCEPTED}", stem))
        return None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        problems.append(Problem("unreadable_annotation", str(mask_path), f"cannot read the mask: {e}", stem))
        return None
    boxes, ids = boxes_from_instance_mask(mask)
    h, w = mask.shape[:2]
    boxes, keep, box_problems = sanitize_boxes(boxes, w, h, file=str(mask_path), image_id=stem)
    problems.extend(box_problems)
    if txt_path.is_file():
        problems.extend(_cross_check(txt_path, boxes, stem))
    if not ids:
        problems.append(Problem("no_objects", str(mask_path), "mask has no instances; kept as a negative image", stem))
    return Sample(image_id=stem, image_path=image_path, width=w, height=h, boxes=boxes[keep],
                  labels=np.zeros(int(keep.sum()), np.int64), annotation_path=mask_path,
                  mask_path=mask_path, mask_ids=[i for i, k in zip(ids, keep) if k])


def _cross_check(txt_path: Path, mask_boxes: np.ndarray, stem: str) -> list[Problem]:
    try:
        text_boxes = read_text_boxes(txt_path)
    except OSError as e:
        return [Problem("unreadable_annotation", str(txt_path), f"cannot read: {e}", stem)]
    problems = []
    if len(text_boxes) != len(mask_boxes):
        problems.append(Problem("annotation_disagrees", str(txt_path), f"{len(text_boxes)} box(es) in the text but "
                                f"{len(mask_boxes)} instance(s) in the mask; using the mask", stem))
    for i in range(min(len(text_boxes), len(mask_boxes))):
        if np.abs(text_boxes[i] - mask_boxes[i]).max() > BOX_TOLERANCE_PX:
            problems.append(Problem("annotation_disagrees", str(txt_path), f"object {i + 1}: text box "
                                    f"{text_boxes[i].tolist()} vs mask box {mask_boxes[i].tolist()}; using the mask", stem))
    return problems

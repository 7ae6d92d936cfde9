"""Data-quality checks shared by every reader: box sanitising, class-name spelling, image headers.

Every finding is a :class:`detcore.structures.Problem` with a stable ``kind`` slug, the file it is
about and a sentence of detail. The good data still loads; only the offending object, sample or file
is dropped, and only when it cannot be used. The slugs (stable: the UI, the CLI and tests filter on them):

Annotation problems (raised by the readers):
  ``missing_image``        an annotation names an image that is not on disk (sample dropped)
  ``missing_annotation``   an image without an annotation file (orphan; not loaded)
  ``filename_mismatch``    VOC ``<filename>`` names no file; the same-stem image was used instead
  ``malformed_xml``        XML that ElementTree rejects; recovered leniently (detail says so) or dropped
  ``unsafe_xml``           XML declaring entities (ENTITY / DOCTYPE internal subset; file dropped)
  ``unreadable_annotation`` an annotation/mask file that cannot be read at all (file dropped)
  ``missing_bndbox``       an object without a (complete) ``bndbox`` / ``bbox`` (object dropped)
  ``bad_coordinates``      a non-numeric or non-finite coordinate (object dropped)
  ``box_clipped``          a box reaching outside the image, clipped to it (object kept)
  ``degenerate_box``       width or height <= 0 after clipping (object dropped)
  ``missing_size``         no usable ``<size>``; boxes are not clipped until the image header is read
  ``class_name_variant``   a case/space/hyphen spelling variant, normalised to the canonical name
  ``unknown_class``        a name outside the given class list (object dropped)
  ``no_objects``           an image without objects (kept as a negative example)
  ``annotation_disagrees`` Penn-Fudan text annotation disagrees with the instance mask (mask wins)
  ``missing_image_ref``    COCO annotation pointing at an image id that is not in ``images``
  ``unknown_category``     COCO annotation pointing at a category id that is not in ``categories``
  ``duplicate_image``      COCO image id or file listed twice (first kept)
  ``unsafe_path``          COCO ``file_name`` absolute or leading outside the dataset folder (refused
                           without checking whether it exists)
  ``malformed_line``       YOLO label line that is neither ``class cx cy w h`` nor a polygon (line dropped)
  ``too_many_objects``     more than MAX_OBJECTS_PER_IMAGE (1,000) objects on one image (image not loaded;
                           VOC files stop being parsed at the cap)
YOLO labels reuse ``unknown_class`` (class index outside the names), ``box_clipped`` / ``degenerate_box``
(normalised coordinates outside 0..1), ``missing_image`` (label file without image), ``duplicate_image``
(two images for one label file) and ``no_objects`` (no or empty label file: a negative image).

Image problems (found by :func:`verify_images`, which opens headers only):
  ``missing_image``, ``not_an_image``, ``unreadable_image``, ``truncated_image``,
  ``decompression_bomb`` (above PIL's pixel limit; never decoded) and ``size_mismatch``
  (annotation size differs from the real image; the real size is used and boxes are re-clipped).
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from detcore.data.images import MAX_IMAGE_PIXELS, NOT_ACCEPTED, displayed_size, open_file
from detcore.structures import ParsedDataset, Problem, Sample

_SPELLING_NOISE = re.compile(r"[\s\-_]+")
# Objects on one image above which the image is refused (``too_many_objects``). Real datasets stay far
# below it (COCO's busiest image has 93 objects, dense retail shelves ~700); above it one image costs
# torchvision's matcher an objects x anchors matrix of gigabytes (hostile walk, finding 8: 10^6 boxes).
MAX_OBJECTS_PER_IMAGE = 1000


def too_many_objects(count: int, *, file: str, image_id: str | None, at_least: bool = False) -> Problem:
    return Problem("too_many_objects", file, f"{'more than ' if at_least else ''}{count:,} objects on one image, "
                   f"above the limit of {MAX_OBJECTS_PER_IMAGE:,} objects per image; image not loaded", image_id)


def drop_crowded_samples(parsed: ParsedDataset) -> list[Problem]:
    """Remove samples with more than MAX_OBJECTS_PER_IMAGE objects and return their problems (the readers
    refuse such images early; this is the check every format passes through)."""
    crowded = [s for s in parsed.samples if s.num_objects > MAX_OBJECTS_PER_IMAGE]
    if not crowded:
        return []
    parsed.samples = [s for s in parsed.samples if s.num_objects <= MAX_OBJECTS_PER_IMAGE]
    return [too_many_objects(s.num_objects, file=str(s.annotation_path or s.image_path), image_id=s.image_id)
            for s in crowded]


def class_key(name: str) -> str:
    """The spelling-insensitive key of a class name: 'With-Mask ' and 'with_mask' share one key."""
    return _SPELLING_NOISE.sub("_", name.strip().lower()).strip("_")


def canonical_class_names(names: Counter, known: list[str] | None = None) -> dict[str, str]:
    """Map every spelling seen to its canonical name.

    With a known class list the canonical name is the list entry with the same key; otherwise the
    most frequent spelling of the key (ties: alphabetical). Names whose key is not in ``known`` map
    to themselves and are reported as unknown by the reader.
    """
    canon: dict[str, str] = {}
    if known is not None:
        by_key = {class_key(k): k for k in known}
        for name in names:
            canon[name] = by_key.get(class_key(name), name)
        return canon
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(class_key(name), []).append(name)
    for spellings in groups.values():
        best = sorted(spellings, key=lambda s: (-names[s], s))[0]
        for s in spellings:
            canon[s] = best
    return canon


def clip_to_images(boxes: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised clipping of (N,4) boxes, each to its own image size (NaN size = unknown, not clipped).

    Returns (clipped boxes, changed mask, keep mask); keep is False for boxes with no area left.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    widths, heights = np.asarray(widths, np.float64), np.asarray(heights, np.float64)
    known = ~(np.isnan(widths) | np.isnan(heights))
    low = np.where(known, 0.0, -np.inf)[:, None]
    high = np.stack([np.where(known, widths, np.inf), np.where(known, heights, np.inf)] * 2, axis=1)
    out = np.minimum(np.maximum(boxes, low), high).astype(np.float32)
    changed = np.any(out != boxes, axis=1)
    keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return out, changed, keep


def clipped_problem(box: np.ndarray, out: np.ndarray, width: float, height: float, *, file: str,
                    image_id: str) -> Problem:
    return Problem("box_clipped", file, f"box {_fmt(box)} reaches outside the {width:g}x{height:g} image; "
                   f"clipped to {_fmt(out)}", image_id)


def degenerate_problem(box: np.ndarray, *, file: str, image_id: str) -> Problem:
    return Problem("degenerate_box", file, f"box {_fmt(box)} has no area inside the image; dropped", image_id)


def sanitize_boxes(boxes: np.ndarray, width: int | None, height: int | None, *,
                   file: str, image_id: str) -> tuple[np.ndarray, np.ndarray, list[Problem]]:
    """Clip (N,4) xyxy boxes to one image and find degenerate ones.

    Returns (clipped boxes, keep mask, problems). Without a known size nothing is clipped, but
    boxes with x2<=x1 or y2<=y1 are still degenerate.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    n = len(boxes)
    w = np.full(n, float(width) if width and height else np.nan)
    h = np.full(n, float(height) if width and height else np.nan)
    out, changed, keep = clip_to_images(boxes, w, h)
    problems = [clipped_problem(boxes[i], out[i], width, height, file=file, image_id=image_id)
                for i in np.flatnonzero(changed & keep)]  # a dropped box is reported once, as degenerate
    problems += [degenerate_problem(boxes[i], file=file, image_id=image_id) for i in np.flatnonzero(~keep)]
    return out, keep, problems


def _fmt(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box.tolist()) + "]"


def keep_objects(sample: Sample, keep: np.ndarray) -> None:
    """Drop the objects of ``sample`` where ``keep`` is False, keeping every per-object field aligned."""
    if keep.all():
        return
    idx = np.flatnonzero(keep)
    sample.boxes = sample.boxes[idx]
    sample.labels = sample.labels[idx]
    sample.difficult = sample.difficult[idx]
    sample.truncated = sample.truncated[idx]
    sample.iscrowd = sample.iscrowd[idx]
    if sample.areas is not None:
        sample.areas = np.asarray(sample.areas)[idx]
    if sample.mask_ids is not None:
        sample.mask_ids = [sample.mask_ids[i] for i in idx]
    if sample.segmentations is not None:
        sample.segmentations = [sample.segmentations[i] for i in idx]


# --- image headers -------------------------------------------------------------------------------

_PNG_END = b"IEND\xaeB`\x82"


def _tail_looks_complete(path: Path, fmt: str | None) -> bool:
    """Cheap truncation check: PNG ends with IEND, JPEG has its EOI marker near the end."""
    if fmt not in ("PNG", "JPEG"):
        return True
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 1024))
        tail = f.read()
    return tail.endswith(_PNG_END) if fmt == "PNG" else b"\xff\xd9" in tail


_HEADER_CACHE: dict[tuple[str, int, int], tuple[tuple[int, int] | None, str | None, str | None]] = {}
_HEADER_CACHE_MAX = 200_000  # entries are ~100 bytes; bounded so a long-lived app server cannot grow forever


def check_image(path: Path, *, image_id: str | None = None) -> tuple[tuple[int, int] | None, Problem | None]:
    """Open one image's header. Returns ((width, height) or None, problem or None).

    Results are memoised in-process by (path, size, mtime), so re-verifying an unchanged dataset
    (every app rerun) costs one ``stat`` per image.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, Problem("missing_image", str(path), "image file not found", image_id)
    except OSError as e:
        return None, Problem("unreadable_image", str(path), f"cannot stat the file: {e}", image_id)
    key = (str(path), st.st_size, st.st_mtime_ns)
    hit = _HEADER_CACHE.get(key)
    if hit is None:
        if len(_HEADER_CACHE) >= _HEADER_CACHE_MAX:
            _HEADER_CACHE.clear()
        hit = _HEADER_CACHE[key] = _read_header(Path(path))
    size, kind, detail = hit
    return size, None if kind is None else Problem(kind, str(path), detail, image_id)


def _read_header(path: Path) -> tuple[tuple[int, int] | None, str | None, str | None]:
    """(EXIF-rotated (w, h), None, None) for a usable image, else (None, problem kind, detail)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_file(path) as img:
                w, h = img.size
                if w * h > MAX_IMAGE_PIXELS:
                    return None, "decompression_bomb", (f"{w}x{h} = {w * h:,} pixels is above the "
                                                        f"{MAX_IMAGE_PIXELS:,}-pixel limit; not decoded")
                if not _tail_looks_complete(path, img.format):
                    img.load()  # the tail looked cut: only now pay for a full decode to be sure
                return displayed_size(img), None, None  # the size images.load_rgb will return
    except FileNotFoundError:
        return None, "missing_image", "image file not found"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return None, "decompression_bomb", f"refused by PIL as a decompression bomb: {e}"
    except UnidentifiedImageError:
        return None, "not_an_image", NOT_ACCEPTED
    except (OSError, SyntaxError, ValueError) as e:
        kind = "truncated_image" if "truncat" in str(e).lower() else "unreadable_image"
        return None, kind, f"cannot decode the image: {e}"


def verify_images(parsed: ParsedDataset, *, drop_unusable: bool = True) -> list[Problem]:
    """Open every sample's image header and return the problems found.

    Side effects, so that what loads is usable: samples whose image cannot be opened are removed
    from ``parsed.samples`` (unless ``drop_unusable=False``); where the annotation's size disagrees
    with the real image, the sample takes the real size and its boxes are re-clipped to it.
    The caller decides whether to append the returned problems to ``parsed.problems``
    (:func:`detcore.data.detect.load_dataset` does).
    """
    problems: list[Problem] = []
    usable: list[Sample] = []
    for sample in parsed.samples:
        size, problem = check_image(sample.image_path, image_id=sample.image_id)
        if problem is not None:
            problems.append(problem)
            if not drop_unusable:
                usable.append(sample)
            continue
        problems.extend(_adopt_real_size(sample, size))
        usable.append(sample)
    parsed.samples = usable
    return problems


def _adopt_real_size(sample: Sample, size: tuple[int, int]) -> list[Problem]:
    w, h = size
    problems: list[Problem] = []
    if sample.width is not None and sample.height is not None and (sample.width, sample.height) != (w, h):
        problems.append(Problem("size_mismatch", str(sample.annotation_path or sample.image_path),
                                f"annotation says {sample.width}x{sample.height} but the image is {w}x{h}; "
                                "using the real size", sample.image_id))
    elif sample.width is not None and sample.height is not None:
        return problems
    sample.width, sample.height = w, h
    boxes, keep, box_problems = sanitize_boxes(sample.boxes, w, h, image_id=sample.image_id,
                                               file=str(sample.annotation_path or sample.image_path))
    sample.boxes = boxes
    keep_objects(sample, keep)
    problems.extend(box_problems)
    return problems

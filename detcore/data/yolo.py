"""YOLO-format reader: Ultralytics and Roboflow exports, and plain ``images/`` + ``labels/`` folders.

Layouts (folder names matched case-insensitively):
  - Ultralytics: ``images/<split>/`` + ``labels/<split>/`` (``train``, ``val``, ``test``, ...), class
    names in ``data.yaml``.
  - Roboflow: ``<split>/images/`` + ``<split>/labels/`` (``train``, ``valid``, ``test``), ``data.yaml``.
  - plain: ``images/`` + ``labels/``, class names in ``data.yaml`` or ``classes.txt`` (in the dataset
    folder or in ``labels/``, where LabelImg writes it).
Class names: ``names`` in ``data.yaml`` (or another ``.yaml`` beside it) as a list or as
``{index: name}``; ``nc``, when given, must agree. The yaml's ``train:``/``val:`` paths are not
followed (Roboflow's point outside the export); the folders are found by the layouts above.

An image's label file has the same path under ``labels/`` with ``.txt`` (Ultralytics' rule). Each line
is ``class cx cy w h`` normalised by the image's width and height (so image headers are read, never
pixels), or ``class x1 y1 x2 y2 x3 y3 ...`` (Ultralytics' segment format: the polygon is kept as a
COCO-style segmentation in pixels and the box is its bounds). Boxes become continuous xyxy pixels:
``x1 = (cx - w/2) * W``.

Image ids are the image's path under its ``images/`` folder without the suffix; with split folders
the split folder comes first (``train/img1``, ``valid/img1``) so ids stay unique across splits. The
split folders are the dataset's own split: ``meta["given_split"]`` (``valid`` counts as ``val``;
names starting with train / val / test, e.g. ``train2017``, count as those), which the ``imagesets``
split method uses.

Problems (slugs of :mod:`detcore.data.quality`): ``malformed_line`` (not 5 numbers, nor a polygon;
dropped), ``unknown_class`` (class index outside the names; dropped), ``box_clipped`` (normalised
coordinates outside 0..1; clipped), ``degenerate_box`` (no area inside the image — pixel coordinates
where normalised ones belong, typically; dropped), ``missing_image`` (a label file without an
image), ``no_objects`` (an image without a label file, or an empty one: a negative image, kept),
``duplicate_image`` (two images share a label file, e.g. ``a.jpg`` and ``a.png``; the first is
kept), plus the image-header problems of :func:`detcore.data.quality.check_image` (image dropped).
Coordinates within 1e-6 outside 0..1 (rounding of exporters) are clipped without a report.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detcore.data.quality import MAX_OBJECTS_PER_IMAGE, check_image, too_many_objects
from detcore.data.splits import given_split
from detcore.data.voc import IMAGE_SUFFIXES, read_class_list
from detcore.errors import DataError
from detcore.structures import ParsedDataset, Problem, Sample

NAMES_FILES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
MAX_YAML_BYTES = 1 << 20
EPS = 1e-6
SPLIT_PARTS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}


@dataclass
class YoloLayout:
    root: Path
    kind: str  # "ultralytics" | "roboflow" | "plain"
    parts: list[tuple[str | None, Path, Path]]  # (split folder or None, images dir, labels dir)


def _subdirs(folder: Path) -> dict[str, Path]:
    try:
        with os.scandir(folder) as entries:
            return {e.name.lower(): Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")}
    except OSError:
        return {}


def _has_txt(folder: Path, depth: int = 2) -> bool:
    try:
        with os.scandir(folder) as entries:
            for e in entries:
                if e.is_file() and e.name.lower().endswith(".txt") and e.name.lower() != "classes.txt":
                    return True
                if depth > 0 and e.is_dir() and not e.name.startswith(".") and _has_txt(Path(e.path), depth - 1):
                    return True
    except OSError:
        return False
    return False


def _has_images(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES) for e in entries)
    except OSError:
        return False


def _names_file(root: Path) -> Path | None:
    for name in NAMES_FILES:
        if (root / name).is_file():
            return root / name
    yamls = sorted(p for p in root.glob("*.y*ml") if p.is_file() and p.suffix.lower() in (".yaml", ".yml"))
    return yamls[0] if len(yamls) == 1 else None


def find_yolo_layout(root: str | Path) -> YoloLayout | None:
    """The YOLO layout of ``root``, or None. Needs label ``.txt`` files, or a ``data.yaml``."""
    root = Path(root)
    dirs = _subdirs(root)
    layout = None
    if "images" in dirs and "labels" in dirs:
        images, labels = dirs["images"], dirs["labels"]
        image_dirs, label_dirs = _subdirs(images), _subdirs(labels)
        if image_dirs and not _has_images(images):  # images/train, images/val, ...: a part without labels is negatives
            parts = [(p.name, p, label_dirs.get(name, labels / p.name)) for name, p in sorted(image_dirs.items())]
            layout = YoloLayout(root, "ultralytics", parts)
        else:
            layout = YoloLayout(root, "plain", [(None, images, labels)])
    else:
        parts = []
        for name, folder in sorted(dirs.items()):
            inner = _subdirs(folder)
            if "images" in inner and "labels" in inner:
                parts.append((folder.name, inner["images"], inner["labels"]))
        if parts:
            layout = YoloLayout(root, "roboflow", parts)
    if layout is None:
        return None
    if any(_has_txt(labels) for _, _, labels in layout.parts) or _names_file(root) is not None:
        return layout
    return None


# --- class names ----------------------------------------------------------------------------------

def read_yolo_names(root: Path, layout: YoloLayout | None = None) -> tuple[list[str], Path]:
    """(class names in index order, the file they came from). Raises DataError when there are none."""
    path = _names_file(root)
    if path is not None:
        return _names_from_yaml(path), path
    candidates = [root] + ([labels for _, _, labels in layout.parts] if layout else [])
    for folder in candidates:
        names = read_class_list(folder)
        if names is not None:
            return names, folder / "classes.txt"
    raise DataError(root, "YOLO dataset without class names: expected a data.yaml with 'names' or a classes.txt")


def _names_from_yaml(path: Path) -> list[str]:
    import yaml

    if path.stat().st_size > MAX_YAML_BYTES:
        raise DataError(path, f"larger than {MAX_YAML_BYTES // 1024} KB; not a dataset description")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DataError(path, f"not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict) or doc.get("names") is None:
        raise DataError(path, "has no 'names' (the class names)")
    raw = doc["names"]
    if isinstance(raw, dict):
        try:
            keyed = {int(k): v for k, v in raw.items()}
        except (TypeError, ValueError):
            raise DataError(path, "'names' keys must be class indices 0..N-1") from None
        if sorted(keyed) != list(range(len(keyed))):
            raise DataError(path, f"'names' keys must be 0..{len(keyed) - 1} without gaps (got {sorted(keyed)[:10]})")
        raw = [keyed[i] for i in range(len(keyed))]
    if not isinstance(raw, list) or not raw or not all(isinstance(n, (str, int, float)) for n in raw):
        raise DataError(path, "'names' must be a non-empty list of class names or an {index: name} mapping")
    names = [str(n).strip() for n in raw]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise DataError(path, "'names' has an empty or repeated class name")
    nc = doc.get("nc")
    if nc is not None and nc != len(names):
        raise DataError(path, f"nc is {nc} but 'names' lists {len(names)} classes")
    return names


# --- reading --------------------------------------------------------------------------------------

def _label_files(folder: Path) -> dict[str, Path]:
    """{path under ``folder`` without ``.txt`` (posix): path} for every label file (not ``classes.txt``)."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath)
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(".txt"):
                continue
            rel = (base / name).relative_to(folder).with_suffix("").as_posix()
            if rel.lower() != "classes":
                found[rel] = base / name
    return found


def _images_by_key(folder: Path, problems: list[Problem], prefix: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath)
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            path = base / name
            rel = path.relative_to(folder).with_suffix("").as_posix()
            if rel in out:
                problems.append(Problem("duplicate_image", str(path), f"shares its label file {rel}.txt with "
                                        f"{out[rel].name}; not loaded", prefix + rel))
                continue
            out[rel] = path
    return out


def load_yolo(root: str | Path) -> ParsedDataset:
    """Read a YOLO dataset folder (see the module docstring). Raises DataError when it is not one."""
    root = Path(root)
    layout = find_yolo_layout(root)
    if layout is None:
        raise DataError(root, "not a YOLO folder: expected images/ + labels/ (optionally with train/val/test "
                              "inside), or train/images + train/labels, with a data.yaml or classes.txt")
    classes, names_file = read_yolo_names(root, layout)
    problems: list[Problem] = []
    samples: list[Sample] = []
    parts: dict[str, list[str]] = {}
    for folder, images_dir, labels_dir in layout.parts:
        prefix = f"{folder}/" if folder is not None else ""
        images = _images_by_key(images_dir, problems, prefix)
        labels = _label_files(labels_dir)
        for rel in sorted(images):
            sample = _read_sample(prefix + rel, images[rel], labels.get(rel), classes, names_file, problems)
            if sample is not None:
                samples.append(sample)
                if folder is not None and _part(folder) is not None:
                    parts.setdefault(_part(folder), []).append(sample.image_id)
        for rel in sorted(set(labels) - set(images)):
            problems.append(Problem("missing_image", str(labels[rel]), f"label file without an image "
                                    f"({images_dir.name}/{rel}.* not found)", prefix + rel))
    meta: dict = {"layout": layout.kind, "names_file": str(names_file)}
    if parts:
        meta["given_split"] = given_split(parts, f"{layout.kind} split folders")
    return ParsedDataset(format="yolo", root=root, classes=classes, samples=samples, problems=problems, meta=meta)


def _part(folder: str) -> str | None:
    name = folder.lower()
    if name in SPLIT_PARTS:
        return SPLIT_PARTS[name]
    for prefix, part in (("train", "train"), ("valid", "val"), ("val", "val"), ("test", "test")):
        if name.startswith(prefix):
            return part
    return None


def _read_sample(image_id: str, image_path: Path, label_path: Path | None, classes: list[str],
                 names_file: Path, problems: list[Problem]) -> Sample | None:
    size, problem = check_image(image_path, image_id=image_id)
    if problem is not None:
        problems.append(problem)
        return None
    w, h = size
    if label_path is None:
        problems.append(Problem("no_objects", str(image_path), "no label file; kept as a negative image", image_id))
        return Sample(image_id=image_id, image_path=image_path, width=w, height=h)
    try:
        text = label_path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        problems.append(Problem("unreadable_annotation", str(label_path), f"cannot read: {e}; image not loaded",
                                image_id))
        return None
    file = str(label_path)
    lines = text.splitlines()
    if sum(1 for line in lines if line.strip()) > MAX_OBJECTS_PER_IMAGE:  # before a box or a problem per line
        problems.append(too_many_objects(sum(1 for line in lines if line.strip()), file=file, image_id=image_id))
        return None
    boxes, labels, segs = [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = _parse_line(line, number, len(classes), names_file, w, h, file, image_id, problems)
        if row is not None:
            boxes.append(row[0])
            labels.append(row[1])
            segs.append(row[2])
    if not boxes:
        problems.append(Problem("no_objects", file, "no usable objects in the label file; kept as a negative image",
                                image_id))
    has_polygons = any(s is not None for s in segs)
    return Sample(image_id=image_id, image_path=image_path, width=w, height=h, boxes=boxes, labels=labels,
                  annotation_path=label_path, segmentations=segs if has_polygons else None)


def _fmt(values) -> str:
    return " ".join(f"{v:g}" for v in values)


def _parse_line(line: str, number: int, n_classes: int, names_file: Path, w: int, h: int, file: str,
                image_id: str, problems: list[Problem]):
    fields = line.split()
    shown = line.strip()[:120]
    try:
        values = [float(f) for f in fields]
    except ValueError:
        problems.append(Problem("malformed_line", file, f"line {number}: {shown!r} is not all numbers; dropped",
                                image_id))
        return None
    is_box = len(values) == 5
    is_polygon = len(values) >= 7 and len(values) % 2 == 1
    if not (is_box or is_polygon) or not all(math.isfinite(v) for v in values):
        expected = "'class cx cy w h' (5 numbers) or 'class x1 y1 x2 y2 x3 y3 ...'"
        got = "non-finite values" if is_box or is_polygon else f"{len(values)} value(s)"
        problems.append(Problem("malformed_line", file, f"line {number}: expected {expected}, got {got} "
                                f"in {shown!r}; dropped", image_id))
        return None
    cls = values[0]
    if cls != int(cls) or not 0 <= cls < n_classes:
        problems.append(Problem("unknown_class", file, f"line {number}: class index {fields[0]} is not among the "
                                f"{n_classes} names of {names_file.name}; dropped", image_id))
        return None
    coords = values[1:]
    if is_box:
        cx, cy, bw, bh = coords
        norm = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], np.float64)
        polygon = None
    else:
        polygon = np.asarray(coords, np.float64).reshape(-1, 2)
        norm = np.array([*polygon.min(axis=0), *polygon.max(axis=0)], np.float64)
    outside = bool(np.any(norm < -EPS) or np.any(norm > 1 + EPS))
    clipped = np.clip(norm, 0.0, 1.0)
    box = (clipped * [w, h, w, h]).astype(np.float32)
    what = "normalised box cx cy w h" if is_box else "polygon bounds x1 y1 x2 y2"
    original = _fmt(coords) if is_box else _fmt(norm)
    if not (box[2] > box[0] and box[3] > box[1]):
        hint = " (pixel coordinates instead of normalised ones?)" if outside and max(coords) > 1 else ""
        problems.append(Problem("degenerate_box", file, f"line {number}: {what} {original} has no area inside "
                                f"the image{hint}; dropped", image_id))
        return None
    if outside:
        problems.append(Problem("box_clipped", file, f"line {number}: {what} {original} reaches outside 0..1; "
                                f"clipped to [{_fmt(box)}] px", image_id))
    seg = None
    if polygon is not None:
        seg = [[round(float(v), 3) for v in (np.clip(polygon, 0.0, 1.0) * [w, h]).reshape(-1)]]
    return box, int(cls), seg

"""Write a read dataset (any format detcore reads) as COCO, Pascal VOC or YOLO — to a folder or a zip.

Convert writes *what was read*: boxes as the reader returned them (clipped where the reader clipped
them and reported ``box_clipped``; objects the reader dropped stay dropped), so reading the output
back gives the same images, boxes (within the text formats' rounding) and classes. The problems found
while reading are not fixed silently: they are listed in ``detboard-conversion.txt`` inside the
output (and printed by ``python -m detcore convert``), together with what the target format cannot
hold (the notes).

Layouts written:
  - ``coco``: ``images/<name>`` + ``annotations/instances.json`` (boxes ``[x, y, w, h]``; masks as
    COCO polygons or RLE: kept as read from COCO, polygons from YOLO segment lines, RLE from
    Penn-Fudan instance masks; category ids kept from a COCO source, else 1..K).
  - ``voc``: ``images/<name>`` + ``annotations/<stem>.xml`` + ``classes.txt`` (the class order), plus
    ``ImageSets/Main/<part>.txt`` when the dataset gives a split. Boxes only: VOC XML holds no masks.
  - ``yolo``: ``data.yaml`` (names) + ``images/<part>/`` + ``labels/<part>/`` (Ultralytics layout) when
    the dataset gives a split, else ``images/`` + ``labels/``. Boxes only (detection labels).

Names: every file name comes from user data, so it is rebuilt from ``[A-Za-z0-9._-]`` (the image's
own name; its image id when two images share a name, as YOLO split folders do) and every path is
checked to stay inside the output before anything is written. A folder is written into a hidden
staging folder beside ``out`` and renamed into place when complete (all or nothing). A non-empty
``out`` is refused, unless ``force`` and it holds ``detboard-conversion.txt`` (a previous
conversion, which is then replaced whole): convert never deletes a folder it did not write.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from detcore.errors import DataError
from detcore.structures import ParsedDataset, Sample

TARGETS = ("coco", "voc", "yolo")
REPORT_FILE = "detboard-conversion.txt"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 150


@dataclass
class Entry:
    """One output file: ``path`` relative to the output root (posix), and either bytes or a file to copy."""

    path: str
    data: bytes | None = None
    source: Path | None = None

    def size(self) -> int:
        return len(self.data) if self.data is not None else self.source.stat().st_size


@dataclass
class Conversion:
    target: str
    entries: list[Entry]
    images: int
    objects: int
    notes: list[str] = field(default_factory=list)

    def total_bytes(self) -> int:
        return sum(e.size() for e in self.entries)


# --- names ----------------------------------------------------------------------------------------

def safe_name(text: str) -> str:
    """A file name made of ``[A-Za-z0-9._-]`` only, never hidden, never ``.`` or ``..``."""
    name = _UNSAFE.sub("_", text).lstrip(".")[:_MAX_NAME]
    return name or "image"


def output_names(samples: list[Sample]) -> list[str]:
    """A unique, safe, flat file name per sample. Unique by stem (case-insensitively), because VOC
    XML and YOLO label files are named by the image's stem."""
    suffixes = [safe_name(s.image_path.suffix.lower()) if s.image_path.suffix else "" for s in samples]
    preferred = [safe_name(s.image_path.stem) for s in samples]
    counts: dict[str, int] = {}
    for stem in preferred:
        counts[stem.lower()] = counts.get(stem.lower(), 0) + 1
    used: set[str] = set()
    names = []
    for sample, stem, suffix in zip(samples, preferred, suffixes):
        if counts[stem.lower()] > 1:
            stem = safe_name(sample.image_id)  # YOLO's train/a and val/a -> train_a, val_a
        candidate, k = stem, 2
        while candidate.lower() in used:
            candidate, k = f"{stem}-{k}", k + 1
        used.add(candidate.lower())
        names.append(candidate + (("." + suffix.lstrip("._")) if suffix.strip("._") else ""))
    return names


def _stem(name: str) -> str:
    return os.path.splitext(name)[0]


def _num(v: float) -> str:
    r = round(float(v), 3)
    return str(int(r)) if r == int(r) else repr(r)


# --- planning -------------------------------------------------------------------------------------

def plan_conversion(parsed: ParsedDataset, to: str) -> Conversion:
    """Every file of ``parsed`` written as ``to`` (nothing is written yet)."""
    if to not in TARGETS:
        raise DataError(to, f"unknown target format; choose {', '.join(TARGETS)}")
    for sample in parsed.samples:
        _ensure_size(sample)
    names = output_names(parsed.samples)
    conv = {"coco": _plan_coco, "voc": _plan_voc, "yolo": _plan_yolo}[to](parsed, names)
    conv.notes[:0] = common_notes(parsed, to)
    return conv


def _ensure_size(sample: Sample) -> None:
    if sample.width is None or sample.height is None:
        from detcore.data.quality import check_image

        size, problem = check_image(sample.image_path, image_id=sample.image_id)
        if problem is not None:
            raise DataError(problem.file, problem.detail)
        sample.width, sample.height = size


def common_notes(parsed: ParsedDataset, to: str) -> list[str]:
    notes = []
    masked = sum(s.num_objects for s in parsed.samples if s.mask_path is not None or
                 (s.segmentations is not None and any(seg is not None for seg in s.segmentations)))
    if masked and to != "coco":
        notes.append(f"masks not written: {to.upper()} {'XML' if to == 'voc' else 'detection labels'} hold boxes "
                     f"only ({masked} object(s) of this dataset have masks; convert --to coco keeps them)")
    difficult = sum(int(s.difficult.sum()) for s in parsed.samples)
    if difficult and to != "voc":
        notes.append(f"{difficult} object(s) marked difficult written as ordinary objects: {to.upper()} has no "
                     "difficult flag")
    truncated = sum(int(s.truncated.sum()) for s in parsed.samples)
    if truncated and to != "voc":
        notes.append(f"truncated flags of {truncated} object(s) not written: {to.upper()} has no truncated flag")
    crowd = sum(int(s.iscrowd.sum()) for s in parsed.samples)
    if crowd and to == "voc":
        notes.append(f"{crowd} crowd region(s) (COCO iscrowd) written as <difficult>1</difficult>: VOC has no "
                     "crowd flag")
    elif crowd and to == "yolo":
        notes.append(f"{crowd} crowd region(s) (COCO iscrowd) written as ordinary objects: YOLO has no crowd flag")
    if to == "voc":
        from detcore.data.quality import class_key

        keys = [class_key(c) for c in parsed.classes]
        clash = sorted({c for c, k in zip(parsed.classes, keys) if keys.count(k) > 1})
        if clash:
            notes.append(f"class names {clash} differ only in case, spaces or hyphens: detboard's VOC reader (and "
                         "others) will read them as one class")
    if "given_split" in parsed.meta and to == "coco":
        notes.append(f"the dataset's own split ({parsed.meta['given_split']['source']}) is not kept: one COCO "
                     "instances file holds every image")
    return notes


def _plan_coco(parsed: ParsedDataset, names: list[str]) -> Conversion:
    from detcore.metrics.export import coco_image_id_map
    from detcore.metrics.masks import rle_to_json, sample_rles

    if parsed.format == "coco" and len(parsed.meta.get("category_ids") or []) == len(parsed.classes):
        category_ids = [int(c) for c in parsed.meta["category_ids"]]
    else:
        category_ids = list(range(1, len(parsed.classes) + 1))
    ids = coco_image_id_map([s.image_id for s in parsed.samples])
    entries, images, annotations = [], [], []
    for sample, name in zip(parsed.samples, names):
        entries.append(Entry(f"images/{name}", source=sample.image_path))
        images.append({"id": ids[sample.image_id], "file_name": name, "width": sample.width, "height": sample.height})
        segs = _coco_segmentations(sample, sample_rles, rle_to_json)
        for j in range(sample.num_objects):
            x1, y1, x2, y2 = (float(v) for v in sample.boxes[j])
            ann = {"id": len(annotations) + 1, "image_id": ids[sample.image_id],
                   "category_id": category_ids[int(sample.labels[j])],
                   "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                   "iscrowd": int(sample.iscrowd[j])}
            if segs[j] is not None:
                ann["segmentation"] = segs[j][0]
            ann["area"] = round(_area(sample, j, segs[j]), 3)
            annotations.append(ann)
    coco = {"info": {"description": f"converted by detboard from {parsed.format} ({parsed.root.name})"},
            "images": images, "annotations": annotations,
            "categories": [{"id": cid, "name": name, "supercategory": "none"}
                           for cid, name in zip(category_ids, parsed.classes)]}
    entries.append(Entry("annotations/instances.json", data=json.dumps(coco, allow_nan=False).encode("utf-8")))
    return Conversion("coco", entries, len(images), len(annotations))


def _coco_segmentations(sample: Sample, sample_rles, rle_to_json) -> list:
    """Per object (segmentation as written, its area) or None."""
    from pycocotools import mask as mask_utils

    if sample.mask_path is not None and sample.num_objects:  # Penn-Fudan: exact RLE of the instance mask
        return [(rle_to_json(r), float(mask_utils.area(r))) for r in sample_rles(sample)]
    if sample.segmentations is not None:
        return [None if seg is None or seg == [] else (seg, None) for seg in sample.segmentations]
    return [None] * sample.num_objects


def _area(sample: Sample, j: int, seg) -> float:
    if sample.areas is not None and len(sample.areas) == sample.num_objects:
        return float(sample.areas[j])
    if seg is not None and seg[1] is not None:
        return seg[1]
    x1, y1, x2, y2 = (float(v) for v in sample.boxes[j])
    return (x2 - x1) * (y2 - y1)


def _voc_xml(sample: Sample, name: str, classes: list[str]) -> bytes:
    objects = []
    for j in range(sample.num_objects):
        x1, y1, x2, y2 = sample.boxes[j]
        difficult = int(bool(sample.difficult[j]) or bool(sample.iscrowd[j]))
        objects.append(
            f"  <object>\n    <name>{escape(classes[int(sample.labels[j])])}</name>\n    <pose>Unspecified</pose>\n"
            f"    <truncated>{int(bool(sample.truncated[j]))}</truncated>\n    <difficult>{difficult}</difficult>\n"
            f"    <bndbox>\n      <xmin>{_num(x1)}</xmin>\n      <ymin>{_num(y1)}</ymin>\n"
            f"      <xmax>{_num(x2)}</xmax>\n      <ymax>{_num(y2)}</ymax>\n    </bndbox>\n  </object>\n")
    text = (f"<annotation>\n  <folder>images</folder>\n  <filename>{escape(name)}</filename>\n"
            f"  <size>\n    <width>{sample.width}</width>\n    <height>{sample.height}</height>\n"
            f"    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n{''.join(objects)}</annotation>\n")
    return text.encode("utf-8")


def _plan_voc(parsed: ParsedDataset, names: list[str]) -> Conversion:
    entries = []
    for sample, name in zip(parsed.samples, names):
        entries.append(Entry(f"images/{name}", source=sample.image_path))
        entries.append(Entry(f"annotations/{_stem(name)}.xml", data=_voc_xml(sample, name, parsed.classes)))
    entries.append(Entry("classes.txt", data="".join(f"{c}\n" for c in parsed.classes).encode("utf-8")))
    conv = Conversion("voc", entries, len(parsed.samples), parsed.num_objects)
    given = parsed.meta.get("given_split")
    if given:
        stem_of = {s.image_id: _stem(n) for s, n in zip(parsed.samples, names)}
        for part, ids in given["parts"].items():
            kept = [stem_of[i] for i in ids if i in stem_of]
            entries.append(Entry(f"ImageSets/Main/{part}.txt", data="".join(f"{i}\n" for i in kept).encode("utf-8")))
        conv.notes.append(f"the dataset's own split ({given['source']}) written as ImageSets/Main lists")
    return conv


def _yolo_lines(sample: Sample) -> bytes:
    w, h = float(sample.width), float(sample.height)
    lines = []
    for j in range(sample.num_objects):
        x1, y1, x2, y2 = (float(v) for v in sample.boxes[j])
        cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
        lines.append(f"{int(sample.labels[j])} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n")
    return "".join(lines).encode("utf-8")


def _plan_yolo(parsed: ParsedDataset, names: list[str]) -> Conversion:
    import yaml

    from detcore.data.splits import make_split

    notes: list[str] = []
    folder_of: dict[str, str] = {}
    given = parsed.meta.get("given_split")
    if given:
        try:
            split = make_split([s.image_id for s in parsed.samples], "imagesets", given=given)
        except DataError as e:
            notes.append(f"the dataset's own split ({given['source']}) not kept: {e.problem}")
        else:
            folder_of = {i: part for part in ("train", "val", "test") for i in split.part(part)}
            rest = sum(s.image_id not in folder_of for s in parsed.samples)
            notes.append(f"the dataset's own split ({given['source']}) written as images/{{train,val,test}} folders"
                         + (f"; {rest} image(s) in none of its parts written to images/unassigned" if rest else ""))
    entries = []
    for sample, name in zip(parsed.samples, names):
        sub = (folder_of.get(sample.image_id, "unassigned") + "/") if folder_of else ""
        entries.append(Entry(f"images/{sub}{name}", source=sample.image_path))
        entries.append(Entry(f"labels/{sub}{_stem(name)}.txt", data=_yolo_lines(sample)))
    parts = sorted(set(folder_of.values()), key=("train", "val", "test").index)
    doc: dict = {}
    if parts:
        doc.update({p: f"images/{p}" for p in parts})
    else:
        doc.update({"train": "images", "val": "images"})
        notes.append("no split given by the dataset: data.yaml's train and val both name images/ — split before "
                     "training elsewhere (detboard splits it itself)")
    doc["nc"] = len(parsed.classes)
    doc["names"] = {i: name for i, name in enumerate(parsed.classes)}
    header = f"# converted by detboard from {parsed.format}; paths are relative to this file's folder\n"
    text = header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    entries.append(Entry("data.yaml", data=text.encode("utf-8")))
    return Conversion("yolo", entries, len(parsed.samples), parsed.num_objects, notes)


# --- the report -----------------------------------------------------------------------------------

def report_text(parsed: ParsedDataset, conv: Conversion, source: str) -> str:
    """``detboard-conversion.txt``: where the data came from, the notes, and every problem found
    while reading (the converted data holds what was read, so these are not fixed in it)."""
    from collections import Counter

    counts = Counter(p.kind for p in parsed.problems)
    lines = [f"Converted by detboard (python -m detcore convert) from {parsed.format} to {conv.target}.",
             f"Source: {source}", f"Images: {conv.images}  Objects: {conv.objects}  Classes: {len(parsed.classes)}",
             "", "Notes:"]
    lines += [f"  - {n}" for n in conv.notes] or ["  (none)"]
    lines += ["", f"Problems found while reading the source ({len(parsed.problems)}); the data above is what was "
                  "read: dropped objects and images are not here, clipped boxes are clipped:"]
    lines += [f"  {kind}: {n}" for kind, n in sorted(counts.items())]
    lines += [f"  - {p.kind}: {p.file}: {p.detail}" for p in parsed.problems]
    return "\n".join(lines) + "\n"


# --- writing --------------------------------------------------------------------------------------

def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _checked_target(root: Path, rel: str) -> Path:
    target = Path(os.path.normpath(root / rel))
    if rel.startswith("/") or ".." in Path(rel).parts or not _inside(target, root):
        raise DataError(rel, "would be written outside the output folder; refused")
    return target


def _check_out(out: Path, *, force: bool, source_root: Path | None) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder")
    if source_root is not None:
        o, s = Path(os.path.abspath(out)).resolve(), Path(os.path.abspath(source_root)).resolve()
        if _inside(o, s):
            raise DataError(out, f"lies inside the dataset being converted ({source_root}); choose a folder outside it")
        if _inside(s, o):
            raise DataError(out, f"holds the dataset being converted ({source_root}); choose another folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise DataError(out, "is not empty; choose a new or empty folder (or --force to replace an earlier "
                                 "conversion)")
        if not (out / REPORT_FILE).is_file():
            raise DataError(out, f"is not empty and holds no {REPORT_FILE}, so convert did not write it; "
                                 "refusing to replace it even with --force")


def write_folder(conv: Conversion, out: str | Path, *, report: str, force: bool = False,
                 source_root: str | Path | None = None) -> Path:
    """Write ``conv`` into ``out`` (all or nothing; see the module docstring for ``force``)."""
    out = Path(out)
    _check_out(out, force=force, source_root=Path(source_root) if source_root is not None else None)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as e:
        raise DataError(out, f"cannot write here: {e}") from None
    old: Path | None = None
    try:
        for entry in [*conv.entries, Entry(REPORT_FILE, data=report.encode("utf-8"))]:
            target = _checked_target(staging, entry.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            if entry.data is not None:
                with open(target, "wb") as f:
                    f.write(entry.data)
                    f.flush()
                    os.fsync(f.fileno())
            else:
                shutil.copyfile(entry.source, target)
        if out.exists() and any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "previous")
        elif out.exists():
            out.rmdir()
        os.replace(staging, out)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old / "previous", out)  # put the earlier conversion back
        raise DataError(out, f"cannot write the converted dataset: {e}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def estimated_zip_bytes(conv: Conversion, report: str = "") -> int:
    """An upper bound of the zip's size (images stored, text deflated; plus headers)."""
    return conv.total_bytes() + len(report.encode("utf-8")) + 200 * (len(conv.entries) + 1)


def write_zip(conv: Conversion, dest, *, report: str, top: str, max_bytes: int | None = None) -> None:
    """Write ``conv`` as a zip (to a path or a binary file object), everything under ``top/``.
    Above ``max_bytes`` (estimated before anything is written) a DataError says so."""
    try:
        size = estimated_zip_bytes(conv, report)
    except OSError as e:
        raise DataError(getattr(e, "filename", None) or top, f"cannot read: {e.strerror or e}") from None
    if max_bytes is not None and size > max_bytes:
        raise DataError(top, f"the {conv.target.upper()} zip would be about {size / 2**20:,.0f} MB, above the "
                             f"{max_bytes / 2**20:,.0f} MB limit for a download; convert on the server instead: "
                             f"python -m detcore convert DATA --to {conv.target} --out DIR")
    top = safe_name(top)
    with zipfile.ZipFile(dest, "w") as zf:
        for entry in [*conv.entries, Entry(REPORT_FILE, data=report.encode("utf-8"))]:
            _checked_target(Path("/z"), entry.path)
            name = f"{top}/{entry.path}"
            if entry.data is not None:
                zf.writestr(name, entry.data, compress_type=zipfile.ZIP_DEFLATED)
            else:
                try:
                    zf.write(entry.source, name, compress_type=zipfile.ZIP_STORED)  # images are compressed already
                except OSError as e:
                    raise DataError(entry.source, f"cannot read: {e.strerror or e}") from None


def zip_bytes(parsed: ParsedDataset, to: str, *, max_bytes: int, source: str | None = None) -> tuple[bytes, Conversion]:
    """The dataset converted to ``to`` as zip bytes (for a download), refused above ``max_bytes``."""
    conv = plan_conversion(parsed, to)
    folder = dataset_folder(parsed)
    report = report_text(parsed, conv, source or str(folder))
    buf = io.BytesIO()
    write_zip(conv, buf, report=report, top=f"{folder.name}-{to}", max_bytes=max_bytes)
    return buf.getvalue(), conv


def dataset_folder(parsed: ParsedDataset) -> Path:
    """The folder the dataset lives in (a COCO dataset's root is its image folder; this is above it)."""
    if parsed.format == "coco" and parsed.meta.get("annotation_file"):
        from detcore.data.coco import default_dataset_root

        json_root = default_dataset_root(Path(parsed.meta["annotation_file"]))
        return json_root if _inside(Path(os.path.abspath(parsed.root)), Path(os.path.abspath(json_root))) else parsed.root
    return parsed.root


def convert_dataset(parsed: ParsedDataset, to: str, out: str | Path, *, force: bool = False,
                    source: str | None = None) -> Conversion:
    """Convert ``parsed`` to ``to`` and write it into the folder ``out``."""
    conv = plan_conversion(parsed, to)
    write_folder(conv, out, report=report_text(parsed, conv, source or str(dataset_folder(parsed))), force=force,
                 source_root=dataset_folder(parsed))
    return conv

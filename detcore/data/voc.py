"""Pascal VOC XML reader: the Face Mask layout and the VOCdevkit layout (pure parser, no pixels).

Layouts (folder names matched case-insensitively):
  - Face Mask: ``images/`` + ``annotations/``; the XML ``<filename>`` names the image. When it names
    no file, the image with the XML's stem is used and ``filename_mismatch`` is reported.
  - VOCdevkit: ``JPEGImages/`` + ``Annotations/`` (+ ``ImageSets/Main/*.txt``: the split the dataset
    gives, kept in ``meta["given_split"]`` for the ``imagesets`` split method).
  - any other annotation folder beside ``images/`` (or ``JPEGImages/``, ``imgs/``) — ``annots/``,
    ``labels/``, ``xml/``, ... — found by content: it holds ``.xml`` files whose root element is
    ``<annotation>`` (so YOLO's ``labels/`` of ``.txt`` files or COCO's ``annotations/`` of JSON are
    not taken for VOC). Layout name ``"<images>+<annotations>"``, e.g. ``"images+annots"``.
  - flat: ``.xml`` files beside their images in one folder (LabelImg's default).

Coordinates are kept exactly as written (x1 = xmin, x2 = xmax, continuous; no +1/-1 arithmetic),
clipped to ``<size>`` and reported (the real Face Mask set has xmax=401 on 400-px images).
Class order: a known list (``classes=`` or a ``classes.txt`` beside the folders) or else the sorted
unique names; case/space/hyphen variants are normalised and reported.

Speed: one XML file becomes a small JSON-able record; records are cached in memory and in an
on-disk index (outside the dataset, see :func:`index_cache_dir`) keyed by file size + mtime, so a
second load of an unchanged folder re-parses nothing. Safety: the parser itself (expat, which detects
the encoding — UTF-8, UTF-16 with or without a BOM, Latin-1 ... — exactly as ElementTree does) stops at
a DOCTYPE internal subset or any entity declaration, so a file declaring entities is refused
(``unsafe_xml``) whatever its encoding: no entity expansion, no external entities, nothing fetched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
import xml.etree.ElementTree as ET
from xml.parsers import expat
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from detcore import atomic
from detcore.data.quality import (MAX_OBJECTS_PER_IMAGE, canonical_class_names, clip_to_images, clipped_problem,
                                  degenerate_problem, too_many_objects)
from detcore.data.splits import read_imagesets
from detcore.errors import DataError
from detcore.structures import ParsedDataset, Problem, Sample

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
_RECORD_VERSION = 1  # bump when the record layout changes: old on-disk indexes are then ignored
_MEMORY_INDEX: dict[str, dict[str, list]] = {}  # annotations dir -> {name: [size, mtime_ns, record]}


# --- one file -----------------------------------------------------------------------------------

def parse_voc_xml(data: bytes) -> dict[str, Any]:
    """Parse one VOC annotation into a record: filename, size, objects, problems.

    ``objects`` rows are ``[name, x1, y1, x2, y2, difficult, truncated]`` with coordinates None when
    the object cannot be used; its problem is then in ``problems`` as ``[kind, detail]``.
    """
    try:
        root = parse_guarded(data)
    except _Declares as e:
        return _failed("unsafe_xml", f"declares {e}; refused to parse (entity expansion guard)")
    except _TooManyObjects:
        return _too_many(MAX_OBJECTS_PER_IMAGE, at_least=True)
    except (expat.ExpatError, LookupError, ValueError) as e:  # LookupError: an unknown declared encoding
        return _recover_with_soup(data, str(e))  # html.parser knows no DTD: it expands no entity either
    return _record_from_tree(_EtNode(root), recovered_from=None)


def _too_many(count: int, *, at_least: bool = False) -> dict[str, Any]:
    problem = too_many_objects(count, file="", image_id=None, at_least=at_least)
    return _failed(problem.kind, problem.detail)


class _Declares(Exception):
    """Raised from inside the parser at the first DOCTYPE internal subset or entity declaration."""


class _TooManyObjects(Exception):
    """Raised from inside the parser at the first <object> beyond MAX_OBJECTS_PER_IMAGE."""


def _refuse_doctype(name, system_id, public_id, has_internal_subset) -> None:
    if has_internal_subset:  # a bare <!DOCTYPE annotation> declares nothing and is read as usual
        raise _Declares("a DOCTYPE internal subset")


def _refuse_entity(name, *_args) -> None:
    raise _Declares(f"entity {name!r}")


def parse_guarded(data: bytes) -> ET.Element:
    """``data`` parsed into an ElementTree element by expat, refusing (``_Declares``) a DOCTYPE
    internal subset or an entity declaration as soon as the parser meets it — before anything is
    expanded. The guard sits in the parser, not in a pattern over the bytes, so it holds in every
    encoding expat reads (the walk's bypass: UTF-16BE without a BOM, which a byte pattern decoded
    as little-endian). Parsing also stops (``_TooManyObjects``) at the first ``<object>`` beyond
    MAX_OBJECTS_PER_IMAGE. Raises ``expat.ExpatError`` for XML that is not well-formed."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()  # no encoding given: detected from the BOM / declaration, as ET does
    parser.buffer_text = True
    objects = 0

    def start(tag: str, attrs: dict) -> None:
        nonlocal objects
        if tag == "object":
            objects += 1
            if objects > MAX_OBJECTS_PER_IMAGE:  # stop before the tree holds a million objects
                raise _TooManyObjects()
        builder.start(tag, attrs)

    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_entity
    parser.Parse(data, True)
    return builder.close()


def _failed(kind: str, detail: str) -> dict[str, Any]:
    return {"ok": False, "filename": None, "size": None, "objects": [], "problems": [[kind, detail]]}


def _recover_with_soup(data: bytes, error: str) -> dict[str, Any]:
    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning  # only broken files pay for the lenient parser

    with warnings.catch_warnings():  # html.parser is chosen on purpose: it is the lenient one
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(data, "html.parser")
    node = _SoupNode(soup)
    if soup.find("object") is None and soup.find("filename") is None:
        return _failed("malformed_xml", f"not well-formed XML ({error}) and nothing recoverable; dropped")
    return _record_from_tree(node, recovered_from=error)


class _EtNode:
    def __init__(self, el: ET.Element):
        self.el = el

    def text(self, tag: str) -> str | None:
        value = self.el.findtext(tag)
        return None if value is None else value.strip()

    def child(self, tag: str) -> "_EtNode | None":
        child = self.el.find(tag)
        return None if child is None else _EtNode(child)

    def objects(self) -> list["_EtNode"]:
        return [_EtNode(o) for o in self.el.findall("object")]


class _SoupNode:
    def __init__(self, tag: Any):
        self.tag = tag

    def text(self, tag: str) -> str | None:
        child = self.tag.find(tag)
        return None if child is None else (child.string or child.get_text() or "").strip()

    def child(self, tag: str) -> "_SoupNode | None":
        child = self.tag.find(tag)
        return None if child is None else _SoupNode(child)

    def objects(self) -> list["_SoupNode"]:
        return [_SoupNode(o) for o in self.tag.find_all("object", limit=MAX_OBJECTS_PER_IMAGE + 1)]


def _record_from_tree(root: Any, *, recovered_from: str | None) -> dict[str, Any]:
    problems: list[list[str]] = []
    nodes = root.objects()
    if len(nodes) > MAX_OBJECTS_PER_IMAGE:  # the lenient parser's tree (the strict one stopped at the cap)
        return _too_many(len(nodes), at_least=len(nodes) == MAX_OBJECTS_PER_IMAGE + 1)
    objects = [_object_row(o, i, problems) for i, o in enumerate(nodes)]
    if recovered_from is not None:
        problems.insert(0, ["malformed_xml", f"not well-formed XML ({recovered_from}); recovered "
                                             f"{sum(r[1] is not None for r in objects)} object(s) leniently"])
    return {"ok": True, "filename": root.text("filename"), "size": _size(root.child("size")),
            "objects": objects, "problems": problems}


def _size(node: Any) -> list[int] | None:
    if node is None:
        return None
    try:
        w, h = int(float(node.text("width") or "")), int(float(node.text("height") or ""))
    except ValueError:
        return None
    return [w, h] if w > 0 and h > 0 else None


def _flag(node: Any, tag: str) -> bool:
    try:
        return float(node.text(tag) or 0) != 0
    except ValueError:
        return False


def _object_row(obj: Any, index: int, problems: list[list[str]]) -> list:
    name = obj.text("name") or ""
    row = [name, None, None, None, None, _flag(obj, "difficult"), _flag(obj, "truncated")]
    box = obj.child("bndbox")
    values = [None if box is None else box.text(t) for t in ("xmin", "ymin", "xmax", "ymax")]
    label = f"object {index + 1} ({name or 'no name'})"
    if any(v is None or v == "" for v in values):
        problems.append(["missing_bndbox", f"{label} has no complete <bndbox>; dropped"])
        return row
    try:
        coords = [float(v) for v in values]
    except ValueError:
        problems.append(["bad_coordinates", f"{label} has non-numeric coordinates {values}; dropped"])
        return row
    if not all(np.isfinite(coords)):
        problems.append(["bad_coordinates", f"{label} has non-finite coordinates {values}; dropped"])
        return row
    row[1:5] = coords
    return row


# --- the cached index ---------------------------------------------------------------------------

def index_cache_dir() -> Path:
    """Where parsed-annotation indexes live: ``$DETBOARD_CACHE`` or the user's cache folder.

    Kept out of the dataset on purpose: datasets may be read-only, shared, or under version control.
    """
    env = os.environ.get("DETBOARD_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "detboard"


def _index_file(ann_dir: Path) -> Path:
    digest = hashlib.sha1(str(ann_dir).encode("utf-8")).hexdigest()[:16]
    return index_cache_dir() / "voc-index" / f"{digest}.json"


def _read_disk_index(ann_dir: Path) -> dict[str, list]:
    try:
        with open(_index_file(ann_dir), "rb") as f:
            payload = json.load(f)
        if payload.get("version") == _RECORD_VERSION and payload.get("folder") == str(ann_dir):
            return payload["files"]
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        pass  # a missing or damaged cache only costs a re-parse
    return {}


def _is_record(obj: Any) -> bool:
    return isinstance(obj, dict) and {"ok", "filename", "size", "objects", "problems"} <= obj.keys()


def _write_disk_index(ann_dir: Path, files: dict[str, list]) -> None:
    try:
        atomic.write_text(_index_file(ann_dir), json.dumps(
            {"version": _RECORD_VERSION, "folder": str(ann_dir), "files": files}, separators=(",", ":")))
    except OSError:
        pass  # read-only cache folder: still correct, just not warm next time


def read_annotation_records(ann_dir: Path, *, use_cache: bool = True) -> dict[str, dict]:
    """Every ``*.xml`` in ``ann_dir`` as {file name: record}, re-parsing only files whose size or
    mtime changed since the cached index was written."""
    ann_dir = ann_dir.resolve()
    current = {e.name: e.stat() for e in os.scandir(ann_dir) if e.name.lower().endswith(".xml") and e.is_file()}
    key = str(ann_dir)
    cached = _MEMORY_INDEX.get(key) if use_cache else None
    if cached is None and use_cache:
        cached = _read_disk_index(ann_dir)
    cached = cached or {}
    fresh: dict[str, list] = {}
    changed = len(cached) != len(current)
    for name, st in current.items():
        hit = cached.get(name)
        if isinstance(hit, list) and len(hit) == 3 and hit[:2] == [st.st_size, st.st_mtime_ns] and _is_record(hit[2]):
            fresh[name] = hit
            continue
        changed = True
        try:
            data = (ann_dir / name).read_bytes()
        except OSError as e:
            fresh[name] = [st.st_size, st.st_mtime_ns, _failed("unreadable_annotation", f"cannot read: {e}")]
            continue
        fresh[name] = [st.st_size, st.st_mtime_ns, parse_voc_xml(data)]
    if use_cache:
        _MEMORY_INDEX[key] = fresh
        if changed:
            _write_disk_index(ann_dir, fresh)
    return {name: entry[2] for name, entry in fresh.items()}


# --- the folder ---------------------------------------------------------------------------------

def _subdir(root: Path, *names: str) -> Path | None:
    wanted = {n.lower() for n in names}
    try:
        for entry in os.scandir(root):
            if entry.is_dir() and entry.name.lower() in wanted:
                return Path(entry.path)
    except OSError:
        return None
    return None


def _holds(folder: Path, suffixes: tuple[str, ...]) -> bool:
    with os.scandir(folder) as entries:
        return any(e.name.lower().endswith(suffixes) for e in entries)


IMAGE_DIR_NAMES = ("JPEGImages", "images", "imgs")
# When several folders hold VOC XML, the first of these names wins; others are only found by content.
ANNOTATION_DIR_NAMES = ("annotations", "annots", "labels", "xml", "annotation")
_FIRST_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)
_SNIFF_FILES = 5


def is_voc_annotation(head: bytes) -> bool:
    """Whether the start of an XML file opens an ``<annotation>`` element (its root, after the
    prolog and comments). Decided on the first few KB, without parsing the file."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        head = head.decode("utf-16", "ignore").encode()
    elif head[:2] in (b"\x00<", b"<\x00"):  # UTF-16 without a BOM: the first character tells the byte order
        head = head.decode("utf-16-be" if head[0] == 0 else "utf-16-le", "ignore").encode()
    match = _FIRST_TAG.search(_COMMENT.sub(b"", head))
    return match is not None and match.group(1).split(b":")[-1].lower() == b"annotation"


def holds_voc_xml(folder: Path) -> bool:
    """Whether ``folder`` holds VOC annotation files (checks the first few ``.xml`` by content)."""
    try:
        with os.scandir(folder) as entries:
            xml = sorted(e.path for e in entries if e.name.lower().endswith(".xml") and e.is_file())
    except OSError:
        return False
    for path in xml[:_SNIFF_FILES]:
        try:
            with open(path, "rb") as f:
                if is_voc_annotation(f.read(4096)):
                    return True
        except OSError:
            continue
    return False


def _annotation_dir(root: Path, image_dir: Path) -> Path | None:
    """The folder beside ``image_dir`` that holds VOC XML, found by content; preferred names first."""
    try:
        folders = sorted((Path(e.path) for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")),
                         key=lambda p: p.name)
    except OSError:
        return None
    rank = {name: i for i, name in enumerate(ANNOTATION_DIR_NAMES)}
    folders.sort(key=lambda p: rank.get(p.name.lower(), len(rank)))
    for folder in folders:
        if folder != image_dir and holds_voc_xml(folder):
            return folder
    return None


def find_voc_layout(root: str | Path, *, require_xml: bool = True) -> tuple[Path, Path, str] | None:
    """(annotations dir, images dir, layout name) if ``root`` looks like a VOC folder, else None.
    ``require_xml``: the annotations folder must hold VOC XML (an ``<annotation>`` root), which tells
    VOC from COCO's ``annotations/`` (JSON) and YOLO's ``labels/`` (text)."""
    root = Path(root)
    images = _subdir(root, *IMAGE_DIR_NAMES)
    if images is not None:
        ann = _annotation_dir(root, images)
        if ann is None and not require_xml:  # a VOC folder whose annotations are all broken: still read it
            ann = _subdir(root, *ANNOTATION_DIR_NAMES)
        if ann is not None:
            if images.name.lower() == "jpegimages":
                return ann, images, "vocdevkit"
            if (images.name.lower(), ann.name.lower()) == ("images", "annotations"):
                return ann, images, "facemask"
            return ann, images, f"{images.name}+{ann.name}"
    if _holds(root, (".xml",)) and _holds(root, IMAGE_SUFFIXES) and (not require_xml or holds_voc_xml(root)):
        return root, root, "flat"  # LabelImg's default: each .xml saved next to its image
    return None


def read_class_list(root: Path) -> list[str] | None:
    """A ``classes.txt`` (one name per line) beside the folders fixes the class order."""
    path = root / "classes.txt"
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(set(names)) != len(names) or not names:
        raise DataError(path, "class list is empty or repeats a name")
    return names


def load_voc_folder(root: str | Path, *, classes: list[str] | None = None, use_cache: bool = True) -> ParsedDataset:
    """Read a VOC folder (Face Mask or VOCdevkit layout) into a ParsedDataset.

    Samples are ordered by image file name (the tutorials' ``sorted(os.listdir('images'))``), so
    index-based splits reproduce theirs. Raises DataError when the folder is not a VOC layout.
    """
    root = Path(root)
    layout = find_voc_layout(root, require_xml=False)
    if layout is None:
        raise DataError(root, "not a VOC folder: expected images/ (or JPEGImages/) beside a folder of VOC .xml "
                              "files (annotations/, annots/, labels/, xml/, ...), or .xml files beside their images")
    ann_dir, img_dir, layout_name = layout
    records = read_annotation_records(ann_dir, use_cache=use_cache)
    known = classes if classes is not None else read_class_list(root)
    names = Counter(row[0].strip() for r in records.values() for row in r["objects"] if row[0].strip())
    canon = canonical_class_names(names, known)
    class_list = list(known) if known is not None else sorted(set(canon.values()))
    builder = _SampleBuilder(img_dir, canon, {c: i for i, c in enumerate(class_list)})
    for name in sorted(records):
        builder.add(ann_dir / name, records[name])
    samples = sorted(builder.build(), key=lambda s: s.image_path.name)  # the tutorials sort file names
    builder.report_orphans()
    meta = {"layout": layout_name, "annotation_dir": str(ann_dir), "image_dir": str(img_dir)}
    given = read_imagesets(root)
    if given is not None:
        meta["given_split"] = given
    return ParsedDataset(format="voc", root=root, classes=class_list, samples=samples,
                         problems=builder.problems, meta=meta)


class _SampleBuilder:
    """Turns cached records into Samples: image resolution, class mapping, then one vectorised
    clipping pass over every box of the dataset (per-sample numpy calls would dominate warm loads)."""

    def __init__(self, img_dir: Path, canon: dict[str, str], index: dict[str, int]):
        self.img_dir = img_dir
        self.images = {e.name for e in os.scandir(img_dir) if e.name.lower().endswith(IMAGE_SUFFIXES) and e.is_file()}
        self.by_stem: dict[str, str] = {}
        for name in sorted(self.images):
            self.by_stem.setdefault(os.path.splitext(name)[0], name)
        self.canon, self.index = canon, index
        self.used: set[str] = set()
        self.heads: list[tuple[str, Path, Path, int | None, int | None]] = []  # id, image, xml, w, h
        self.rows: list[tuple] = []  # x1, y1, x2, y2, label, difficult, truncated, owner
        self.problems: list[Problem] = []

    def add(self, ann_path: Path, record: dict) -> None:
        file = str(ann_path)
        stem = ann_path.stem
        for kind, detail in record["problems"]:
            self.problems.append(Problem(kind, file, detail, stem))
        if not record["ok"]:
            if record["problems"][0][0] == "too_many_objects" and stem in self.by_stem:
                self.used.add(self.by_stem[stem])  # its image is not an orphan: it was refused, and said so
            return
        image_name = self._resolve_image(file, stem, record.get("filename"))
        if image_name is None:
            return
        self.used.add(image_name)
        size = record["size"]
        if size is None:
            self.problems.append(Problem("missing_size", file, "no usable <size>; boxes are clipped once the "
                                         "image header is read (verify_images)", stem))
        w, h = (size or (None, None))
        self._objects(file, stem, record["objects"], owner=len(self.heads))
        self.heads.append((stem, self.img_dir / image_name, ann_path, w, h))

    def _resolve_image(self, file: str, stem: str, filename: str | None) -> str | None:
        named = os.path.basename(filename.replace("\\", "/")) if filename else ""
        if named in self.images:
            return named
        fallback = self.by_stem.get(stem) or self.by_stem.get(os.path.splitext(named)[0])
        if fallback is None:
            self.problems.append(Problem("missing_image", file, f"image {named or stem!r} is not in "
                                         f"{self.img_dir}; annotation skipped", stem))
            return None
        if named:
            self.problems.append(Problem("filename_mismatch", file, f"<filename> {named!r} is not in "
                                         f"{self.img_dir.name}/; using {fallback!r} (same name as the XML)", stem))
        return fallback

    def _objects(self, file: str, stem: str, rows: list, *, owner: int) -> None:
        variants: set[str] = set()
        for name, x1, y1, x2, y2, diff, trunc in rows:
            if x1 is None:
                continue  # its problem is already in the record
            spelled = name.strip()
            canonical = self.canon.get(spelled)
            if canonical is None or canonical not in self.index:
                self.problems.append(Problem("unknown_class", file, f"class {name!r} is not in the class list; dropped"
                                             if spelled else "object without a <name>; dropped", stem))
                continue
            if name != canonical and name not in variants:
                variants.add(name)
                self.problems.append(Problem("class_name_variant", file,
                                             f"class {name!r} read as {canonical!r}", stem))
            self.rows.append((x1, y1, x2, y2, self.index[canonical], diff, trunc, owner))

    def build(self) -> list[Sample]:
        table = np.asarray([r[:4] for r in self.rows], np.float32).reshape(-1, 4)
        owner = np.asarray([r[7] for r in self.rows], np.int64)
        sizes = np.asarray([(np.nan if w is None else w, np.nan if h is None else h) for *_, w, h in self.heads],
                           np.float64).reshape(-1, 2)
        boxes, changed, keep = clip_to_images(table, sizes[owner, 0], sizes[owner, 1])
        for i in np.flatnonzero(changed | ~keep):
            stem, _, ann_path, w, h = self.heads[owner[i]]
            if changed[i] and keep[i]:
                self.problems.append(clipped_problem(table[i], boxes[i], w, h, file=str(ann_path), image_id=stem))
            if not keep[i]:
                self.problems.append(degenerate_problem(table[i], file=str(ann_path), image_id=stem))
        labels = np.asarray([r[4] for r in self.rows], np.int64)
        flags = np.asarray([r[5:7] for r in self.rows], bool).reshape(-1, 2)
        boxes, labels, flags, owner = boxes[keep], labels[keep], flags[keep], owner[keep]
        ends = np.searchsorted(owner, np.arange(len(self.heads)), side="right")
        samples, start = [], 0
        for k, (stem, image_path, ann_path, w, h) in enumerate(self.heads):
            end = int(ends[k])
            samples.append(Sample(image_id=stem, image_path=image_path, width=w, height=h, boxes=boxes[start:end],
                                  labels=labels[start:end], difficult=flags[start:end, 0],
                                  truncated=flags[start:end, 1], annotation_path=ann_path))
            if end == start:
                self.problems.append(Problem("no_objects", str(ann_path), "no usable objects; kept as a negative "
                                             "image", stem))
            start = end
        return samples

    def report_orphans(self) -> None:
        for name in sorted(self.images - self.used):
            self.problems.append(Problem("missing_annotation", str(self.img_dir / name),
                                         "image has no annotation file; not loaded", os.path.splitext(name)[0]))

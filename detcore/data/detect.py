"""Find out what a dataset path holds, read it, and import zips safely.

``load_dataset(path)`` accepts a folder (VOC, Penn-Fudan, YOLO, or COCO with its JSON inside), a COCO
``.json`` file, or a ``.zip`` of any of these. A folder whose only content is one sub-folder
(``VOCdevkit/VOC2007``, a zip's top folder) is descended into. Zips are extracted once into
``DATA/.imported/<name>-<digest>/`` by :func:`extract_zip_safely`, which refuses members that
would escape the target (``..``, absolute paths, drive letters, symlinks) and enforces an entry limit
(files and folders, counted before ``zipfile`` parses the archive) and a total-size limit from the
headers and again while streaming (headers can lie). Uploads also have a disk quota
(:mod:`detcore.data.ziplimits`), and an extraction that holds no dataset is removed, not kept.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path

from detcore.atomic import write_bytes
from detcore.data.coco import load_coco_json
from detcore.data.pennfudan import is_pennfudan_folder, load_pennfudan
from detcore.data.quality import drop_crowded_samples, verify_images as check
from detcore.data.voc import find_voc_layout, is_voc_annotation, load_voc_folder
from detcore.data.yolo import find_yolo_layout, load_yolo
from detcore.data import ziplimits
from detcore.errors import DataError
from detcore.paths import data_root, uploads_root
from detcore.structures import ParsedDataset

FORMATS = ("voc", "pennfudan", "coco", "yolo")
DEFAULT_MAX_FILES = 100_000  # entries: files and folders (explicit or implied by member paths)
DEFAULT_MAX_BYTES = 8 * 1024**3  # 8 GiB uncompressed: the full COCO train set fits, a zip bomb doesn't
_CHUNK = 1 << 20
_IGNORED_TOP = {"__MACOSX", ".DS_Store"}
_DRIVE = re.compile(r"^[A-Za-z]:")


# --- detection ----------------------------------------------------------------------------------

def _coco_files(folder: Path) -> list[Path]:
    """JSON files in ``folder`` or ``folder/annotations`` that start like COCO instances files."""
    found = []
    for where in (folder, folder / "annotations"):
        if not where.is_dir():
            continue
        for path in sorted(where.glob("*.json")):
            with open(path, "rb") as f:
                head = f.read(1 << 16)
            if b'"images"' in head or b'"annotations"' in head or b'"categories"' in head:
                found.append(path)
    return found


def _visible_children(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name not in _IGNORED_TOP and not p.name.startswith(".")]


class NoDataset(DataError):
    """The path holds no dataset in a known (or the requested) format."""


def resolve_dataset(path: str | Path, format: str = "auto") -> tuple[Path, str]:
    """(folder or JSON file to read, format). Descends through single sub-folders (up to 3 levels)."""
    path = Path(path)
    if format not in ("auto", *FORMATS):
        raise DataError(path, f"unknown format {format!r}; choose auto, {', '.join(FORMATS)}")
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_file():
        if path.suffix.lower() == ".json" and format in ("auto", "coco"):
            return path, "coco"
        raise DataError(path, "expected a dataset folder, a COCO .json or a .zip")
    folder = path
    for _ in range(4):
        found = _formats_in(folder)
        if format != "auto":
            found = {k: v for k, v in found.items() if k == format}
        if len(found) == 1:
            fmt, target = next(iter(found.items()))
            return target, fmt
        if len(found) > 1:
            raise DataError(folder, f"holds several formats ({', '.join(sorted(found))}); pass --format")
        children = _visible_children(folder)
        if len(children) != 1 or not children[0].is_dir():
            break
        folder = children[0]
    wanted = "dataset in a known format" if format == "auto" else f"{format} dataset"
    raise NoDataset(path, f"found no {wanted}: expected images/ beside a folder of VOC .xml (annotations/, "
                          "annots/, ...), Annotations/+JPEGImages/ (VOCdevkit), PNGImages/+PedMasks/ (Penn-Fudan), "
                          "images/+labels/ with data.yaml or classes.txt (YOLO) or a COCO instances .json")


def _formats_in(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if find_voc_layout(folder) is not None:
        found["voc"] = folder
    if is_pennfudan_folder(folder):
        found["pennfudan"] = folder
    if find_yolo_layout(folder) is not None:
        found["yolo"] = folder
    coco = _coco_files(folder)
    if len(coco) > 1:
        raise DataError(folder, f"several COCO files ({', '.join(p.name for p in coco)}); pass one of them")
    if coco:
        found["coco"] = coco[0]
    return found


def detect_format(path: str | Path) -> str:
    """"voc", "pennfudan", "coco" or "yolo" for a folder, a .json or a .zip (zips judged by member
    names and, for VOC, the first bytes of a few .xml members)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        return _detect_zip_format(path)
    return resolve_dataset(path)[1]


def _detect_zip_format(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX")]
            names = [i.filename.replace("\\", "/").lower() for i in members]
            if any("pedmasks/" in n for n in names):
                return "pennfudan"
            xml = [i for i, n in zip(members, names) if n.endswith(".xml")][:5]
            if any(_zip_head_is_voc(zf, i) for i in xml):
                return "voc"
    except (zipfile.BadZipFile, OSError, zlib.error) as e:
        raise DataError(path, f"not a readable zip file: {e}") from None
    if any(re.search(r"(^|/)labels/(.+/)?[^/]+\.txt$", n) and not n.endswith("/classes.txt") for n in names) \
            or any(re.search(r"(^|/)data\.ya?ml$", n) for n in names):
        return "yolo"
    if any(n.endswith(".json") for n in names):
        return "coco"
    raise DataError(path, "the zip holds no VOC, Penn-Fudan, YOLO or COCO dataset")


def _zip_head_is_voc(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    with zf.open(info) as f:  # reads at most 4 KB however large the member claims to be
        return is_voc_annotation(f.read(4096))


# --- loading ------------------------------------------------------------------------------------

def load_dataset(path: str | Path, format: str = "auto", *, verify_images: bool = False,
                 classes: list[str] | None = None) -> ParsedDataset:
    """Read any supported dataset; with ``verify_images`` also open every image header
    (:func:`detcore.data.quality.verify_images`: unusable images are dropped and reported).

    ``classes`` fixes the class list and order of a VOC dataset (names outside it are dropped and
    reported); Penn-Fudan, COCO and YOLO take their classes from the data, so callers compare.
    Raises DataError when nothing usable is there."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        path = _import_zip(path, format)
    target, fmt = resolve_dataset(path, format)
    if fmt == "voc":
        parsed = load_voc_folder(target, classes=classes)
    elif fmt == "pennfudan":
        parsed = load_pennfudan(target)
    elif fmt == "yolo":
        parsed = load_yolo(target)
    else:
        parsed = load_coco_json(target, dataset_root=path if path.is_dir() else None)
    parsed.problems.extend(drop_crowded_samples(parsed))
    if verify_images:
        parsed.problems.extend(check(parsed))
    if parsed.num_images == 0:
        first = parsed.problems[0] if parsed.problems else None
        raise DataError(first.file if first else target,
                        f"{first.detail} — no usable images in the dataset" if first else "no images in the dataset")
    return parsed


def import_uploaded_zip(payload: bytes, name: str, dest_root: Path | None = None) -> Path:
    """Extract an uploaded archive (its bytes, its file name) safely into ``dest_root`` (default
    DATA/uploads/) as ``<stem>-<sha256 prefix>/`` and return the dataset root inside it. The same
    archive uploaded again reuses its extraction. The uploads folder's disk quota
    (``DETBOARD_UPLOADS_MAX_MB``) is checked from the headers and enforced while streaming, and an
    archive that holds no dataset is not kept. Raises DataError naming ``name`` (the folder is then
    left as it was)."""
    dest_root = Path(dest_root) if dest_root is not None else uploads_root()
    digest = hashlib.sha256(payload).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._") or "upload"
    folder = dest_root / f"{stem}-{digest}"
    if folder.is_dir():
        return _content_root(folder)
    quota = ziplimits.quota_bytes()
    room = quota - ziplimits.disk_usage(dest_root) - len(payload)  # the archive itself sits there meanwhile
    zip_path = dest_root / f".{stem}-{digest}.zip"
    try:
        if room < 0:
            raise ziplimits.QuotaExceeded(zip_path, f"the {ziplimits.mib(len(payload))} archive does not fit")
        write_bytes(zip_path, payload)
        root = extract_zip_safely(zip_path, folder, max_bytes=min(DEFAULT_MAX_BYTES, room), max_disk=room)
        return _keep_only_a_dataset(folder, root, "auto")
    except ziplimits.QuotaExceeded as e:
        raise DataError(name, f"{e.problem}: the uploads folder may take {ziplimits.mib(quota)} on disk "
                              f"({ziplimits.QUOTA_ENV}) and has {ziplimits.mib(max(room, 0))} left; remove "
                              "old uploads under DATA/uploads/ or raise the quota") from None
    except DataError as e:
        if e.file in (str(zip_path), str(folder)) or Path(e.file).is_relative_to(folder):
            raise DataError(name, e.problem) from None  # name what the user dropped, not a server path
        raise
    finally:
        zip_path.unlink(missing_ok=True)


def _import_zip(zip_path: Path, format: str = "auto") -> Path:
    st = zip_path.stat()
    digest = hashlib.sha1(f"{zip_path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    dest = data_root() / ".imported" / f"{zip_path.stem}-{digest}"
    if dest.is_dir():
        return _content_root(dest)  # extracted before; the rename made it all-or-nothing
    try:
        return _keep_only_a_dataset(dest, extract_zip_safely(zip_path, dest), format)
    except NoDataset as e:
        raise DataError(zip_path, e.problem) from None


def _keep_only_a_dataset(folder: Path, root: Path, format: str) -> Path:
    """``root`` when the extraction holds a dataset; else the extraction is removed and NoDataset raised
    (a zip of anything at all must not stay on the server or become the current dataset)."""
    try:
        resolve_dataset(root, format)
    except NoDataset as e:
        shutil.rmtree(folder, ignore_errors=True)
        raise NoDataset(folder, f"{e.problem}; nothing was kept") from None
    except DataError:
        pass  # a dataset, but an ambiguous one (several formats / COCO files): kept, the reader explains
    return root


# --- safe extraction ----------------------------------------------------------------------------

def _safe_member_path(name: str) -> str | None:
    """The member's relative path, or None if it would land outside the target folder."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or _DRIVE.match(clean) or "\x00" in clean:
        return None
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def _too_many(files: int, folders: int | None, limit: int) -> str:
    if folders is None:
        return f"lists more than {limit} files and folders; the limit is {limit} entries"
    return (f"{files} file{'s' * (files != 1)} and {folders} folder{'s' * (folders != 1)}, above the limit of "
            f"{limit} entries")


def _check_headers(zip_path: Path, infos: list[zipfile.ZipInfo], max_files: int, max_bytes: int,
                   max_disk: int | None) -> None:
    files, folders = ziplimits.archive_entries(infos, _safe_member_path)
    if files + folders > max_files:
        raise DataError(zip_path, _too_many(files, folders, max_files))
    if max_disk is not None and (need := ziplimits.disk_needed(infos, folders)) > max_disk:
        raise ziplimits.QuotaExceeded(zip_path, f"extracting it takes {ziplimits.mib(need)} on disk")
    total = 0
    for info in infos:
        if _safe_member_path(info.filename) is None:
            raise DataError(zip_path, f"member {info.filename!r} would be written outside the target folder; refused")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DataError(zip_path, f"member {info.filename!r} is a symbolic link; refused")
        total += info.file_size
        if total > max_bytes:
            raise DataError(zip_path, f"member {info.filename!r} takes the uncompressed size above the "
                                      f"{max_bytes:,}-byte limit; refused")


def extract_zip_safely(zip_path: str | Path, dest: str | Path, *, max_files: int = DEFAULT_MAX_FILES,
                       max_bytes: int = DEFAULT_MAX_BYTES, max_disk: int | None = None) -> Path:
    """Extract ``zip_path`` into ``dest`` (created; must not hold anything) and return the dataset
    root inside it (the single top folder when the zip has one). All or nothing: the files appear
    under ``dest`` only once every member passed the checks. ``max_files`` bounds the entries (files
    and folders); ``max_disk`` (bytes on disk, by the headers) raises ``ziplimits.QuotaExceeded``."""
    zip_path, dest = Path(zip_path), Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise DataError(dest, "extraction target is not empty")
    try:
        with open(zip_path, "rb") as f:  # before zipfile builds an object per record
            records = ziplimits.count_records(f, max_files)
        if records is not None and records > max_files:
            raise DataError(zip_path, _too_many(0, None, max_files))
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(zip_path, f"not a readable zip file: {e}") from None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    except OSError as e:
        raise DataError(dest, f"cannot extract here: {e}") from None
    try:
        with zf:
            infos = zf.infolist()
            _check_headers(zip_path, infos, max_files, max_bytes, max_disk)
            written = 0
            for info in infos:
                written += _extract_member(zf, info, staging, zip_path, max_bytes - written)
        if dest.exists():
            dest.rmdir()
        os.replace(staging, dest)
    except OSError as e:  # disk full, permissions: a problem of the target, not of the zip
        shutil.rmtree(staging, ignore_errors=True)
        raise DataError(dest, f"cannot extract here: {e}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _content_root(dest)


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, staging: Path, zip_path: Path, budget: int) -> int:
    rel = _safe_member_path(info.filename)
    if not rel or rel.split("/")[0] in _IGNORED_TOP:
        return 0
    target = staging / rel
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with zf.open(info) as src, open(target, "wb") as out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > info.file_size or written > budget:
                    raise DataError(zip_path, f"member {info.filename!r} inflates beyond its declared size or the "
                                              "size limit; refused")
                out.write(chunk)
    except (zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise DataError(zip_path, f"member {info.filename!r} is corrupt: {e}") from None
    return written


def _content_root(folder: Path) -> Path:
    children = _visible_children(folder)
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return folder

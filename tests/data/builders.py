"""Tiny dataset writers for the data-layer tests (real files on disk, no mocks)."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# The real samples: DETBOARD_SHARED_DATA, else ../shared/data beside the repository (CI's layout), else
# /work/shared/data (a clone elsewhere on the development machine). The one place tests find them.
_REPO = Path(__file__).resolve().parents[2]
_SHARED_CANDIDATES = [Path(p) for p in (os.environ.get("DETBOARD_SHARED_DATA"),) if p] + [
    _REPO.parent / "shared" / "data", Path("/work/shared/data")]
SHARED_DATA = next((p for p in _SHARED_CANDIDATES if p.is_dir()), _SHARED_CANDIDATES[0])


def write_image(path: Path, width: int = 40, height: int = 30, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        Image.fromarray(np.full((height, width), 40000, np.uint16)).save(path)
    else:
        Image.new(mode, (width, height)).save(path)
    return path


def voc_object(name: str, box, *, difficult: int = 0, truncated: int = 0) -> str:
    coords = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    return (f"<object><name>{name}</name><truncated>{truncated}</truncated><difficult>{difficult}</difficult>"
            f"<bndbox>{coords}</bndbox></object>")


def voc_xml(filename: str, size=(40, 30), objects: list[str] = ()) -> str:
    size_xml = "" if size is None else f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
    return f"<annotation><folder>images</folder><filename>{filename}</filename>{size_xml}{''.join(objects)}</annotation>"


def write_voc(root: Path, items: dict[str, list[str]], *, size=(40, 30), image_size=None, layout: str = "facemask",
              ext: str = ".png") -> Path:
    """items: stem -> object XML snippets. Writes images (image_size or size) and annotations."""
    ann_dir, img_dir = (("annotations", "images") if layout == "facemask" else ("Annotations", "JPEGImages"))
    (root / ann_dir).mkdir(parents=True, exist_ok=True)
    for stem, objects in items.items():
        w, h = image_size or size
        write_image(root / img_dir / f"{stem}{ext}", w, h)
        (root / ann_dir / f"{stem}.xml").write_text(voc_xml(f"{stem}{ext}", size, objects), encoding="utf-8")
    return root


def write_mask(path: Path, mask: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8), mode="L").save(path)
    return path


def write_coco(path: Path, coco: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco), encoding="utf-8")
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height but holds almost no data (a decompression-bomb stand-in)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def write_yolo_part(images_dir: Path, labels_dir: Path, items: dict[str, list[str] | None], *, size=(40, 30),
                    ext: str = ".png") -> None:
    """items: image stem -> label lines (None: no label file at all, [] : an empty label file)."""
    for stem, lines in items.items():
        write_image(images_dir / f"{stem}{ext}", *size)
        if lines is not None:
            labels_dir.mkdir(parents=True, exist_ok=True)
            (labels_dir / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def write_yolo_yaml(root: Path, names, **extra) -> Path:
    """A data.yaml as Ultralytics / Roboflow write it (names as a list or an {index: name} mapping)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"{k}: {v}" for k, v in extra.items()]
    if isinstance(names, dict):
        lines += ["names:"] + [f"  {k}: {v}" for k, v in names.items()]
    else:
        lines.append("names: [" + ", ".join(f"'{n}'" for n in names) + "]")
    path = root / "data.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

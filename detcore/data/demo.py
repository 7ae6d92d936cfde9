"""The built-in demo dataset: synthetic faces with and without masks, in the Face Mask VOC layout.

Why synthetic: the app must open on something a small detector (SSDlite320 from scratch) can learn
on a 2-core CPU in a few minutes, with no download. Each face's class is drawn so it is visually
unambiguous:

- ``with_mask``: a mask band covers nose and mouth (ear loops up to eye level);
- ``without_mask``: nose and a red mouth visible, no band;
- ``mask_weared_incorrect``: the band sits below a clearly visible nose, covering mouth and chin.

Class mix: the real Kaggle set is about 79 % / 18 % / 3 % of objects. We soften the rare class to
about 8 % (72 / 20 / 8) so a few hundred images still hold ~100 examples of it and it is learnable;
the imbalance is still obvious in the explorer.

Determinism: image ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so the same seed
gives byte-identical files and asking for more images only appends new ones.

Atomicity: everything is written to a hidden temp folder beside the target, a ``demo.json`` marker
is written last, and the folder is renamed into place — a half-generated demo never sits at the
target path, and the marker tells a complete demo from a folder someone else made.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw

from detcore import paths
from detcore.errors import DataError

DEMO_CLASSES = ["with_mask", "without_mask", "mask_weared_incorrect"]
CLASS_WEIGHTS = (0.72, 0.20, 0.08)
IMAGE_SIZE = (320, 240)  # (width, height): SSDlite320 sees it at nearly native resolution
NEGATIVE_FRACTION = 0.08  # images with no faces at all
MARKER = "demo.json"
GENERATOR_VERSION = 1

SKIN_TONES = [(255, 224, 196), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 30)]
HAIR_COLOURS = [(20, 16, 12), (60, 40, 20), (120, 80, 40), (200, 170, 90), (140, 140, 140)]
MASK_COLOURS = [(150, 200, 240), (245, 245, 250), (40, 45, 60), (120, 220, 200), (90, 130, 230), (235, 150, 190)]


@dataclass
class Face:
    box: tuple[float, float, float, float]  # xyxy of the head, the annotated box
    cls: int


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A vertical two-colour gradient with a few muted clutter shapes (so 'not a face' is learned)."""
    top, bottom = rng.integers(40, 230, size=3), rng.integers(40, 230, size=3)
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    grad = (top * (1 - t) + bottom * t).repeat(w, axis=1)
    img = Image.fromarray(grad.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 8))):
        x0, y0 = rng.integers(-40, w), rng.integers(-40, h)
        x1, y1 = x0 + rng.integers(20, 140), y0 + rng.integers(20, 140)
        colour = tuple(int(c) for c in rng.integers(30, 220, size=3))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
    return img


def _place_faces(rng: np.random.Generator, w: int, h: int) -> list[Face]:
    if rng.random() < NEGATIVE_FRACTION:
        return []
    n_wanted = int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.24, 0.26, 0.2, 0.14, 0.1, 0.06]))
    # Fewer faces → larger faces, like real photos (one close-up vs. a crowd).
    max_width = 110 if n_wanted <= 2 else (80 if n_wanted <= 4 else 62)
    faces: list[Face] = []
    for _ in range(n_wanted * 20):
        if len(faces) == n_wanted:
            break
        fw = float(np.exp(rng.uniform(np.log(34), np.log(max_width))))
        fh = fw * rng.uniform(1.15, 1.3)
        x0, y0 = rng.uniform(2, w - fw - 2), rng.uniform(2, h - fh - 2)
        box = (x0, y0, x0 + fw, y0 + fh)
        if all(_apart(box, f.box, gap=4) for f in faces):
            faces.append(Face(box, int(rng.choice(3, p=CLASS_WEIGHTS))))
    return faces


def _apart(a, b, *, gap: float) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def _draw_shoulders(draw: ImageDraw.ImageDraw, rng: np.random.Generator, face: Face) -> None:
    """Shoulders below the head give the person some context; they are not part of the box and
    are drawn before every head so they never cover another face."""
    x0, y0, x1, y1 = face.box
    fw, fh = x1 - x0, y1 - y0
    shirt = tuple(int(c) for c in rng.integers(20, 235, size=3))
    draw.rounded_rectangle((x0 - 0.35 * fw, y0 + 0.95 * fh, x1 + 0.35 * fw, y0 + 1.9 * fh), radius=fw * 0.3, fill=shirt)


def _draw_face(draw: ImageDraw.ImageDraw, rng: np.random.Generator, face: Face) -> None:
    x0, y0, x1, y1 = face.box
    fw, fh = x1 - x0, y1 - y0

    def at(fx: float, fy: float) -> tuple[float, float]:
        return (x0 + fx * fw, y0 + fy * fh)

    skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
    draw.ellipse((x0, y0, x1, y1), fill=skin)
    draw.chord((x0, y0, x1, y1), start=195, end=345, fill=HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))])
    eye_r = max(1.5, 0.055 * fw)
    for fx in (0.32, 0.68):
        cx, cy = at(fx, 0.4)
        draw.ellipse((cx - eye_r * 1.6, cy - eye_r, cx + eye_r * 1.6, cy + eye_r), fill=(250, 250, 250))
        draw.ellipse((cx - eye_r, cy - eye_r, cx + eye_r, cy + eye_r), fill=(30, 30, 40))
    nose = tuple(int(c * 0.6) for c in skin)
    draw.polygon([at(0.5, 0.44), at(0.4, 0.62), at(0.6, 0.62)], fill=nose)
    draw.ellipse((*at(0.33, 0.71), *at(0.67, 0.8)), fill=(190, 40, 50))
    if face.cls == 0:
        _draw_mask(draw, rng, at, top=0.47)
    elif face.cls == 2:
        _draw_mask(draw, rng, at, top=0.66)


def _draw_mask(draw: ImageDraw.ImageDraw, rng: np.random.Generator, at, *, top: float) -> None:
    colour = MASK_COLOURS[int(rng.integers(len(MASK_COLOURS)))]
    pleat = tuple(int(c * 0.75) for c in colour)
    (ax, ay), (bx, by) = at(0.13, top), at(0.87, 0.93)
    draw.rounded_rectangle((ax, ay, bx, by), radius=(bx - ax) * 0.18, fill=colour)
    width = max(1, int((bx - ax) / 25))
    for k in (1, 2):
        fy = top + (0.93 - top) * k / 3
        draw.line((*at(0.18, fy), *at(0.82, fy)), fill=pleat, width=width)
    for fx_mask, fx_ear in ((0.13, 0.0), (0.87, 1.0)):
        draw.line((*at(fx_mask, top + 0.04), *at(fx_ear, 0.42)), fill=pleat, width=width)


def _voc_xml(filename: str, w: int, h: int, faces: list[Face]) -> str:
    objects = []
    for f in faces:
        x0, y0, x1, y1 = f.box
        objects.append(
            "    <object>\n"
            f"        <name>{DEMO_CLASSES[f.cls]}</name>\n"
            "        <pose>Unspecified</pose>\n        <truncated>0</truncated>\n"
            "        <occluded>0</occluded>\n        <difficult>0</difficult>\n"
            "        <bndbox>\n"
            f"            <xmin>{int(np.floor(x0))}</xmin>\n            <ymin>{int(np.floor(y0))}</ymin>\n"
            f"            <xmax>{int(np.ceil(x1))}</xmax>\n            <ymax>{int(np.ceil(y1))}</ymax>\n"
            "        </bndbox>\n    </object>\n"
        )
    return (
        "<annotation>\n    <folder>images</folder>\n"
        f"    <filename>{escape(filename)}</filename>\n"
        f"    <size>\n        <width>{w}</width>\n        <height>{h}</height>\n        <depth>3</depth>\n    </size>\n"
        "    <segmented>0</segmented>\n" + "".join(objects) + "</annotation>\n"
    )


def render_demo_image(index: int, *, seed: int = 0) -> tuple[Image.Image, list[Face]]:
    """Draw demo image ``index`` (deterministic in ``seed`` and ``index``)."""
    rng = np.random.default_rng([seed, index])
    w, h = IMAGE_SIZE
    img = _background(rng, w, h)
    faces = _place_faces(rng, w, h)
    draw = ImageDraw.Draw(img)
    for face in faces:
        _draw_shoulders(draw, rng, face)
    for face in faces:
        _draw_face(draw, rng, face)
    # Mild sensor noise and a global brightness change so the detector can't key on flat colours.
    a = np.asarray(img, dtype=np.float32) * rng.uniform(0.75, 1.15)
    a += rng.normal(0.0, 6.0, size=a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB"), faces


def _write_demo(folder: Path, *, n_images: int, seed: int) -> dict[str, int]:
    (folder / "images").mkdir(parents=True)
    (folder / "annotations").mkdir()
    counts = {c: 0 for c in DEMO_CLASSES}
    for i in range(n_images):
        img, faces = render_demo_image(i, seed=seed)
        name = f"demo{i:04d}"
        img.save(folder / "images" / f"{name}.png", optimize=False, compress_level=1)
        (folder / "annotations" / f"{name}.xml").write_text(_voc_xml(f"{name}.png", *img.size, faces))
        for f in faces:
            counts[DEMO_CLASSES[f.cls]] += 1
    marker = {"generator": "detcore.data.demo", "version": GENERATOR_VERSION, "n_images": n_images,
              "seed": seed, "classes": DEMO_CLASSES, "objects": counts}
    (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return counts


def is_complete_demo(folder: str | Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def generate_demo_dataset(out_dir: str | Path, *, n_images: int = 400, seed: int = 0) -> Path:
    """Write the demo dataset to ``out_dir`` (``images/*.png``, ``annotations/*.xml``, ``demo.json``).

    An existing complete demo at ``out_dir`` is replaced; any other non-empty folder is refused
    with DataError so a user's own data is never overwritten.
    """
    out_dir = Path(out_dir).resolve()
    if n_images < 1:
        raise DataError(out_dir, f"n_images must be at least 1, got {n_images}")
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(out_dir, "exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_complete_demo(out_dir):
        raise DataError(out_dir, "folder is not empty and is not a demo dataset; refusing to overwrite it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        _write_demo(tmp, n_images=n_images, seed=seed)
        _move_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    if not out_dir.exists():
        try:
            os.rename(tmp, out_dir)
            return
        except OSError:
            if not is_complete_demo(out_dir):  # someone created something else meanwhile
                raise
            # another process finished first: fall through and replace its (equivalent) copy
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def ensure_demo_dataset(*, n_images: int = 400, seed: int = 0) -> Path:
    """Return ``paths.demo_dataset_dir()``, generating the demo there first if it is missing.

    Idempotent and safe if two processes race: each generates into its own temp folder and the
    loser of the final rename discards its copy.
    """
    target = paths.demo_dataset_dir()
    if is_complete_demo(target):
        return target
    if target.is_dir() and any(target.iterdir()):
        raise DataError(target, f"exists but is not a complete demo dataset (no {MARKER}); "
                                "remove it or set DETBOARD_DATA elsewhere to regenerate the demo")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        _write_demo(tmp, n_images=n_images, seed=seed)
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        try:
            os.rename(tmp, target)
        except OSError:
            if not is_complete_demo(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target

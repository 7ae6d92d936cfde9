"""Decode one image file into RGB uint8 (RGBA/greyscale/palette/16-bit → RGB,
EXIF orientation applied). The only place pixels are decoded from disk."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from detcore.errors import DataError

# PIL refuses images above 2 * MAX_IMAGE_PIXELS and warns above it; we turn both into a clear error.
MAX_IMAGE_PIXELS = 89_478_485  # PIL's default (~ 89.5 MP)
# The only decoders Pillow may pick (its format names). Left to itself Pillow chooses one by content,
# whatever the file is called: an EPS renamed .png would reach Ghostscript when it is installed
# (hostile walk, finding 13). "JPEG" also opens MPO, the multi-picture JPEG many phone cameras write.
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF")
NOT_ACCEPTED = "not an image in an accepted format (JPEG, PNG, BMP, TIFF, WebP or GIF)"


def open_file(source) -> Image.Image:
    """``PIL.Image.open`` limited to :data:`IMAGE_FORMATS` (lazy: reads the header). Every image or mask
    file detcore opens goes through here; anything else raises ``PIL.UnidentifiedImageError``."""
    return Image.open(source, formats=IMAGE_FORMATS)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img, dtype=np.float64)
        hi = a.max() if a.size else 0
        scale = 255.0 / hi if hi > 255 else 1.0
        img = Image.fromarray(np.clip(a * scale, 0, 255).astype(np.uint8), mode="L")
    elif img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 1.0)
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
        img = Image.fromarray(a.astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on white so transparent pixels don't turn into arbitrary colours.
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    return img.convert("RGB")


def open_image(source: str | Path | bytes, *, name: str | None = None) -> Image.Image:
    """Open, fully decode and normalise an image to an RGB PIL image.

    ``source`` is a path or the raw bytes of an upload (``name`` is then used in errors).
    Raises DataError naming the file for: not an image, truncated/corrupt, decompression bomb.
    """
    label = name or str(source if not isinstance(source, bytes) else "<upload>")
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_file(fp) as img:
                w, h = img.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise DataError(label, f"image is {w}x{h} = {w * h:,} pixels, above the "
                                           f"{MAX_IMAGE_PIXELS:,}-pixel limit (decompression-bomb guard)")
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(label, f"refused as a decompression bomb: {e}") from None
    except UnidentifiedImageError:
        raise DataError(label, NOT_ACCEPTED) from None
    except FileNotFoundError:
        raise DataError(label, "image file not found") from None
    except IsADirectoryError:
        raise DataError(label, "is a folder, not an image file") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(label, f"unreadable or truncated image: {e}") from None


def load_rgb(source: str | Path | bytes, *, name: str | None = None) -> np.ndarray:
    """Image as an (H, W, 3) uint8 RGB array, writable (``np.asarray`` on a PIL image gives a read-only
    view of its bytes, which callers drawing on it or handing it to ``torch.from_numpy`` trip over)."""
    return np.array(open_image(source, name=name), dtype=np.uint8)


def displayed_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of an opened image as ``open_image`` will return it: EXIF orientations 5-8
    swap the stored width and height. Reads the header only."""
    w, h = img.size
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF must not make a good image unusable; PIL raises many types here
        orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header only, with EXIF rotation accounted for. Raises DataError."""
    try:
        with open_file(path) as img:
            return displayed_size(img)
    except UnidentifiedImageError:
        raise DataError(path, NOT_ACCEPTED) from None
    except FileNotFoundError:
        raise DataError(path, "image file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a folder, not an image file") from None
    except OSError as e:
        raise DataError(path, f"unreadable image: {e}") from None

"""Uploaded bytes that are not a usable image: each is a DataError naming the upload, never a crash,
a hang, or a multi-gigabyte allocation."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from detcore.data.images import MAX_IMAGE_PIXELS, load_rgb
from detcore.errors import DataError


def _png(width: int = 64, height: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg(width: int = 64, height: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header announcing ``width x height`` greyscale pixels, with a tiny IDAT: a few hundred
    bytes on the wire that would decode to gigabytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = b"\x00" + bytes(width)
    idat = zlib.compress(row * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.mark.parametrize("payload", [b"", b"hello, this is a text file\n", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
                                     b"PK\x03\x04" + bytes(40)])
def test_non_image_bytes_name_the_upload(payload):
    with pytest.raises(DataError, match="not an image") as err:
        load_rgb(payload, name="holiday.png")
    assert err.value.file == "holiday.png"


@pytest.mark.parametrize("make", [_png, _jpeg], ids=["png", "jpeg"])
def test_truncated_images_name_the_upload(make):
    whole = make()
    assert load_rgb(whole, name="whole").shape == (48, 64, 3)  # the untruncated file is fine
    with pytest.raises(DataError, match="truncated") as err:
        load_rgb(whole[: len(whole) // 2], name="half.img")
    assert err.value.file == "half.img"


def test_corrupt_pixel_data_is_a_data_error():
    data = bytearray(_png())
    start = data.index(b"IDAT") + 4
    data[start:start + 40] = bytes(40)  # zeroed deflate stream
    with pytest.raises(DataError) as err:
        load_rgb(bytes(data), name="scrambled.png")
    assert err.value.file == "scrambled.png"


@pytest.mark.parametrize("side", [10_000, 40_000])  # 100 MP (above the limit) and 1.6 GP (PIL's own bomb error)
def test_decompression_bombs_are_refused_before_decoding(side):
    bomb = _png_bomb(side, side)
    assert len(bomb) < 2_000_000
    with pytest.raises(DataError, match="decompression") as err:
        load_rgb(bomb, name="bomb.png")
    assert err.value.file == "bomb.png"
    assert f"{side}x{side}" in err.value.problem or "bomb" in err.value.problem


def test_the_pixel_limit_is_stated_in_the_message():
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 10
    with pytest.raises(DataError) as err:
        load_rgb(_png_bomb(side, side), name="big.png")
    assert str(MAX_IMAGE_PIXELS) in err.value.problem.replace(",", "")  # the user learns the limit


def test_a_good_upload_decodes_to_a_writable_rgb_array():
    # Read-only arrays made torch warn "undefined behavior" on every prediction (server log noise).
    rgb = load_rgb(_png(), name="ok.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3) and rgb.flags.writeable

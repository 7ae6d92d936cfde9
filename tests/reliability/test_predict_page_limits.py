"""Huge uploads on the Predict page: the picture sent to the browser on every slider move is
downscaled for display (the issue: "huge images (downscaled for display, limits stated)"), a refused
bomb is a message, not a crash, and the per-session prediction cache holds only what is dropped now."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image

DISPLAY_LONG_SIDE = 2048  # what a browser figure needs at most; a phone photo is 4000 px and more


def _png(width: int, height: int) -> bytes:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (height // 50 + 1, width // 50 + 1, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((width, height), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def _displayed_sizes(at) -> list[tuple[int, int]]:
    sizes = []
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        for image in spec.get("layout", {}).get("images", []):
            payload = base64.b64decode(image["source"].split(",", 1)[1])
            sizes.append(Image.open(io.BytesIO(payload)).size)
    return sizes


def test_a_bomb_dropped_on_the_predict_page_is_a_message(predict_page):
    from tests.reliability.test_hostile_images import _png_bomb

    at = predict_page
    at.file_uploader(key="predict_uploads").set_value(("bomb.png", _png_bomb(20_000, 20_000), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("bomb.png" in e.value and "decompression" in e.value for e in at.error)


def test_a_huge_upload_is_downscaled_for_display(predict_page):
    at = predict_page
    at.file_uploader(key="predict_uploads").set_value(("photo.png", _png(4000, 3000), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    sizes = _displayed_sizes(at)
    assert sizes, "no image in the result figure"
    assert all(max(s) <= DISPLAY_LONG_SIDE for s in sizes), sizes


def test_the_prediction_cache_does_not_keep_images_no_longer_dropped(predict_page):
    at = predict_page
    for i in range(4):  # a presenter drops one photo after another, each replacing the last
        at.file_uploader(key="predict_uploads").set_value((f"photo{i}.png", _png(320 + 8 * i, 240), "image/png"))
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert [s.value for s in at.subheader] == [f"photo{i}.png"]  # the page shows only the current photo
    assert len(at.session_state["predict_cache"]) == 1

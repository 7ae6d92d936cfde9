"""The one detection document (docs/detections.md): names, sizes, xyxy pixel boxes, class names,
scores high to low, COCO RLE masks that decode back to the mask, and the thresholds applied."""

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from detcore.detection_schema import SCHEMA, detections_document
from detcore.structures import Detections

CLASSES = ["cat", "dog", "bird"]
# pycocotools warns under numpy 2 when decoding (its issue, as in tests/metrics/test_shared_samples.py)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_document_lists_detections_by_score_with_class_names_and_pixel_boxes():
    dets = Detections("a.png", [[1, 2, 30, 40], [5.125, 6.5, 50, 60.25]], [0.4, 0.9], [1, 0])
    doc = detections_document([("a.png", 64, 48, dets)], classes=CLASSES, thresholds=[0.5, 0.3, np.inf],
                              model={"source": "runs/x", "format": "run"})
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc  # plain JSON, no NaN/inf
    assert doc["schema"] == SCHEMA and doc["classes"] == CLASSES
    assert doc["thresholds"] == {"cat": 0.5, "dog": 0.3, "bird": None}  # inf = class switched off
    (image,) = doc["images"]
    assert (image["image"], image["width"], image["height"]) == ("a.png", 64, 48)
    assert image["detections"] == [{"label": "cat", "score": 0.9, "box": [5.12, 6.5, 50.0, 60.25]},
                                   {"label": "dog", "score": 0.4, "box": [1.0, 2.0, 30.0, 40.0]}]


def test_masks_are_coco_rle_of_the_image_size_in_detection_order():
    h, w = 20, 30
    masks = np.zeros((2, h, w), bool)
    masks[0, 2:5, 3:9] = True  # low score
    masks[1, 10:18, 1:4] = True  # high score
    dets = Detections("m.png", [[3, 2, 9, 5], [1, 10, 4, 18]], [0.2, 0.8], [2, 2], masks)
    doc = detections_document([("m.png", w, h, dets)], classes=CLASSES, thresholds=[0.1] * 3,
                              model={"source": "m.onnx", "format": "onnx"})
    rows = doc["images"][0]["detections"]
    assert [r["score"] for r in rows] == [0.8, 0.2]
    for row, expected in zip(rows, (masks[1], masks[0])):
        rle = dict(row["mask"], counts=row["mask"]["counts"].encode("ascii"))
        assert row["mask"]["size"] == [h, w]
        assert np.array_equal(mask_utils.decode(rle).astype(bool), expected)


def test_an_image_without_detections_is_listed_with_an_empty_list():
    empty = Detections("e.png", np.zeros((0, 4)), [], [])
    doc = detections_document([("e.png", 10, 10, empty)], classes=CLASSES, thresholds=[0.5] * 3, model={})
    assert doc["images"] == [{"image": "e.png", "width": 10, "height": 10, "detections": []}]
